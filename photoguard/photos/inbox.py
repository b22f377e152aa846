"""What in the inbox is a photo to take: names and suffixes left alone (still being written, a Mac's companions),
and the files found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from photoguard.photos.images import PHOTO_SUFFIXES

# Names of files that are still being written or are not photos staff meant to share.
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".download", ".swp")


IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


def is_candidate(path: Path) -> bool:
    """Whether a file in the inbox is something to process (not a partial copy or system file).

    A hidden name that ends like a photo (".party.jpg", "..jpg") is a photo like any other; other hidden
    names are copies still being written (".IMG_1.jpg.Xb3k9" from rsync) or system files, as are a Mac's
    "._IMG_1.jpg" companions."""
    name = path.name
    lower = name.lower()
    if name.startswith(("~$", "._")) or lower in IGNORED_NAMES or lower.endswith(IGNORED_SUFFIXES):
        return False
    return not name.startswith(".") or "." + lower.lstrip(".").rsplit(".", 1)[-1] in PHOTO_SUFFIXES


def not_taken(inbox: Path) -> list[str]:
    """Files in the inbox PhotoGuard leaves alone (unfinished copies, a Mac's companion files), by their
    path in the inbox, so that no file waits there unseen; system files like Thumbs.db are not listed."""
    left = []
    for root, dirs, files in os.walk(inbox):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))   # as collect: hidden folders are not the staff's
        left += [(Path(root) / f).relative_to(inbox).as_posix() for f in sorted(files)
                 if f.lower() not in IGNORED_NAMES and not is_candidate(Path(root) / f)]
    return left


def collect(paths: Iterable[Path]) -> list[Path]:
    """Entries to process from files and folders (recursively), skipping partial copies and system files.

    Inside folders, links and other entries that are not regular files are listed too (they are refused
    to failed/ with a reason, never followed)."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
                found.extend(Path(root) / f for f in sorted(files + links) if is_candidate(Path(root) / f))
        elif os.path.lexists(path) and is_candidate(path):
            found.append(path)
    return found
