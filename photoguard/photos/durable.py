"""Durable files: staging, linking and moving photos so that a crash at any moment loses nothing and
nothing is ever overwritten. No decisions here; the pipeline and review decide what goes where.

Names: every name PhotoGuard writes is valid UTF-8 and short enough for any file system
(:func:`safe_name`), whatever name staff gave the photo. Links are never followed: a symbolic link is
moved as the link itself. Modes are set explicitly (``os.fchmod``/``os.chmod``), never left to the umask.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from photoguard.photos.save import fsync_dir, write_all

__all__ = ["_unique_name", "_link_or_copy", "place_durably", "_linked_copy", "glob_escape", "move_durably",
           "publish", "_write_text_atomic", "write_note", "fsync_dir", "display_name", "safe_name",
           "same_entry", "PRIVATE_FILE"]

PRIVATE_FILE = 0o600
# Most file systems allow 255 bytes per name. PhotoGuard's own names add at most ~40 bytes to a base name
# ("-12345" to make it unique, ".txt" for a note, ".<name>.<hex>.tmp" while writing), so base names are
# kept to this many bytes.
MAX_NAME_BYTES = 200


def display_name(name: str | os.PathLike) -> str:
    """A name a person (and SQLite, JSON, a terminal) can read: bytes that are not UTF-8 (Latin-1 from an
    old share arrives as surrogate escapes) become U+FFFD, control characters become '?'."""
    text = os.fsencode(name).decode("utf-8", "replace")
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def safe_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` as PhotoGuard may write it: readable UTF-8, no '/', at most ``limit`` bytes, extension kept.

    A shortened name ends in '~' and a short hash of the whole original name, so two long names that
    begin alike stay apart.
    """
    text = display_name(name).replace("/", "_").strip() or "photo"
    visible = text.lstrip(".")
    if visible != text:   # a name PhotoGuard writes is never hidden: ".party.jpg" -> "party.jpg", "..jpg" -> "photo.jpg"
        text = visible if "." in visible else f"photo.{visible}" if visible else "photo"
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    stem, suffix = os.path.splitext(text)
    if len(suffix.encode("utf-8")) > 16:
        stem, suffix = text, ""
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    room = limit - len(suffix.encode("utf-8")) - len(tag)
    # Cut at a byte count, then drop a character cut in half: the result is always valid UTF-8.
    short = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{short}{tag}{suffix}"


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def same_entry(a: Path, b: Path) -> bool:
    """Whether two names are the same file (inode), without following links."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _unique_name(folder: Path, name: str, companions: tuple[str, ...] = ()) -> Path:
    """The first free name ``name``, ``stem-1.ext``, ... in ``folder`` (shortened safely). With
    ``companions`` (e.g. ``(".txt",)``) the name plus each companion suffix must be free too, so a note
    written beside the file never lands on another file."""
    stem, suffix = os.path.splitext(safe_name(name))
    candidate = folder / f"{stem}{suffix}"
    n = 0
    while _lexists(candidate) or any(_lexists(candidate.with_name(candidate.name + c)) for c in companions):
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def _link_or_copy(src: Path, dest: Path) -> None:
    """Give ``src`` the new name ``dest``; FileExistsError if that name is taken (never overwrites).

    A symbolic link is linked as the link itself, never its target."""
    try:
        os.link(src, dest, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        # Another file system (or no hard links): copy to a temporary name, fsync, then claim the name.
        tmp = dest.with_name(f".{safe_name(dest.name, 180)}.{secrets.token_hex(4)}.tmp")
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), tmp)
        elif stat.S_ISREG(st.st_mode):
            _copy_regular(src, tmp)
        else:
            raise
        try:
            os.link(tmp, dest, follow_symlinks=False)
        finally:
            os.unlink(tmp)


def _copy_regular(src: Path, dest: Path) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            os.fchmod(fd_out, PRIVATE_FILE)
            while chunk := os.read(fd_in, 1 << 20):
                write_all(fd_out, chunk)
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def place_durably(src: Path, dest: Path) -> None:
    """Move ``src`` to the exact path ``dest`` (chosen and recorded beforehand); safe to repeat after a crash.

    Link-then-unlink: at every moment the file exists under at least one of the two names.
    """
    if not _lexists(src):
        return  # already moved by an earlier, interrupted run
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _lexists(dest):
        if not same_entry(src, dest):
            raise FileExistsError(errno.EEXIST, f"{dest} already exists and is another file", str(dest))
    else:
        _link_or_copy(src, dest)
        fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _linked_copy(folder: Path, src: Path, name: str | None = None) -> Path | None:
    """``src`` already linked into ``folder`` under ``name`` or a suffixed one (a run killed mid-move)."""
    stem, suffix = os.path.splitext(safe_name(name or src.name))
    for candidate in folder.glob(f"{glob_escape(stem)}*{glob_escape(suffix)}"):
        if same_entry(src, candidate):
            return candidate
    return None


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def move_durably(src: Path, folder: Path, before_unlink: Callable[[Path], None] | None = None,
                 name: str | None = None, companions: tuple[str, ...] = ()) -> Path:
    """Move a file (or a link itself, or a FIFO: any entry but a folder) into ``folder`` under a name not
    yet taken (``name-1.ext`` ...); never overwrites. ``name`` defaults to the entry's own (shortened).

    ``before_unlink(dest)`` runs once the file is in place but still also at its old name (to write a
    note beside it): a run killed in between finds the file at both names and finishes the move.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = name or src.name
    dest = _linked_copy(folder, src, name)
    while dest is None:
        candidate = _unique_name(folder, name, companions)
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


def publish(staged: Path, folder: Path, stem: str, companions: tuple[str, ...] = ()) -> Path:
    """Link a staged JPEG into ``folder`` as ``stem.jpg`` (or ``stem-N.jpg``); never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        dest = _unique_name(folder, f"{safe_name(stem, MAX_NAME_BYTES - 4)}.jpg", companions)
        try:
            os.link(staged, dest)
        except FileExistsError:
            continue
        fsync_dir(folder)
        return dest


def staged_copy(src: Path, dest: Path) -> Path:
    """A durable copy of a staged file under a new name in the same staging folder (a file of its own,
    not a link: each channel's outbox file must be independent of the others)."""
    shutil.copyfile(src, dest)
    os.chmod(dest, stat.S_IMODE(os.stat(src).st_mode))   # the mode chosen for src, not the umask's
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())
    fsync_dir(dest.parent)
    return dest


def _write_text_atomic(path: Path, text: str, private: bool = False) -> None:
    """Write ``path`` whole or not at all (replacing what PhotoGuard wrote there before); 0600 if private,
    else 0644 — set explicitly, whatever the umask."""
    mode = PRIVATE_FILE if private else 0o644
    tmp = path.with_name(f".{safe_name(path.name, 180)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)   # a full disk leaves no half-written temp file behind
        raise
    fsync_dir(path.parent)


def write_note(path: Path, text: str, mode: int = PRIVATE_FILE) -> Path:
    """Write a note at ``path`` (or ``stem-note-N.txt`` beside it if that name is taken): never replaces
    a file. The name is claimed with a hard link, which fails instead of overwriting. Returns the path."""
    tmp = path.with_name(f".{safe_name(path.name, 180)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        stem, suffix = os.path.splitext(path.name)
        candidate, n = path, 0
        while True:
            try:
                os.link(tmp, candidate)
                break
            except FileExistsError:
                if _same_text(candidate, text):
                    break  # written by an earlier run killed before it finished the move
                n += 1
                candidate = path.with_name(f"{stem}-note-{n}{suffix}")
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
    return candidate


def _same_text(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        want = text.encode("utf-8")
        return stat.S_ISREG(st.st_mode) and st.st_size == len(want) and os.read(fd, len(want) + 1) == want
    finally:
        os.close(fd)


# Folder names inside an outbox stay short enough that folder + file name fit any file system's limits.
MAX_FOLDER_BYTES = 100


def drop_folder(source_path: str | os.PathLike | None, inbox: Path) -> Path:
    """The folder a photo was dropped in, relative to the inbox (``Room 2/Sports day``), as PhotoGuard may
    write it: each part through ``safe_name``, never ``..`` or an absolute path, never a hidden (dot) name
    (the outbox's own scan skips those). ``Path()`` for a photo dropped straight into the inbox or from
    anywhere else."""
    if not source_path:
        return Path()
    parent = Path(os.path.abspath(os.fsdecode(source_path))).parent
    for base in (os.path.abspath(inbox), os.path.realpath(inbox)):
        try:
            rel = parent.relative_to(base)
            break
        except ValueError:
            continue
    else:
        return Path()
    parts = []
    for part in rel.parts:
        if part in ("", ".", ".."):
            continue
        if part.startswith("."):   # a hidden folder stays recognisable: ".trip" -> "_trip", "..." -> "_"
            part = "_" + part.lstrip(".")
        parts.append(safe_name(part, MAX_FOLDER_BYTES))
    return Path(*parts)


def make_folders(base: Path, rel: Path) -> Path:
    """``base/rel``, creating each missing folder with ``base``'s own mode (an outbox shared with the
    manager's group stays shared, a private review folder stays private), whatever the umask."""
    base.mkdir(parents=True, exist_ok=True)
    folder, mode = base, stat.S_IMODE(os.stat(base).st_mode)
    for part in rel.parts:
        candidate, n = folder / part, 0
        while os.path.lexists(candidate) and not (candidate.is_dir() and not candidate.is_symlink()):
            n += 1   # a file (or a link) took the folder's name: never write through it
            candidate = folder / f"{part}-{n}"
        try:
            candidate.mkdir()
            os.chmod(candidate, mode)
        except FileExistsError:
            pass    # another worker made it just now
        folder = candidate
    return folder
