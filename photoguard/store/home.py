"""The PhotoGuard home: the folders staff and the manager use, and the private state folder."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from photoguard.store.config import Settings, load_settings

# Modes, set explicitly (never left to the umask). Staff drop photos into the inbox: writable by their
# group, and setgid so every file and folder dropped in belongs to that group too. The manager collects
# from the outbox: readable by her group. Everything that holds originals, uncleared faces or the roster
# is owner-only.
PRIVATE = 0o700
PRIVATE_FILE = 0o600
STAFF_DROP = 0o2770
MANAGER_READ = 0o750
OUTBOX_FILE = 0o640


class HomeError(Exception):
    """The home folder cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Home:
    root: Path
    settings: Settings

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def outbox_for(self, channel: str) -> Path:
        return self.outbox / channel

    @property
    def review(self) -> Path:
        return self.root / "review"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def enrol(self) -> Path:
        return self.root / "enrol"

    @property
    def roster_csv(self) -> Path:
        return self.enrol / "children.csv"

    @property
    def state(self) -> Path:
        return self.root / ".photoguard"

    @property
    def database(self) -> Path:
        return self.state / "photoguard.db"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def reports(self) -> Path:
        return self.state / "reports"

    @property
    def lock_file(self) -> Path:
        return self.state / "watch.lock"


def default_home() -> Path:
    return Path(os.environ.get("PHOTOGUARD_HOME") or Path.cwd())


def open_home(root: Path | str | None = None) -> Home:
    """Read the settings and create the layout if missing (owner-only where it holds private data)."""
    path = Path(root) if root is not None else default_home()
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(f"cannot create the PhotoGuard home {path}: {exc.strerror}. Choose another folder with --home.")
    settings = load_settings(path)
    home = Home(path, settings)
    modes = {home.inbox: STAFF_DROP, home.outbox: MANAGER_READ,
             **{home.outbox_for(c): MANAGER_READ for c in settings.channels},
             home.review: PRIVATE, home.failed: PRIVATE, home.archive: PRIVATE, home.enrol: PRIVATE,
             home.state: PRIVATE, home.logs: PRIVATE, home.reports: PRIVATE}
    try:
        for folder, mode in modes.items():
            folder.mkdir(mode=mode & 0o777, parents=True, exist_ok=True)
            _set_mode(folder, mode, shared=mode in (STAFF_DROP, MANAGER_READ))
        if not home.database.exists():
            # SQLite would create it (and its -wal/-shm files, which copy its mode) by the umask.
            os.close(os.open(home.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        _set_mode(home.database, PRIVATE_FILE, shared=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise HomeError(f"cannot prepare {exc.filename}: {exc.strerror}. Check the folder's permissions.")
    return home


def _set_mode(path: Path, mode: int, shared: bool) -> None:
    """Set ``mode`` exactly, whatever the umask. A shared folder (inbox, outbox) that belongs to another
    account (set up by the administrator for the staff group) is left as it is."""
    if stat.S_IMODE(os.stat(path).st_mode) == mode:
        return
    try:
        os.chmod(path, mode)
    except PermissionError:
        if not shared:
            raise
