"""Taking a dropped file in: a private snapshot, read once, of a regular file, never following links.

The pipeline works only on the snapshot (``.photoguard/staging/``, 0600, owned by PhotoGuard): what is
hashed, decoded and archived are the same bytes, whatever happens to the dropped file meanwhile. The
dropped file itself is only ever removed from the inbox, and only while it is still the very file that
was snapshotted (same inode, size and modification time): a photo replaced under the same name is a new
photo, processed on its own. A file outside the inbox is never touched at all.

The snapshot is a copy, not a hard link: a link shares the inode, so a file rewritten in place (``cp``
onto an existing name keeps the inode) would change the "snapshot" too, and the inode's mode would be
the staff member's, not ours.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from photoguard.photos.durable import PRIVATE_FILE
from photoguard.photos.save import fsync_dir, write_all


class NotAPhotoFile(Exception):
    """The entry is not a regular file (a link, a FIFO, a device...) or is too large to read.
    ``reason`` says so in words; the entry was not read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StillChanging(Exception):
    """The file changed while it was being copied (still being written); try again later."""


@dataclass(frozen=True)
class Source:
    """The dropped file as it was when snapshotted; JSON-safe (``path`` may hold surrogate escapes)."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Source":
        return cls(**data)

    def unchanged(self) -> bool:
        """Whether the name still holds exactly the file that was snapshotted."""
        try:
            st = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return (stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                == (self.dev, self.ino, self.size, self.mtime_ns))


@dataclass(frozen=True)
class Snapshot:
    path: Path       # the private copy
    sha256: str
    source: Source


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link (shortcut) to another file, not a photo — drop the photo itself"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO), not a photo file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a photo file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a photo file"
    if stat.S_ISDIR(mode):
        return "a folder, not a photo"
    return "not a regular file"


def too_large(size: int, limit: int) -> str:
    return (f"file too large ({size // (1024 * 1024)} MB, the limit is {limit // (1024 * 1024)} MB) — "
            "not a photo PhotoGuard can handle")


def open_regular(path: Path | str, max_bytes: int) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following links and without blocking (a FIFO would);
    raise NotAPhotoFile for anything else, or when it is larger than ``max_bytes`` (checked before reading)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotAPhotoFile(kind_of(st.st_mode))
    if st.st_size > max_bytes:
        raise NotAPhotoFile(too_large(st.st_size, max_bytes))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:   # replaced by a link since the lstat
            raise NotAPhotoFile(kind_of(stat.S_IFLNK)) from None
        raise
    fst = os.fstat(fd)
    if not stat.S_ISREG(fst.st_mode):
        os.close(fd)
        raise NotAPhotoFile(kind_of(fst.st_mode))
    return fd, fst


def take_snapshot(path: Path, folder: Path, max_bytes: int) -> Snapshot:
    """Copy ``path`` into ``folder`` (private, fsynced), hashing the very bytes copied.

    Raises NotAPhotoFile (nothing read), StillChanging (nothing kept), FileNotFoundError, OSError."""
    fd, before = open_regular(path, max_bytes)
    tmp = folder / f".intake-{secrets.token_hex(8)}.tmp"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        digest = hashlib.sha256()
        total = 0
        try:
            os.fchmod(out, PRIVATE_FILE)
            while chunk := os.read(fd, 1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise NotAPhotoFile(too_large(total, max_bytes))
                digest.update(chunk)
                write_all(out, chunk)
            os.fsync(out)
        finally:
            os.close(out)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or total != after.st_size:
            raise StillChanging(f"{path} changed while it was being read")
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(fd)
    source = Source(os.fspath(path), before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns)
    return Snapshot(tmp, digest.hexdigest(), source)


def hash_regular(path: Path, max_bytes: int) -> str:
    """SHA-256 of a regular file, read without following links; NotAPhotoFile for anything else."""
    fd, _ = open_regular(path, max_bytes)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def release_source(source: Source, inbox: Path) -> bool:
    """Remove the dropped file from the inbox once its snapshot is safely placed — only if it is in the
    inbox and still exactly the file that was snapshotted. Returns whether it was removed."""
    if not is_inside(Path(source.path), inbox) or not source.unchanged():
        return False
    try:
        os.unlink(source.path)
    except FileNotFoundError:
        return False
    fsync_dir(Path(source.path).parent)
    return True


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (not following its last component) lies inside ``folder``."""
    try:
        parent = Path(os.path.realpath(Path(path).parent))
        return parent == Path(os.path.realpath(folder)) or Path(os.path.realpath(folder)) in parent.parents
    except OSError:
        return False
