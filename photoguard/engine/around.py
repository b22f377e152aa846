"""Where a second look must search a picture that differs from a searched photo only in some areas.

A find whose centre lies within ``context`` pixels (at the scale searched) of a changed area may differ from
the searched photo's; it is looked for in a crop giving it ``context`` more pixels of the picture on every
side. Crops that overlap are joined, so no pixel is searched twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Area = tuple[float, float, float, float]


@dataclass
class Crop:
    """A crop to search (photo pixels) and the areas whose finds it answers for (photo pixels)."""
    box: Area
    keep: list[Area]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def on_grid(self, scale: float) -> tuple[int, int, int, int]:
        """The crop in the picture scaled by ``scale``, its top-left corner on the 32 px grid of a network pass
        over the whole picture (the network's coarsest step), so that it is cut into the same cells."""
        return (int(self.box[0] * scale) // 32 * 32, int(self.box[1] * scale) // 32 * 32,
                int(np.ceil(self.box[2] * scale)), int(np.ceil(self.box[3] * scale)))

    def answers_for(self, boxes: np.ndarray) -> np.ndarray:
        """Which of ``boxes`` (N, 4; photo pixels) are centred in one of the ``keep`` areas."""
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = np.zeros(len(boxes), bool)
        for left, top, right, bottom in self.keep:
            inside |= (cx >= left) & (cx < right) & (cy >= top) & (cy < bottom)
        return inside


def crops_around(changed: Sequence[tuple[int, int, int, int]], scale: float, width: int, height: int,
                 context: int) -> list[Crop]:
    """The crops around ``changed`` (photo pixels) of a ``width`` x ``height`` photo searched at ``scale``."""
    reach = context / scale
    crops = []
    for left, top, right, bottom in changed:
        keep = (left - reach, top - reach, right + reach, bottom + reach)
        crops.append(Crop((max(0.0, keep[0] - reach), max(0.0, keep[1] - reach),
                           min(float(width), keep[2] + reach), min(float(height), keep[3] + reach)), [keep]))
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(crops):
            for j in range(i + 1, len(crops)):
                b = crops[j]
                if a.box[0] < b.box[2] and b.box[0] < a.box[2] and a.box[1] < b.box[3] and b.box[1] < a.box[3]:
                    crops[i] = Crop((min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
                                     max(a.box[2], b.box[2]), max(a.box[3], b.box[3])), a.keep + b.keep)
                    del crops[j]
                    joined = True
                    break
            if joined:
                break
    return crops
