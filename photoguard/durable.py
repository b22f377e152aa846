"""Durable files: staging, linking and moving photos so that a crash at any moment loses nothing and
nothing is ever overwritten. No decisions here; the pipeline and review decide what goes where."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from .images import fsync_dir

__all__ = ["_unique_name", "_link_or_copy", "place_durably", "_linked_copy", "glob_escape", "move_durably",
           "publish", "_write_text_atomic", "fsync_dir"]


def _unique_name(folder: Path, name: str) -> Path:
    stem, suffix = os.path.splitext(name)
    candidate = folder / name
    n = 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def _link_or_copy(src: Path, dest: Path) -> None:
    """Give ``src`` the new name ``dest``; FileExistsError if that name is taken (never overwrites)."""
    try:
        os.link(src, dest)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        # Another file system (or no hard links): copy to a temporary name, fsync, then claim the name.
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, dest)
        finally:
            os.unlink(tmp)


def place_durably(src: Path, dest: Path) -> None:
    """Move ``src`` to the exact path ``dest`` (chosen and recorded beforehand); safe to repeat after a crash.

    Link-then-unlink: at every moment the file exists under at least one of the two names.
    """
    if not src.exists():
        return  # already moved by an earlier, interrupted run
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if not os.path.samefile(src, dest):
            raise FileExistsError(errno.EEXIST, f"{dest} already exists and is another file", str(dest))
    else:
        _link_or_copy(src, dest)
        fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _linked_copy(folder: Path, src: Path) -> Path | None:
    """``src`` already linked into ``folder`` under its name or a suffixed one (a run killed mid-move)."""
    stem, suffix = os.path.splitext(src.name)
    for candidate in folder.glob(f"{glob_escape(stem)}*{glob_escape(suffix)}"):
        try:
            if os.path.samefile(src, candidate):
                return candidate
        except OSError:
            continue
    return None


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def move_durably(src: Path, folder: Path, before_unlink: Callable[[Path], None] | None = None) -> Path:
    """Move a file into ``folder`` under a name not yet taken (``name-1.ext`` ...); never overwrites.

    ``before_unlink(dest)`` runs once the file is in place but still also at its old name (to write a
    note beside it): a run killed in between finds the file at both names and finishes the move.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dest = _linked_copy(folder, src)
    while dest is None:
        candidate = _unique_name(folder, src.name)
        try:
            _link_or_copy(src, candidate)
        except FileExistsError:
            continue  # another worker took the name just now
        dest = candidate
    fsync_dir(folder)
    if before_unlink is not None:
        before_unlink(dest)
    os.unlink(src)
    fsync_dir(src.parent)
    return dest


def publish(staged: Path, folder: Path, stem: str) -> Path:
    """Link a staged JPEG into ``folder`` as ``stem.jpg`` (or ``stem-N.jpg``); never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        dest = _unique_name(folder, f"{stem}.jpg")
        try:
            os.link(staged, dest)
        except FileExistsError:
            continue
        fsync_dir(folder)
        return dest


def _write_text_atomic(path: Path, text: str, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
