"""Public-domain faces shipped by packages, and scenes built from them, for tests and benchmarks.

astronaut: Eileen Collins (NASA, public domain), from scikit-image.
hopper: Grace Hopper (US Navy, public domain), from matplotlib.
Box tuples are (left, top, right, bottom) in pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

# Faces as found by HOG (upsample 1) in the original images.
FACE_BOX = {"astronaut": (175, 76, 265, 166), "hopper": (180, 139, 366, 325)}

# Inverse of the transpose that PIL's exif_transpose applies for each EXIF orientation.
_TO_STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@cache
def _load(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()
    if name == "hopper":
        import matplotlib.cbook

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
            return np.asarray(im.convert("RGB"))
    raise KeyError(name)


def face_image(name: str) -> np.ndarray:
    """The whole public-domain picture (a copy, safe to modify)."""
    return _load(name).copy()


@dataclass(frozen=True)
class Patch:
    rgb: np.ndarray
    face: tuple[int, int, int, int]   # where the face is inside the patch


def face_patch(name: str, face_width: int, context: float = 1.0) -> Patch:
    """The face with ``context`` × its width of surroundings on each side, scaled so the face is ``face_width`` px."""
    img = _load(name)
    left, top, right, bottom = FACE_BOX[name]
    w = right - left
    pad = int(w * context)
    x0, y0 = max(0, left - pad), max(0, top - pad)
    x1, y1 = min(img.shape[1], right + pad), min(img.shape[0], bottom + pad)
    crop = Image.fromarray(img[y0:y1, x0:x1])
    scale = face_width / w
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    crop = crop.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    face = (round((left - x0) * scale), round((top - y0) * scale), round((right - x0) * scale), round((bottom - y0) * scale))
    return Patch(np.asarray(crop), face)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, colourful, faceless background (like a nursery wall)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 230, size=(6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def scene(width: int, height: int, faces: list[tuple[str, int, int, int]], seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Paste faces (name, x, y, face_width) onto a background; returns the image and the true face boxes.

    (x, y) is where the face's top-left corner lands.
    """
    canvas = background(width, height, seed).copy()
    boxes = []
    for name, x, y, fw in faces:
        patch = face_patch(name, fw)
        fl, ft, fr, fb = patch.face
        px, py = x - fl, y - ft
        h, w = patch.rgb.shape[:2]
        sx0, sy0 = max(0, -px), max(0, -py)
        dx0, dy0 = max(0, px), max(0, py)
        dx1, dy1 = min(width, px + w), min(height, py + h)
        canvas[dy0:dy1, dx0:dx1] = patch.rgb[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        boxes.append((x, y, x + fr - fl, y + fb - ft))
    return canvas, boxes


def jpeg_bytes(rgb: np.ndarray, orientation: int = 1, quality: int = 92, **save_kw) -> bytes:
    """Encode ``rgb`` as a JPEG that *displays* as ``rgb`` once its EXIF orientation is applied."""
    img = Image.fromarray(rgb)
    if _TO_STORED[orientation] is not None:
        img = img.transpose(_TO_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    if "exif" in save_kw:
        exif = save_kw.pop("exif")
        exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif, **save_kw)
    return buf.getvalue()


def face_variant(name: str, i: int, *, turn: tuple[float, float], gain: tuple[float, float]) -> np.ndarray:
    """Photo ``i`` of a person: ``face_image(name)`` mirrored on odd ``i``, turned ``turn[0] * i + turn[1]``
    degrees and brightened ``gain[0] + gain[1] * i`` times, so each photo of one person differs a little."""
    img = Image.fromarray(face_image(name))
    if i % 2:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.rotate(turn[0] * i + turn[1], resample=Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img).astype(float) * (gain[0] + gain[1] * i), 0, 255).astype(np.uint8)
