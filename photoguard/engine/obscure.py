"""Irreversible obscuring of a face: noisy pixelation on a grown rounded region, or a solid fill.

Never a plain blur: an 8-bit Gaussian blur can be largely inverted, and blurred or mosaicked faces
have been re-identified by CNNs (McPherson, Shokri & Shmatikov 2016). Pixelation here is coarse
(about 8 cells across the face, so no cell carries identity) and every cell gets random noise and is
quantised. The cell averaging is what destroys the face; the noise is a second layer. Without an
``rng`` it comes from OS entropy; the pipeline passes one seeded per photo and face, so every channel's
copy of a face carries the same noise (averaging the copies gives nothing back), and keeps that seed
only in its owner-only database to re-render the same way when a consent changes.

The region is a superellipse (|x/a|^4 + |y/b|^4 <= 1, a rounded rectangle) whose half-axes are
``grow`` x the box's half-sizes, joined with the box itself. A plain 1.3x ellipse leaves the box's
corners (jaw, temples) untouched; this shape takes in hair and ears and always the whole box. The box
is first widened to the whole head its landmarks belong to, so a box round half a face (the other half
behind a hand) still hides the whole face.
"""

from __future__ import annotations

import math

import numpy as np

from photoguard.engine.detect import FaceBox

METHODS = ("pixelate", "fill")
CELLS_ACROSS_FACE = 8    # pixelation cells across the face's longer side
MIN_CELL = 4             # pixels; tiny faces still get cells at least this big
NOISE_SIGMA = 12.0       # per-cell, per-channel noise (0..255 scale)
QUANT_STEP = 8           # cell colours are rounded to multiples of this
FILL_RGB = (128, 128, 128)
_SHAPE_POWER = 4
# The face measured from its landmarks, scaled by this, stays about inside the detector's box for a whole
# face (median 0.89 of its width and 0.88 of its height, 90th percentile 1.05 and 1.00, on 62 faces of the
# labelled and group photos), so it widens only a box that holds part of a face.
HEAD_PER_FACE = 0.8
FACE_TALL = 1.25      # a face box is this many times as tall as wide


def head_from_landmarks(box: FaceBox) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) of the head the box's five landmarks (eyes, nose, mouth corners) belong
    to, or None without landmarks. A detector can box only part of a face (a hand or a toy over the rest):
    its landmarks still say where the eyes and mouth are, and so how big the whole face is. The estimate is
    square (the face may be turned any way): a face is about 2.5 eye distances wide, and its eyes-to-mouth
    distance is about 0.4 of its height; the larger of the two counts."""
    if box.landmarks is None:
        return None
    points = np.asarray(box.landmarks, dtype=float).reshape(-1, 2)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        return None
    eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
    across = points[1] - points[0]
    down = mouth - eyes
    width = max(float(np.hypot(*across)) * 2.5, float(np.hypot(*down)) / 0.4 / FACE_TALL) * HEAD_PER_FACE
    # Landmarks far off the box are a poor guess, not a giant head: at most three times the box.
    width = min(width, 3.0 * max(box.right - box.left, box.bottom - box.top, 1))
    # The face as a rectangle along its own axes (it may lean or lie on its side), then its upright bounds.
    u = across / max(float(np.hypot(*across)), 1e-6)
    v = np.array([-u[1], u[0]])
    half_x = abs(u[0]) * width / 2 + abs(v[0]) * width * FACE_TALL / 2
    half_y = abs(u[1]) * width / 2 + abs(v[1]) * width * FACE_TALL / 2
    cx, cy = (eyes + mouth) / 2
    return cx - half_x, cy - half_y, cx + half_x, cy + half_y


def _edges(box: FaceBox) -> tuple[int, int, int, int]:
    """Whole-pixel edges that contain the box and the head its landmarks belong to, at least one pixel
    wide and high."""
    left, top, right, bottom = box.left, box.top, box.right, box.bottom
    head = head_from_landmarks(box)
    if head is not None:
        left, top = min(left, head[0]), min(top, head[1])
        right, bottom = max(right, head[2]), max(bottom, head[3])
    left, top = math.floor(left), math.floor(top)
    return left, top, max(math.ceil(right), left + 1), max(math.ceil(bottom), top + 1)


def _geometry(box: FaceBox, grow: float) -> tuple[float, float, float, float]:
    left, top, right, bottom = _edges(box)
    return (left + right) / 2, (top + bottom) / 2, grow * (right - left) / 2, grow * (bottom - top) / 2


def _region(shape: tuple[int, ...], box: FaceBox, grow: float) -> tuple[int, int, int, int, np.ndarray] | None:
    """(x0, y0, x1, y1, mask) of the obscured region clipped to the image, or None if it is off-image."""
    if not grow >= 1:
        raise ValueError(f"grow must be at least 1 (got {grow})")
    height, width = shape[:2]
    left, top, right, bottom = _edges(box)
    cx, cy, a, b = _geometry(box, grow)
    x0 = max(0, min(math.floor(cx - a), left))
    y0 = max(0, min(math.floor(cy - b), top))
    x1 = min(width, max(math.ceil(cx + a), right))
    y1 = min(height, max(math.ceil(cy + b), bottom))
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1) + 0.5 - cx) / a
    ys = (np.arange(y0, y1) + 0.5 - cy) / b
    mask = (np.abs(ys)[:, None] ** _SHAPE_POWER + np.abs(xs)[None, :] ** _SHAPE_POWER) <= 1.0
    bl, bt = max(left, x0), max(top, y0)
    br, bb = min(right, x1), min(bottom, y1)
    if bl < br and bt < bb:
        mask[bt - y0:bb - y0, bl - x0:br - x0] = True
    return x0, y0, x1, y1, mask


def obscured_area(shape: tuple[int, ...], box: FaceBox, grow: float = 1.3) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels ``obscure_face`` may change for ``box``; None if none."""
    region = _region(shape, box, grow)
    return None if region is None else region[:4]


def obscure_mask(shape: tuple[int, ...], box: FaceBox, grow: float = 1.3) -> np.ndarray:
    """Boolean (H, W) mask of the pixels ``obscure_face`` changes for ``box``."""
    full = np.zeros(shape[:2], dtype=bool)
    region = _region(shape, box, grow)
    if region is not None:
        x0, y0, x1, y1, mask = region
        full[y0:y1, x0:x1] = mask
    return full


def cell_size(box: FaceBox) -> int:
    """Pixelation cell size for a face: about 1/8 of its longer side, at least MIN_CELL."""
    left, top, right, bottom = _edges(box)
    return max(MIN_CELL, math.ceil(max(right - left, bottom - top) / CELLS_ACROSS_FACE))


def obscure_face(rgb: np.ndarray, box: FaceBox, *, method: str = "pixelate", grow: float = 1.3,
                 rng: np.random.Generator | None = None) -> None:
    """Obscure ``box`` in place in an RGB uint8 array."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("obscure_face needs an (H, W, 3) uint8 RGB array")
    if method not in METHODS:
        raise ValueError(f"unknown obscure method {method!r}; use 'pixelate' or 'fill'")
    region = _region(rgb.shape, box, grow)
    if region is None:
        return
    x0, y0, x1, y1, mask = region
    view = rgb[y0:y1, x0:x1]
    if method == "fill":
        view[mask] = FILL_RGB
        return
    if rng is None:
        rng = np.random.default_rng()   # fresh OS entropy: noise nobody can predict and subtract
    cell = cell_size(box)
    cx, cy, a, b = _geometry(box, grow)
    # The grid starts at the unclipped region's corner so a face at the edge gets the same cells.
    gx, gy = math.floor(cx - a), math.floor(cy - b)
    iy = (np.arange(y0, y1) - gy) // cell
    ix = (np.arange(x0, x1) - gx) // cell
    iy -= iy[0]
    ix -= ix[0]
    ncols = int(ix[-1]) + 1
    ids = (iy[:, None] * ncols + ix[None, :]).ravel()
    ncells = int(ids.max()) + 1
    counts = np.bincount(ids, minlength=ncells).astype(np.float64)
    flat = view.reshape(-1, 3).astype(np.float64)
    means = np.stack([np.bincount(ids, weights=flat[:, c], minlength=ncells) for c in range(3)], axis=1)
    means /= np.maximum(counts, 1)[:, None]
    values = means + rng.normal(0.0, NOISE_SIGMA, size=means.shape)
    values = np.clip(np.rint(values / QUANT_STEP) * QUANT_STEP, 0, 255).astype(np.uint8)
    cells = values[ids].reshape(view.shape)
    view[mask] = cells[mask]


def obscure_faces(rgb: np.ndarray, boxes: list[FaceBox], *, method: str = "pixelate", grow: float = 1.3,
                  rng: np.random.Generator | None = None) -> None:
    """Obscure several faces in place (one random generator for all of them)."""
    rng = rng if rng is not None else np.random.default_rng()
    for box in boxes:
        obscure_face(rgb, box, method=method, grow=grow, rng=rng)
