"""A running watcher's housekeeping: the daily purge (with a clock file, not a mock), settings reloaded
between photos (a broken photoguard.toml keeps the old ones and says so), empty inbox folders removed."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from test_watch import Watch, files, tiny_jpeg, wait_until

from photoguard.cli import main
from photoguard.flow.housekeeping import Clock, EmptyFolders
from photoguard.store import db
from photoguard.store.home import open_home


def set_clock(path: Path, when: datetime) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(when.isoformat(timespec="seconds"), encoding="utf-8")
    os.replace(tmp, path)


def events(home, kind: str) -> list[str]:
    conn = db.connect(home.database)
    try:
        return [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id", (kind,))]
    finally:
        conn.close()


def names(folder: Path) -> set[str]:
    return {p.name for p in files(folder)}


def test_empty_folders_only_quiet_empty_and_ours(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "Room 2" / "Sports day").mkdir(parents=True)
    (inbox / "Room 3").mkdir()
    (inbox / "Room 3" / ".keep").write_text("")
    (inbox / "Made by staff").mkdir()
    folders = EmptyFolders(inbox)
    start = datetime(2026, 11, 24, 9, 0)
    folders.took_from(inbox / "Room 2" / "Sports day" / "a.jpg", start)
    folders.took_from(inbox / "Room 3" / "b.jpg", start)
    folders.took_from(inbox / "c.jpg", start)                  # inbox/ itself is never a candidate
    ten = timedelta(minutes=10)
    assert folders.sweep(start + timedelta(minutes=9), ten, set()) == []
    assert folders.sweep(start + ten, ten, {inbox / "Room 2" / "Sports day"}) == []   # a photo still waiting there
    assert folders.sweep(start + ten, ten, set()) == [inbox / "Room 2" / "Sports day"]
    assert (inbox / "Room 2").is_dir()        # no photo was taken from Room 2 itself
    assert (inbox / "Room 3" / ".keep").exists() and (inbox / "Made by staff").is_dir() and inbox.is_dir()
    assert folders.sweep(start + ten, timedelta(0), set()) == []   # 0 = never


def test_clock_file(tmp_path):
    clock = Clock(tmp_path / "clock")
    assert abs(clock.now() - datetime.now()) < timedelta(minutes=1)   # no file yet: the computer's clock
    ahead = datetime.now() + timedelta(days=100)
    set_clock(tmp_path / "clock", ahead)
    assert clock.today() == ahead.date()
    # Never behind the computer's clock: yesterday would keep a consent that ended today valid.
    set_clock(tmp_path / "clock", datetime.now() - timedelta(days=1))
    assert clock.today() == datetime.now().date()


def test_running_watcher_purges_daily_reloads_settings_and_tidies_the_inbox(tmp_path):
    home = open_home(tmp_path / "home")
    clock_file = tmp_path / "clock"
    now = datetime.now().replace(microsecond=0)
    set_clock(clock_file, now)
    sports = home.inbox / "Room 2" / "Sports day"
    sports.mkdir(parents=True)
    (home.inbox / "Made by staff").mkdir()
    watch = Watch(home.root, "--workers", "1", "--decode-timeout", "2", "--clock-file", str(clock_file)).wait_watching()
    try:
        # Photos taken from a subfolder: it is removed once it has been empty and quiet for 10 minutes.
        (sports / "race.jpg").write_bytes(tiny_jpeg(1))
        (home.inbox / "junk.jpg").write_bytes(b"not a photo")
        wait_until(lambda: names(home.outbox_for("facebook")) == {"race.jpg"} and names(home.failed),
                   60, "the photos to be processed", watch.proc)
        time.sleep(2.5)
        assert sports.is_dir()                         # not quiet for long enough yet
        set_clock(clock_file, now + timedelta(minutes=11))
        wait_until(lambda: not sports.exists(), 20, "the empty folder to be removed", watch.proc)
        assert (home.inbox / "Room 2").is_dir() and (home.inbox / "Made by staff").is_dir()
        assert watch.output().count("no child is enrolled") == 1     # warned once per run, not per photo
        # (Said after the folder is gone: the line may still be on its way through the pipe.)
        wait_until(lambda: "removed the empty inbox folder Room 2/Sports day/" in watch.output(), 10,
                   "the removal to be said", watch.proc)

        # A new channel in photoguard.toml: the next photo has a copy for it.
        (home.root / "photoguard.toml").write_text('channels = ["facebook", "website"]\n', encoding="utf-8")
        wait_until(lambda: "now using the new channels" in watch.output(), 30, "the settings to be read", watch.proc)
        (home.inbox / "picnic.jpg").write_bytes(tiny_jpeg(2))
        wait_until(lambda: names(home.outbox_for("website")) == {"picnic.jpg"}, 60, "the website copy", watch.proc)

        # A broken file: the watcher says so, carries on with the settings it had, and status says so too.
        (home.root / "photoguard.toml").write_text('channels = ["facebook", \n', encoding="utf-8")
        wait_until(lambda: "cannot be used" in watch.output(), 30, "the broken settings to be noticed", watch.proc)
        (home.inbox / "swings.jpg").write_bytes(tiny_jpeg(3))
        wait_until(lambda: "swings.jpg" in names(home.outbox_for("website")), 60, "the old settings to be kept",
                   watch.proc)
        status = CliRunner().invoke(main, ["status", "--home", str(home.root)])
        assert status.exit_code == 0, status.output
        assert "photoguard.toml cannot be used" in status.output and "not valid TOML" in status.output
        assert "watcher: running" in status.output

        # The daily purge: a month on, the originals and the failed file are gone, with audit events.
        assert len(events(home, "housekeeping")) == 1     # at start
        assert len(files(home.archive)) == 3
        set_clock(clock_file, now + timedelta(days=31))
        wait_until(lambda: len(events(home, "housekeeping")) == 2, 30, "the daily purge", watch.proc)
        assert not files(home.archive) and not files(home.failed)
        day = (now + timedelta(days=31)).date().isoformat()
        assert events(home, "housekeeping")[-1].startswith(f"{day}: daily purge — 3 original(s)")
        assert len(events(home, "purged")) == 4   # three originals, and the photo that failed
        assert names(home.outbox_for("facebook")) == {"race.jpg", "picnic.jpg", "swings.jpg"}   # never touched
    finally:
        assert watch.stop() == 0, watch.output()
