"""The watcher's helpers: its private log, its worker processes (which end with it), and telling a finished file
from one still being copied.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import logging.handlers
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

from photoguard.flow.results import PhotoResult
from photoguard.photos.images import MAX_FILE_BYTES
from photoguard.photos.intake import NotAPhotoFile, open_regular
from photoguard.store.home import Home

LOG_FILE = "watch.log"


WORKERS_LOCK = "workers.lock"


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created owner-only (the log names photos)."""

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(home: Home, stream=None, max_bytes: int = 5_000_000, backups: int = 5) -> logging.Logger:
    """One line per event on stderr and in ``.photoguard/logs/watch.log`` (rotated, 0600)."""
    log = logging.getLogger(LOG_NAME)
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    home.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    file_handler = _PrivateRotatingFileHandler(home.logs / LOG_FILE, maxBytes=max_bytes, backupCount=backups,
                                               encoding="utf-8")
    console = logging.StreamHandler(stream or sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def describe(result: PhotoResult) -> str:
    """The log line for one photo: status, faces shown/obscured, seconds."""
    faces = result.face_summary()
    if result.status == "cleared":
        detail = faces
    elif result.status == "review":
        detail = f"{faces}; held for review: {result.reason}"
    else:
        detail = result.reason or ""
    return f"{result.status:<9} {result.source} — {detail} ({result.seconds:.1f}s)"


def _exit_with(watcher_pid: int) -> None:
    """A worker never outlives its watcher: a SIGKILLed watcher must not leave an orphan finishing a photo
    while the next watcher resumes it. (PR_SET_PDEATHSIG does not help: a worker's parent is the
    forkserver, which lives as long as any worker does.)"""
    try:
        pidfd = os.pidfd_open(watcher_pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        os.kill(watcher_pid, 0)
    except ProcessLookupError:
        os._exit(1)

    def wait() -> None:
        if pidfd is not None:
            import select

            select.select([pidfd], [], [])  # readable once the process has exited
            os._exit(1)
        while True:
            time.sleep(0.5)
            try:
                os.kill(watcher_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=wait, name="watcher-alive", daemon=True).start()


_workers_lock_fd: int | None = None


def _init_watch_worker(root: str, lock_path: str, watcher_pid: int) -> None:
    global _workers_lock_fd
    from photoguard.flow import batch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the watcher, which lets this photo finish
    _exit_with(watcher_pid)
    # Held until the process ends: the next watcher waits for it before resuming interrupted photos.
    _workers_lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(_workers_lock_fd, fcntl.LOCK_SH)
    batch._init_worker(root)
    # Here, not in a task: a worker started again later (after TASKS_PER_WORKER photos, or after one
    # died) is ready too before it takes a photo.
    try:
        batch.warm_up_worker((1, os.cpu_count() or 1))
    except Exception:  # noqa: BLE001 — a model that cannot be loaded is said by the first photo, with the reason
        pass


def wait_for_old_workers(home: Home, log: logging.Logger) -> int:
    """Block until no worker of an earlier watcher is alive; returns the fd holding the exclusive lock."""
    fd = os.open(home.state / WORKERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not said:
                log.info("waiting for the workers of a previous run to stop")
                said = True
            time.sleep(0.1)


def check_complete(path: Path) -> tuple[bool, str]:
    """(whether the file is a whole image, its sha256), reading it once. JPEGs are decoded at 1/8 scale
    (which still reads every byte of the compressed data, so a truncated copy fails), others fully.

    Never follows a link and never blocks on a FIFO. Anything that is not a regular file, or is larger
    than images.MAX_FILE_BYTES (checked by its size, before reading a byte), is "complete" at once: the
    pipeline refuses it to failed/ with the reason, without reading it."""
    import hashlib
    import io

    from PIL import Image

    from photoguard.photos.images import register_heif

    try:
        fd, st = open_regular(path, MAX_FILE_BYTES)
    except NotAPhotoFile:
        st = os.lstat(path)
        return True, f"unread:{st.st_dev}:{st.st_ino}"
    with open(fd, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    sha = hashlib.sha256(data).hexdigest()
    register_heif()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        return True, sha
    except Image.DecompressionBombError:
        return True, sha  # complete, just huge: the pipeline says so in failed/
    except Exception:
        return False, sha


def decodes(path: Path) -> bool:
    return check_complete(path)[0]


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime, inode) of an entry, links not followed; None if gone or a folder. Entries that are
    not regular files (links, FIFOs) get a key too: they are handed over at once and refused."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return (-2, st.st_mtime_ns, st.st_ino)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


LOG_NAME = "photoguard.watch"


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "full" in str(exc).lower()   # sqlite3: "database or disk is full"
