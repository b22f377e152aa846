"""One processor per home: ``process`` and ``watch`` hold an exclusive lock on ``.photoguard/watch.lock``."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from photoguard.store.home import Home


# What a holder writes into the lock file, for the pages to tell the manager who is busy with the home.
WATCH_COMMAND = "photoguard watch"
CHECKING_AGAIN = "the manager's pages, checking photos again"


class HomeBusy(Exception):
    """Another PhotoGuard process is already working on this home."""


def _held_by(home: Home) -> tuple[str, str] | None:
    """(pid, what it is doing) of whoever holds the home's lock, or None if nobody does."""
    try:
        fd = os.open(home.lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def lock_holder(home: Home) -> int | None:
    """The pid holding the home's lock, or None if nobody does."""
    held = _held_by(home)
    if held is None:
        return None
    return int(held[0]) if held[0].isdigit() else -1


def lock_doing(home: Home) -> str | None:
    """What holds the home's lock, as its holder wrote it ("photoguard watch", ...); None if nobody does."""
    held = _held_by(home)
    return None if held is None else (held[1] or "another PhotoGuard process")


def _holder(fd: int) -> tuple[str, str]:
    """(pid, what it is doing) as the holder wrote them into the lock file."""
    pid, _, doing = os.read(fd, 512).decode("utf-8", "replace").partition("\n")
    return pid.strip(), doing.strip()


def _take(fd: int, tries: int = 5) -> bool:
    """The exclusive lock, tried a few times over 0.2 s: the pages look at the lock (a shared lock for an
    instant) to say who is busy, and that look must not turn away a command that is starting."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(0.05)
    return False


@contextmanager
def hold_lock(home: Home, what: str) -> Iterator[None]:
    """Hold the home's processing lock for the duration; refuse if another process has it."""
    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _take(fd):
            pid, doing = _holder(fd)
            raise HomeBusy(
                f"{doing or 'another PhotoGuard process'} (pid {pid or '?'}) is already working on {home.root}; "
                f"wait for it to finish, or stop it, before running {what}."
            ) from None
        os.ftruncate(fd, 0)
        # The pid, then what holds the lock: a refused process says who is busy, not just a number.
        os.write(fd, f"{os.getpid()}\n{what}\n".encode())
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing releases the flock
