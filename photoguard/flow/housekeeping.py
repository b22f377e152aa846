"""What the running watcher does besides photos: the daily purge, settings reloads, empty inbox folders.

The watcher calls these between photos; each is a plain function or a small object over the home, so
a test drives them with a real watcher and a clock file instead of waiting a day.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from photoguard.flow.audit import Purged, purge_archive
from photoguard.store.config import SETTINGS_FILE, ConfigError, Settings, load_settings
from photoguard.store.db import transaction
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

HOUSEKEEPING = "housekeeping"   # events.kind of the daily purge


@dataclass(frozen=True)
class Clock:
    """The watcher's idea of now: the computer's clock, or (for tests and rehearsals) the date and time
    written in ``file`` (ISO, e.g. ``2026-12-01T09:00``), read afresh each time. Never earlier than the
    computer's clock: a date in the past would keep an expired consent valid."""
    file: Path | None = None

    def now(self) -> datetime:
        real = datetime.now()
        if self.file is not None:
            try:
                when = datetime.fromisoformat(self.file.read_text(encoding="utf-8").strip())
            except (OSError, ValueError):
                return real  # a clock file being rewritten: the computer's clock for this look
            if when.tzinfo is not None:
                when = when.astimezone().replace(tzinfo=None)
            return max(when, real)
        return real

    def today(self) -> date:
        return self.now().date()


# --- the daily purge ----------------------------------------------------------------------------------


def last_purge_day(conn: sqlite3.Connection) -> date | None:
    """The day (as the watcher's clock saw it) of the last daily purge, from the audit trail."""
    row = conn.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (HOUSEKEEPING,)).fetchone()
    if row is None or not row["detail"]:
        return None
    try:
        return date.fromisoformat(row["detail"][:10])
    except ValueError:
        return None


def daily_purge(home: Home, conn: sqlite3.Connection, today: date) -> list[Purged]:
    """``photoguard purge`` (the same function), then one audit event saying the day and how much went."""
    purged = purge_archive(home, conn, today=today)
    originals = sum(1 for p in purged if p.path.is_relative_to(home.archive) and "duplicates" not in p.path.parts)
    with transaction(conn):
        conn.execute("INSERT INTO events (at, kind, detail) VALUES (?,?,?)",
                     (now_iso(), HOUSEKEEPING,
                      f"{today.isoformat()}: daily purge — {originals} original(s) older than "
                      f"{home.settings.archive_retention_days} days and {len(purged) - originals} other old "
                      "file(s) deleted"))
    return purged


# --- settings -----------------------------------------------------------------------------------------


def settings_signature(root: Path) -> tuple | None:
    try:
        st = os.stat(root / SETTINGS_FILE)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class SettingsReload:
    settings: Settings | None   # the new settings, or None when the file is not usable
    problem: str | None         # why the file was not used (the old settings stay)
    changed: tuple[str, ...] = ()   # toml keys whose values changed

    def describe(self) -> str:
        if self.problem:
            return (f"{SETTINGS_FILE} changed but cannot be used: {self.problem} — carrying on with the settings "
                    "it had before; fix the file and they are read again")
        if not self.changed:
            return f"{SETTINGS_FILE} changed; no setting is different"
        return f"{SETTINGS_FILE} changed: now using the new {', '.join(self.changed)}"


def reload_settings(root: Path, current: Settings) -> SettingsReload:
    from photoguard.store.config import effective_settings

    try:
        new = load_settings(root)
    except ConfigError as exc:
        return SettingsReload(None, str(exc))
    before = {k: v for k, v, _ in effective_settings(current)}
    changed = tuple(k for k, v, _ in effective_settings(new) if before.get(k) != v)
    return SettingsReload(new, None, changed)


# --- empty inbox folders ------------------------------------------------------------------------------


@dataclass
class EmptyFolders:
    """Inbox subfolders PhotoGuard took a photo from, and when it last did. Once one has been quiet for
    ``after`` and holds nothing at all (no file, hidden or not, no folder), it is removed. inbox/ itself
    and folders PhotoGuard never took a photo from (staff made them on purpose) are never touched."""
    inbox: Path
    taken: dict[Path, datetime] = field(default_factory=dict)

    def took_from(self, photo: Path, when: datetime) -> None:
        folder = photo.parent
        if folder != self.inbox and folder.is_relative_to(self.inbox):
            self.taken[folder] = when

    def sweep(self, now: datetime, after: timedelta, busy: set[Path]) -> list[Path]:
        """Remove the quiet, empty ones; ``busy``: folders with a photo waiting or in hand. Returns what went."""
        removed = []
        if after <= timedelta(0):
            return removed
        # Deepest first, so Sports day/ goes before Room 2/ (if photos were taken from both).
        for folder in sorted(self.taken, key=lambda p: len(p.parts), reverse=True):
            if now - self.taken[folder] < after or folder in busy:
                continue
            try:
                st = os.lstat(folder)
                if not stat.S_ISDIR(st.st_mode):
                    del self.taken[folder]   # replaced by a file or a link: not ours to remove
                    continue
                os.rmdir(folder)             # only ever succeeds on an empty folder
            except FileNotFoundError:
                del self.taken[folder]
                continue
            except OSError:
                continue                     # not empty (or not allowed): leave it, look again later
            del self.taken[folder]
            removed.append(folder)
        return removed
