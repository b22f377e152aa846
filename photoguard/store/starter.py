"""Homes are made on purpose: what marks a folder as a PhotoGuard home, and ``photoguard init``.

A folder is a home when it has the private state folder ``.photoguard/`` (every home made by
earlier versions has it, with the database inside). ``init`` makes one: the layout as
``home.open_home`` makes it, a starter ``photoguard.toml`` with every setting commented out at its
default, a ``enrol/children.csv`` with the header and an example row commented out, and the
database. The command line refuses any other folder, so a mistyped ``--home`` or a source checkout
never silently becomes an empty home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from photoguard.store import db
from photoguard.store.config import _ATTR_TO_KEY, SETTINGS_FILE, Settings
from photoguard.store.home import Home, HomeError, default_home, open_home

STATE_DIR = ".photoguard"

# Names a folder may already hold and still become a home: the home's own folders and files (the
# manager may have made inbox/ or filled in enrol/ first), and a mounted disk's lost+found.
_HOME_NAMES = {"inbox", "outbox", "review", "failed", "archive", "enrol", STATE_DIR, SETTINGS_FILE, "lost+found"}

# What each setting means, for the starter photoguard.toml (keys as written in the file).
SETTING_HELP: dict[str, str] = {
    "channels": "Where photos are shared: one outbox folder and one consent column in children.csv each.",
    "workers": "Photos processed at the same time (worker processes); 0 = one per processor core.",
    "match.similarity": "How alike a face must be to a child's reference photos to count as that child "
                        "(higher = stricter). `photoguard calibrate` suggests a value for your children.",
    "match.margin": "How much less alike the next most alike child must be; a face like two children is obscured.",
    "match.ask_from": "A face not quite alike enough to show, but at least this alike to a child with consent: "
                      "the photo waits in review asking whether it is that child (1 = never ask; the face "
                      "is then obscured).",
    "match.ask_standout": "Ask only about a face that looks like that child much more than like the other children "
                          "(higher = fewer questions about children who are not enrolled; 0 = ask anyway).",
    "match.max_false_show": "The chance `photoguard calibrate` allows that a child who is not enrolled is shown "
                            "as one who is (0.001 = one in a thousand).",
    "match.min_face_px": "Faces narrower than this many pixels are too small to recognise: always obscured.",
    "detect.threshold": "How sure the face finder must be (lower finds more faces; a speck obscured by mistake "
                        "is the safe error).",
    "obscure.method": "\"pixelate\" (coarse blocks with noise) or \"fill\" (a solid colour). Both cannot be undone.",
    "obscure.grow": "How much larger than the face the obscured area is (1.3 takes in hair and ears).",
    "archive.retention_days": "Days the original photos are kept in archive/ before `photoguard purge` deletes them "
                              "(the running watcher purges once a day).",
    "inbox.remove_empty_after_minutes": "Minutes after its last photo was taken that the watcher removes an empty "
                                        "inbox subfolder it took photos from (0 = never). inbox/ itself always stays.",
}


class NotAHome(HomeError):
    """A command was given a folder that is not a PhotoGuard home."""


@dataclass(frozen=True)
class InitResult:
    home: Home
    already: bool  # the folder was a home before
    written: list[Path] = field(default_factory=list)  # starter files written now


def is_home(folder: Path | str) -> bool:
    return (Path(folder) / STATE_DIR).is_dir()


def require_home(folder: Path | str | None = None) -> Path:
    """The home folder, or NotAHome naming the folder and how to make it one."""
    path = (Path(folder) if folder is not None else default_home()).expanduser().absolute()
    if is_home(path):
        return path
    how = f"To make a new home there: photoguard init {_shell_word(path)}"
    where = "Give the home with --home DIR (or set PHOTOGUARD_HOME)."
    if not path.exists():
        raise NotAHome(f"{path} does not exist. {where} {how}")
    if not path.is_dir():
        raise NotAHome(f"{path} is a file, not a PhotoGuard home. {where}")
    if any(p.name not in _HOME_NAMES for p in path.iterdir()):
        how = "To make a new home: photoguard init DIR (a new or empty folder)"
    raise NotAHome(f"{path} is not a PhotoGuard home (it has no {STATE_DIR}/ folder). "
                   f"{where} {how}")


def _shell_word(path: Path) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "/._-+" for c in text) else "'" + text.replace("'", "'\\''") + "'"


def _toml_value(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def starter_settings() -> str:
    """photoguard.toml with every setting commented out at its default, each with what it means.

    Section headers are left in (an empty section changes nothing), so taking the '#' off one line
    is enough to change a setting.
    """
    defaults = Settings()
    by_section: dict[str, list[tuple[str, object]]] = {}
    for f in fields(Settings):
        if f.name == "sources":
            continue
        key = _ATTR_TO_KEY[f.name]
        by_section.setdefault(key.rpartition(".")[0], []).append((key, getattr(defaults, f.name)))
    lines = [
        "# PhotoGuard settings for this home. Every line starting with # is the default, unchanged.",
        "# To change a setting, remove the # in front of it and edit the value; keep the [section] lines.",
        "# `photoguard config` shows the settings in effect and where each came from.",
    ]
    for section in sorted(by_section, key=lambda s: (s != "", s)):
        lines.append("")
        if section:
            lines.append(f"[{section}]")
        for key, value in by_section[section]:
            lines.append(f"# {SETTING_HELP.get(key, 'See the README.')}")
            lines.append(f"# {key.rpartition('.')[2]} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def starter_roster(channels: tuple[str, ...]) -> str:
    """children.csv with the header and a commented example row (lines starting with # are ignored)."""
    header = ",".join(["id", "name", "face_matching", *channels, "expires"])
    example = ",".join(["ada", "Ada Lovelace", "yes", *(["yes"] + ["no"] * (len(channels) - 1)), "2027-07-31"])
    return (
        "# One line per child. Lines starting with # are ignored.\n"
        "# id: letters and digits (also - and _). The child's reference photos go in enrol/<id>/\n"
        "# face_matching: the parents allow face matching (yes/no). One column per channel: yes/no\n"
        "# expires: the last day the consent is valid (YYYY-MM-DD) or empty for no end date\n"
        f"{header}\n"
        f"# {example}\n"
    )


def _write_new(path: Path, text: str, mode: int) -> bool:
    """Write ``path`` complete or not at all, never over an existing file. True if written."""
    if path.exists():
        return False
    temp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, mode)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
    finally:
        temp.unlink(missing_ok=True)
    return True


def init_home(folder: Path | str) -> InitResult:
    """Make ``folder`` a PhotoGuard home (new, empty, or already a home: missing parts are added).

    Never overwrites a file; refuses a folder holding anything but a home's own folders.
    """
    path = Path(folder).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise HomeError(f"{path} is a file. Choose a new or empty folder for the PhotoGuard home.")
    already = is_home(path)
    if path.is_dir() and not already:
        others = sorted(p.name for p in path.iterdir() if p.name not in _HOME_NAMES)
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise HomeError(f"{path} is not empty and is not a PhotoGuard home (it holds {shown}). "
                            "Choose a new or empty folder for the home, so photos never mix with other files.")
    home = open_home(path)
    written = []
    try:
        if _write_new(home.root / SETTINGS_FILE, starter_settings(), 0o644):
            written.append(home.root / SETTINGS_FILE)
        if _write_new(home.roster_csv, starter_roster(home.settings.channels), 0o600):
            written.append(home.roster_csv)
        db.connect(home.database).close()
    except OSError as exc:
        raise HomeError(f"cannot write {exc.filename or home.root}: {exc.strerror}. Check the folder's permissions.")
    return InitResult(home, already, written)
