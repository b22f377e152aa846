"""Face boxes: how much two overlap, whether they are the same face, and coordinates turned by quarter turns."""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]  # left, top, right, bottom


def iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def covers(found: Box, face: Box, min_iou: float = 0.3) -> bool:
    """``found`` is a box for ``face``: IoU >= min_iou, or the face's centre is inside it."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    return iou(found, face) >= min_iou or (found[0] <= cx < found[2] and found[1] <= cy < found[3])


def same_face(a: Box, b: Box) -> bool:
    """Either box covers the other."""
    return covers(a, b) or covers(b, a)


def turn_matrix(turns: int, width: int, height: int) -> np.ndarray:
    """3×3 map from a point of a ``width``×``height`` photo to the same point in ``np.rot90(photo, turns)``
    (quarter turns counter-clockwise; coordinates of pixel edges, so a box maps to a box)."""
    return {
        0: np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
        1: np.array([[0, 1, 0], [-1, 0, width], [0, 0, 1]], float),
        2: np.array([[-1, 0, width], [0, -1, height], [0, 0, 1]], float),
        3: np.array([[0, -1, height], [1, 0, 0], [0, 0, 1]], float),
    }[turns % 4]
