"""Reading photos (any format staff drop, oriented, 8-bit sRGB RGB) and writing stripped JPEGs.  (CONTRACT STUB — helper C implements)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ImageError(Exception):
    """A file that cannot be used as a photo; ``str(exc)`` is a reason a person understands."""


@dataclass
class LoadedImage:
    rgb: np.ndarray      # (H, W, 3) uint8, EXIF orientation already applied
    format: str          # 'JPEG', 'PNG', 'HEIF', ...
    orientation: int     # the EXIF orientation that was applied (1 = none)


def load_image(path: Path) -> LoadedImage:
    raise NotImplementedError


def save_stripped_jpeg(rgb: np.ndarray, folder: Path, stem: str, quality: int = 90) -> Path:
    """Write ``folder/stem.jpg`` atomically with no metadata at all; never overwrite (adds -1, -2 ...)."""
    raise NotImplementedError
