"""One processor per home: ``process`` and ``watch`` hold an exclusive lock on ``.photoguard/watch.lock``."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from photoguard.store.home import Home


class HomeBusy(Exception):
    """Another PhotoGuard process is already working on this home."""


def lock_holder(home: Home) -> int | None:
    """The pid holding the home's lock, or None if nobody does."""
    try:
        fd = os.open(home.lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def hold_lock(home: Home, what: str) -> Iterator[None]:
    """Hold the home's processing lock for the duration; refuse if another process has it."""
    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            raise HomeBusy(
                f"another PhotoGuard process (pid {text or '?'}) is already working on {home.root}; "
                f"stop it first (kill {text or '<pid>'}) or wait for it to finish before running {what}."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing releases the flock
