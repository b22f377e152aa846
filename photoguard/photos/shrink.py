"""Shrinking a picture, and shrinking again only where a second picture of the same photo differs from the first.
"""

from __future__ import annotations

import numpy as np


def shrink_to(rgb: np.ndarray, max_side: int, like: tuple[np.ndarray, np.ndarray] | None = None, *,
              bitwise: bool = True) -> np.ndarray:
    """``rgb`` at most ``max_side`` px on its long side (area-averaged, so nothing is sharpened back), or
    ``rgb`` itself if it is no larger.

    ``like``: (another picture of the same size, what this function made of it), e.g. another channel's
    rendering of the same photo, which differs from ``rgb`` only where a face is obscured in one and not
    the other. Then only the blocks where the two differ are shrunk again (the same numbers, bit for bit:
    the blocks are aligned so each is shrunk exactly as within the whole picture); every other block is
    taken from ``like``'s, whose pixels there are the same.

    ``bitwise=False`` splits into blocks of any size whose shrunk size is whole (a 4032 x 3024 photo shrunk to
    1280 x 960: blocks of 63 px shrunk to 20), not only of a power of two. OpenCV then computes each block's area
    weights from the same ratio, but at other offsets, which may round differently in the last bit of a double:
    on 120 picture sizes (4:3, 3:2, 16:9, 5:4 and square, 1,400 to 6,200 px) it gave the same numbers in every one
    of 380 million, but that is measured, not promised. For a search, not for a published copy."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    import cv2

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = np.ascontiguousarray(rgb)
    blocks = _blocks(width, height, size, bitwise) if like is not None else None
    if blocks is None or like[0].shape != rgb.shape or like[1].shape[:2] != (size[1], size[0]):
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    (nx, ny), (bw, bh), (sw, sh) = blocks
    out = like[1].copy()
    for by, bx0, bx1 in _dirty_runs(rgb, np.ascontiguousarray(like[0]), nx, ny, bw, bh):
        out[by * sh:(by + 1) * sh, bx0 * sw:bx1 * sw] = cv2.resize(
            rgb[by * bh:(by + 1) * bh, bx0 * bw:bx1 * bw], ((bx1 - bx0) * sw, sh), interpolation=cv2.INTER_AREA)
    return out


def _blocks(width: int, height: int, size: tuple[int, int],
            bitwise: bool = True) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """How ``width`` x ``height`` shrunk to ``size`` splits into blocks shrunk independently: (blocks across
    and down, a block's size in the picture, its size shrunk), or None when it does not split exactly.
    A block edge falls where a pixel edge of the picture meets one of the shrunk picture, and the ratio
    of sizes is exact in binary floating point (a power of two below it), so OpenCV's area weights for a
    block are those of the whole picture (``bitwise=False``: any whole size below it; see ``shrink_to``)."""
    from math import gcd

    nx, ny = gcd(width, size[0]), gcd(height, size[1])
    sw, sh = size[0] // nx, size[1] // ny
    if nx * ny < 4 or (bitwise and (sw & (sw - 1) or sh & (sh - 1))):
        return None
    return (nx, ny), (width // nx, height // ny), (sw, sh)


def _dirty_runs(a: np.ndarray, b: np.ndarray, nx: int, ny: int, bw: int, bh: int) -> list[tuple[int, int, int]]:
    """(block row, first block, block after the last) of each run of blocks in which ``a`` and ``b`` differ.
    Compared a machine word at a time; a word across two blocks marks both (shrinking a block again that
    did not change costs time, never correctness)."""
    height, row_bytes = a.shape[0], a.shape[1] * a.shape[2]
    word = next(k for k in (8, 4, 2, 1) if row_bytes % k == 0)
    kind = {8: np.uint64, 4: np.uint32, 2: np.uint16, 1: np.uint8}[word]
    differs = a.reshape(height, row_bytes).view(kind) != b.reshape(height, row_bytes).view(kind)
    rows = differs.reshape(ny, bh, -1).any(axis=1)                     # (block rows, words)
    starts = np.arange(rows.shape[1]) * word
    dirty = np.zeros((ny, nx), dtype=bool)
    for block in ((starts // 3) // bw, ((starts + word - 1) // 3) // bw):   # a word's first and last pixel
        first = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        dirty[:, block[first]] |= np.logical_or.reduceat(rows, first, axis=1)
    runs = []
    for by in range(ny):
        edges = np.flatnonzero(np.diff(np.r_[0, dirty[by].astype(np.int8), 0]))
        runs += [(by, int(x0), int(x1)) for x0, x1 in zip(edges[::2], edges[1::2])]
    return runs
