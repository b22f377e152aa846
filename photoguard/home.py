"""The PhotoGuard home: the folders staff and the manager use, and the private state folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import Settings, load_settings

PRIVATE = 0o700


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
    public = [home.inbox, home.review, home.failed, *(home.outbox_for(c) for c in settings.channels)]
    private = [home.archive, home.enrol, home.state, home.logs, home.reports]
    try:
        for folder in public:
            folder.mkdir(parents=True, exist_ok=True)
        for folder in private:
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, PRIVATE)
    except OSError as exc:
        raise HomeError(f"cannot prepare {exc.filename}: {exc.strerror}. Check the folder's permissions.")
    return home
