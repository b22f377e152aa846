"""Where each face's number goes on the review photo, so that no two numbers cover each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Spot:
    x: int       # left of the number's text
    y: int       # its baseline
    size: int    # font size, in pixels of the photo


def label_size(height: int) -> int:
    """Big enough to read on a phone once the photo is scaled to the screen."""
    return max(28, height // 18)


def label_spots(boxes: Sequence[Box], numbers: Sequence[int], width: int, height: int) -> list[Spot]:
    """A spot per face: above its box's top left corner, else below the box, else inside it, else on its
    right; the first that stays in the photo and covers no number placed before (faces in order)."""
    size = label_size(height)
    placed: list[Box] = []
    spots = []
    for (left, top, right, bottom), number in zip(boxes, numbers):
        w = int(size * 0.62 * len(str(number))) + 2
        tries = [(left, top - size // 8), (left, bottom + size), (left + 2, top + size), (right + 2, top + size)]
        choice = tries[0]
        for x, y in tries:
            area = (x, y - size, x + w, y)
            inside = area[0] >= 0 and area[1] >= 0 and area[2] <= width and area[3] <= height
            if inside and not any(_overlap(area, other) for other in placed):
                choice = (x, y)
                break
        x, y = choice
        placed.append((x, y - size, x + w, y))
        spots.append(Spot(int(x), int(y), size))
    return spots


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
