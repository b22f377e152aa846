"""A ready-to-run demo home: the sample photos in its inbox and the demo roster in its enrol folder.

Processing is left to the caller (``photoguard demo`` runs enrol, process and report on it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from photoguard.photos.images import PHOTO_SUFFIXES
from photoguard.store.home import Home
from photoguard.store.starter import init_home


class DemoError(Exception):
    """The demo home cannot be built; the message says what to do."""


def demo_data_root() -> Path:
    """Where ``samples/`` and ``enrol/`` are: inside the installed package, else the source checkout."""
    package = Path(__file__).resolve().parent.parent   # photoguard/
    packaged = package / "demo_data"
    return packaged if packaged.is_dir() else package.parent


def _copy_private(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o600)


def build_demo_home(target: Path, repo_root: Path) -> Home:
    """Create a PhotoGuard home at ``target`` with ``samples/`` in the inbox and ``enrol/`` copied in.

    ``target`` must be new or empty, so a demo never mixes with real photos.
    """
    target = Path(target).expanduser().absolute()
    samples, enrol = Path(repo_root) / "samples", Path(repo_root) / "enrol"
    if not samples.is_dir() or not (enrol / "children.csv").is_file():
        raise DemoError(f"the demo photos are missing: expected {samples}/ and {enrol}/children.csv. "
                        "Run the demo from a copy of the PhotoGuard source (or rebuild them with "
                        "`uv run python samples/make_samples.py`).")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DemoError(f"{target} already exists and is not empty. Choose a new folder for the demo, "
                        "or delete that one first.")
    home = init_home(target).home
    photos = sorted(p for p in samples.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    for photo in photos:
        shutil.copyfile(photo, home.inbox / photo.name)
    # The roster and reference photos are as private as the children's faces.
    _copy_private(enrol / "children.csv", home.roster_csv)
    for child_dir in sorted(p for p in enrol.iterdir() if p.is_dir()):
        dest = home.enrol / child_dir.name
        dest.mkdir(mode=0o700, exist_ok=True)
        for ref in sorted(child_dir.iterdir()):
            if ref.is_file() and ref.suffix.lower() in PHOTO_SUFFIXES:
                _copy_private(ref, dest / ref.name)
    return home
