"""Writing pictures: encoded from pixels only (nothing of the original's metadata can follow), written whole and
durably, never over another file.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

from photoguard.photos.jpeg import strip_check


class SaveError(OSError):
    """Writing a photo failed; nothing was left behind. ``errno`` is the underlying error number."""


def shrink_to(rgb: np.ndarray, max_side: int, like: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``rgb`` at most ``max_side`` px on its long side (area-averaged, so nothing is sharpened back), or
    ``rgb`` itself if it is no larger.

    ``like``: (another picture of the same size, what this function made of it), e.g. another channel's
    rendering of the same photo, which differs from ``rgb`` only where a face is obscured in one and not
    the other. Then only the blocks where the two differ are shrunk again (the same numbers, bit for bit:
    the blocks are aligned so each is shrunk exactly as within the whole picture); every other block is
    taken from ``like``'s, whose pixels there are the same."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    import cv2

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = np.ascontiguousarray(rgb)
    blocks = _blocks(width, height, size) if like is not None else None
    if blocks is None or like[0].shape != rgb.shape or like[1].shape[:2] != (size[1], size[0]):
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    (nx, ny), (bw, bh), (sw, sh) = blocks
    out = like[1].copy()
    for by, bx0, bx1 in _dirty_runs(rgb, np.ascontiguousarray(like[0]), nx, ny, bw, bh):
        out[by * sh:(by + 1) * sh, bx0 * sw:bx1 * sw] = cv2.resize(
            rgb[by * bh:(by + 1) * bh, bx0 * bw:bx1 * bw], ((bx1 - bx0) * sw, sh), interpolation=cv2.INTER_AREA)
    return out


def _blocks(width: int, height: int, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """How ``width`` x ``height`` shrunk to ``size`` splits into blocks shrunk independently: (blocks across
    and down, a block's size in the picture, its size shrunk), or None when it does not split exactly.
    A block edge falls where a pixel edge of the picture meets one of the shrunk picture, and the ratio
    of sizes is exact in binary floating point (a power of two below it), so OpenCV's area weights for a
    block are those of the whole picture."""
    from math import gcd

    nx, ny = gcd(width, size[0]), gcd(height, size[1])
    sw, sh = size[0] // nx, size[1] // ny
    if nx * ny < 4 or sw & (sw - 1) or sh & (sh - 1):
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


def encode_stripped_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of ``rgb`` with no metadata at all (checked with :func:`strip_check`)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("save_stripped_jpeg needs an (H, W, 3) uint8 RGB array")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100 (got {quality})")
    img = Image.fromarray(np.ascontiguousarray(rgb))   # fresh image: empty info, nothing to copy
    buf = io.BytesIO()
    # No optimize=True: its second Huffman pass doubles the encoding time for ~10% smaller files.
    img.save(buf, "JPEG", quality=quality, exif=b"", comment=b"")
    data = buf.getvalue()
    problems = strip_check(data)
    if problems:  # never expected; refuse rather than leak
        raise RuntimeError("the JPEG encoder wrote metadata: " + "; ".join(problems))
    return data


def save_stripped_jpeg(rgb: np.ndarray, folder: Path, stem: str, quality: int = 90, mode: int = 0o640) -> Path:
    """Write ``folder/stem.jpg`` atomically with no metadata at all; never overwrite (adds -1, -2 ...).

    ``mode`` is set explicitly, whatever the umask: 0640 (readable by the manager's group) suits the
    outbox, 0600 anything that holds faces not yet cleared. Returns the path written. Raises SaveError
    (an OSError) with a clear message if writing fails; no temporary file is left behind.
    """
    folder = Path(folder)
    if not stem or "/" in stem or "\\" in stem or stem in (".", "..") or "\x00" in stem:
        raise ValueError(f"bad file name stem {stem!r}")
    data = encode_stripped_jpeg(rgb, quality)
    tmp = folder / f".{stem}.jpg.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        final, moved = _claim_name(tmp, folder, stem)
        if not moved:
            os.unlink(tmp)
        fsync_dir(folder)
        return final
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _save_error(e, folder) from e


def _claim_name(tmp: Path, folder: Path, stem: str) -> tuple[Path, bool]:
    """Give ``tmp`` the first free name stem.jpg, stem-1.jpg, ...; True if tmp was moved (not linked)."""
    for i in range(100_000):
        final = folder / (f"{stem}.jpg" if i == 0 else f"{stem}-{i}.jpg")
        try:
            os.link(tmp, final)   # fails if final exists: no overwrite, even in a race
            return final, False
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        # No hard links here (FAT/exFAT, some shares): reserve the name exclusively, then move onto it.
        try:
            os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        try:
            os.replace(tmp, final)
        except OSError:
            os.unlink(final)
            raise
        return final, True
    raise FileExistsError(errno.EEXIST, f"too many files named {stem}-N.jpg in {folder}")


def write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (best effort where the file system refuses)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some filesystems refuse fsync on folders; the file itself is synced
        pass
    finally:
        os.close(fd)


def _save_error(e: OSError, folder: Path) -> SaveError:
    code = e.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        msg = f"no space left on device writing {folder} — free some space, then process the photo again"
    elif code == errno.EFBIG:
        msg = f"file too large for the device writing {folder}"
    elif code in (errno.EACCES, errno.EPERM):
        msg = f"permission denied writing {folder} — check the folder's permissions"
    elif code == errno.EROFS:
        msg = f"{folder} is on a read-only device"
    elif code == errno.ENOENT:
        msg = f"folder {folder} does not exist"
    else:
        msg = f"could not write a photo in {folder}: {e.strerror or e}"
    err = SaveError(msg)
    err.errno = code   # strerror left unset so str(err) stays the message above
    return err
