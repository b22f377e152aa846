"""The watcher's upkeep between photos: the roster synced when enrol/ changes, new settings, a new day's re-check,
the daily purge, and the photos the manager asked on the pages to check again (``flow/redo``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import timedelta

from photoguard.flow.housekeeping import settings_signature
from photoguard.flow.watch_support import _disk_full
from photoguard.photos.durable import display_name


class Upkeep:
    """What the Watcher does when it is not processing a photo."""

    # Check again (flow/redo): when the requests folder was last looked at, and whether a request is being done.
    redo_looked_at: float = 0.0
    redo_busy: bool = False

    def _enrol_signature(self) -> tuple:
        items = []
        for root, dirs, files in os.walk(self.home.enrol):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.startswith("~$"):
                    continue  # editors' lock and temp files
                p = os.path.join(root, name)
                try:
                    st = os.stat(p)
                except FileNotFoundError:
                    continue
                items.append((p, st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(items)

    def _check_roster_files(self) -> None:
        signature = self._enrol_signature()
        if signature != self.roster_signature:
            if self.roster_changed_at is None:
                self.log.info("enrol/ changed: pausing until the roster is synced "
                              f"({len(self.inflight)} photo(s) in hand finish first)")
            self.roster_changed_at = time.monotonic()  # debounce: restart the wait on every change
            self.roster_reason = "enrol/ changed"
            self.roster_signature = signature

    def _sync_roster(self, reason: str) -> None:
        """With nothing in flight: sync the roster, reload it and re-check the outbox (this process)."""
        from photoguard.flow.recheck import recheck_outbox
        from photoguard.store.roster import sync_roster
        from photoguard.store.roster_csv import RosterError

        assert not self.inflight
        processor = self.processor
        started = time.monotonic()
        try:
            if not self.home.roster_csv.exists():
                if not processor.conn.execute("SELECT COUNT(*) FROM children").fetchone()[0]:
                    self.roster_broken = None  # a new home: no roster yet, so every face is obscured
                    self.log.info(f"no roster yet ({self.home.roster_csv}): every face will be obscured")
                    processor.reload_roster()
                    self._say_if_no_child()
                    return
                raise RosterError(f"{self.home.roster_csv} is missing. Put the roster back (or a roster with a "
                                  "header line only, to share no child); photos wait in the inbox until then")
            report = sync_roster(self.home, processor.conn, detector=lambda: processor.detector)
        except RosterError as exc:
            self.roster_broken = str(exc)
            self.log.error(f"roster not usable — processing paused, photos wait in the inbox: {exc}")
            return
        except Exception as exc:
            # Never the end of the watcher: consents are committed before anything that can fail here,
            # so the outbox is re-checked against them and processing waits until a sync succeeds.
            self.roster_broken = f"the roster could not be brought up to date ({type(exc).__name__})"
            self.log.exception(f"roster sync failed — processing paused, photos wait in the inbox; "
                               f"it is tried again when enrol/ changes: {type(exc).__name__}")
            processor.reload_roster()
            for change in recheck_outbox(processor):
                self.log.info(change.describe())
            return
        self.roster_broken = None
        for attr in ("problems", "warnings"):
            for problem in getattr(report, attr, None) or []:
                self.log.warning(f"roster: {problem}")
        processor.reload_roster()
        self._say_if_no_child()
        changes = recheck_outbox(processor)
        for change in changes:
            self.log.info(change.describe())
        self.log.info(f"roster synced ({reason}) in {time.monotonic() - started:.1f}s; "
                      f"{len(processor.consents)} child(ren), {len(processor.templates)} template(s)"
                      + ("" if reason == "start" else "; resuming"))

    def _roster_gate(self, now: float) -> bool:
        """True when dispatching may go on; runs a due roster sync or day change re-check when idle."""
        if self.clock.today() != self.day and self.roster_changed_at is None:
            self.log.info("a new day: re-checking the outbox against today's consents")
            self.day = self.clock.today()
            self.roster_changed_at = now - self.options.roster_debounce
            self.roster_reason = "a new day"
        if self.roster_changed_at is None:
            return self.roster_broken is None
        if now - self.roster_changed_at < self.options.roster_debounce or self.inflight:
            return False
        self.roster_changed_at = None
        self._sync_roster(self.roster_reason)
        return self.roster_broken is None

    def _say_if_no_child(self) -> None:
        """Once per run: photos processed now obscure every face, and can be redone once children are enrolled."""
        if self.processor.templates or self.empty_roster_said:
            return
        self.empty_roster_said = True
        self.log.warning("no child is enrolled (no reference photos on file): every face in every photo will be "
                         "obscured. Once children are enrolled, `photoguard reprocess --before-enrolment` "
                         "processes these photos again")

    def _check_settings_file(self, now: float) -> None:
        signature = settings_signature(self.home.root)
        if signature != self.settings_seen:
            self.settings_seen = signature
            if self.settings_changed_at is None:
                self.log.info("photoguard.toml changed: pausing until it is read "
                              f"({len(self.inflight)} photo(s) in hand finish first)")
            self.settings_changed_at = now   # debounce: an editor may write the file in several steps

    def _housekeeping(self, now: float) -> bool:
        """True when dispatching may go on. Reads changed settings once nothing is in hand; runs the daily
        purge when the day has changed; removes quiet, empty inbox folders."""
        if self.settings_changed_at is not None:
            if now - self.settings_changed_at < self.options.roster_debounce or self.inflight:
                return False
            self.settings_changed_at = None
            self._apply_settings()
        if self.clock.today() != self.purged_on:
            self._daily_purge()
        if self.folders.taken and now - self.folders_swept >= 1.0:
            self.folders_swept = now
            after = timedelta(minutes=self.home.settings.inbox_remove_empty_after_minutes)
            busy = {p.parent for p in self.pending} | {j.path.parent for j in self.inflight.values()}
            for folder in self.folders.sweep(self.clock.now(), after, busy):
                where = display_name(str(folder.relative_to(self.home.inbox)))
                self.log.info(f"removed the empty inbox folder {where}/ (its photos were all taken)")
        return self._check_again(now)

    def _check_again(self, now: float) -> bool:
        """True when dispatching may go on. The manager's Check again requests, one photo at a time with
        nothing else in hand: new photos are taken between two of them, so neither waits long for the other.
        Never before a pending roster sync (a child just enrolled is what she wants to see)."""
        from photoguard.flow.redo import pending, work_one

        if self.roster_changed_at is not None or self.roster_broken is not None:
            return True
        if not self.redo_busy and now - self.redo_looked_at < 1.0:
            return True
        self.redo_looked_at = now
        self.redo_busy = bool(pending(self.home))
        if not self.redo_busy:
            return True
        self._check_roster_files()   # an edit of enrol/ whose notice is not in yet must not be outrun
        if self.roster_changed_at is not None:
            return True
        if self.inflight:
            return False   # take no new photo until the ones in hand are done
        try:
            work_one(self.processor, self.log, self.clock.today())
        except Exception as exc:
            if _disk_full(exc):
                raise
            # Never the end of the watcher: the request stays and is tried again (said in the log).
            self.log.error(f"checking photos again stopped ({type(exc).__name__}); it is tried again in 30 s")
            self.redo_looked_at = now + 30.0
            self.redo_busy = False
        return True

    def _apply_settings(self) -> None:
        """New settings for everything from the next photo on: a new engine here and new workers."""
        from photoguard.flow.housekeeping import reload_settings
        from photoguard.flow.pipeline import Processor
        from photoguard.flow.recheck import recheck_outbox
        from photoguard.store.config import ConfigError
        from photoguard.store.home import HomeError, open_home

        assert not self.inflight
        reload = reload_settings(self.home.root, self.home.settings)
        if reload.settings is None:
            self.settings_problem = reload.problem
            self.log.error(reload.describe())
            return
        self.settings_problem = None
        if not reload.changed:
            self.log.info(reload.describe())
            return
        try:
            home = open_home(self.home.root)   # makes the outbox folder of a new channel
        except (ConfigError, HomeError) as exc:
            self.settings_problem = str(exc)
            self.log.error(f"photoguard.toml changed but cannot be used: {exc} — carrying on with the settings it "
                           "had before")
            return
        old = self.processor
        self.home = home
        self.processor = Processor(home)
        old.conn.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.workers = self.options.workers or home.settings.worker_count
        for change in recheck_outbox(self.processor):
            self.log.info(change.describe())
        self._ensure_pool()
        self.log.info(reload.describe())

    def _daily_purge(self) -> None:
        from photoguard.flow.housekeeping import daily_purge

        today, before = self.clock.today(), self.purged_on
        self.purged_on = today   # once a day, whatever happens
        try:
            purged = daily_purge(self.home, self.processor.conn, today)
        except (OSError, sqlite3.OperationalError) as exc:
            if _disk_full(exc):
                self.purged_on = before   # tried again once there is space
                raise
            self.log.error(f"the daily clean-up could not finish ({exc}); it is tried again tomorrow, "
                           "or run `photoguard purge`")
            return
        if purged:
            self.log.info(f"daily clean-up: {len(purged)} file(s) older than "
                          f"{self.home.settings.archive_retention_days} days deleted")
