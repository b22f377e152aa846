"""Find every face: CenterFace (OpenCV DNN) at several scales and tiles, plus HOG, merged.  (CONTRACT STUB — helper B implements)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """A face in pixels of the oriented photo; right/bottom exclusive."""
    left: int
    top: int
    right: int
    bottom: int
    score: float
    source: str = "centerface"   # 'centerface', 'hog' or 'both'

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


class FaceDetector:
    """Load the models once; ``detect`` many photos."""

    def __init__(self, threshold: float = 0.3, use_hog: bool = True) -> None:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """All faces in an RGB uint8 (H, W, 3) array, best first. Low threshold: over-finding is safe."""
        raise NotImplementedError
