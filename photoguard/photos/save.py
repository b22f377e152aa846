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
