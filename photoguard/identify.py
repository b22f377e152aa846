"""Who is this face? 128-d encodings and a strict, pure matching rule.  (CONTRACT STUB — helper B implements)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .detect import FaceBox


@dataclass(frozen=True)
class Template:
    child_id: str
    encoding: np.ndarray   # (128,) float64


@dataclass(frozen=True)
class Identity:
    child_id: str | None       # None = unknown (obscured everywhere)
    distance: float | None     # to the nearest template of the nearest child
    runner_up: float | None    # nearest template of the next child
    reason: str                # "matched", "too small to identify", "no enrolled child close enough", ...


def encode_faces(rgb: np.ndarray, boxes: Sequence[FaceBox]) -> list[np.ndarray | None]:
    """One encoding per box (None where landmarks could not be found)."""
    raise NotImplementedError


def match_faces(
    encodings: Sequence[np.ndarray | None],
    widths: Sequence[int],
    templates: Sequence[Template],
    *,
    threshold: float,
    margin: float,
    min_face_px: int,
) -> list[Identity]:
    """Pure rule: threshold, margin to the next child, minimum width, one face per child per photo."""
    raise NotImplementedError
