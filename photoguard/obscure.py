"""Irreversible obscuring of a face: noisy pixelation on a grown ellipse, or a solid fill.  (CONTRACT STUB — helper C implements)"""

from __future__ import annotations

import numpy as np

from .detect import FaceBox


def obscure_face(rgb: np.ndarray, box: FaceBox, *, method: str = "pixelate", grow: float = 1.3,
                 rng: np.random.Generator | None = None) -> None:
    """Obscure ``box`` in place in an RGB uint8 array."""
    raise NotImplementedError
