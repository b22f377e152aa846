"""``photoguard watch``: process photos as they arrive in inbox/, for days on end, without losing one.

How a dropped file travels:
1. seen (an inotify/polling event, the scan at start, or the periodic rescan) -> ``pending``;
2. taken once its writer is done AND it decodes (a cheap check here; the worker decodes it fully).
   With file notifications (inotify) the writer is done when it closes the file after writing, or
   when the file arrives whole by a rename; otherwise (polling, network shares, the scans) once its
   size and mtime have not changed for ``settle`` seconds. A file that never decodes is still handed
   over after ``decode_timeout`` seconds unchanged, so the pipeline routes it to failed/ with a reason;
3. hashed here and dispatched to a worker process (one per worker at once, with the photo that worker
   will most likely get next, which it decodes meanwhile; the rest of the backlog waits as paths, not
   as pixels). Two files with the same bytes are never in flight together: the second waits and the
   pipeline archives it as a duplicate.

The journal (table ``photos``) and the pipeline's staging make a crash at any moment safe; this
module adds: resume at start, one watcher per home (``hold_lock``), no worker of a dead watcher still
running when the next one starts (``workers.lock``), and roster changes that pause dispatching so a
withdrawn consent is never outrun by a photo already queued.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import multiprocessing
import os
import queue
import secrets
import signal
import sqlite3
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from photoguard.flow.arrivals import Arrivals, _Waiting
from photoguard.flow.batch import _work
from photoguard.flow.housekeeping import Clock, EmptyFolders, settings_signature
from photoguard.flow.results import DiskFull, PhotoResult
from photoguard.flow.upkeep import Upkeep
from photoguard.flow.watch_status import STATUS_FILE
from photoguard.flow.watch_support import (LOG_NAME, WORKERS_LOCK, _disk_full, _init_watch_worker, _stat_key, describe,
                                           setup_logging, wait_for_old_workers)
from photoguard.photos.durable import display_name
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

# Worker processes are replaced after this many photos: a long day must not let memory creep.
TASKS_PER_WORKER = 200
# A file that made a worker crash (or raised an unexpected error) this many times goes to failed/.
MAX_ATTEMPTS = 3
DISK_FULL_RETRY = 30.0


@dataclass(frozen=True)
class WatchOptions:
    settle: float = 2.0            # seconds a file must stay unchanged before it is taken
    decode_timeout: float = 60.0   # unchanged this long but still not decodable: hand over anyway (-> failed/)
    rescan: float = 60.0           # full scan of inbox/ and enrol/ every so often (missed events)
    poll: bool = False             # PollingObserver (network shares: inotify does not see remote writes)
    poll_interval: float = 1.0
    workers: int | None = None     # default: the 'workers' setting (0 = number of cores)
    roster_debounce: float = 2.0   # wait this long after the last change in enrol/ (or photoguard.toml) before using it
    tick: float = 0.2
    clock_file: Path | None = None  # the watcher's date and time from this file (tests, rehearsals); default: the clock


# --- logging ----------------------------------------------------------------------------------------


# --- worker processes -------------------------------------------------------------------------------


# --- complete files only ----------------------------------------------------------------------------


# --- the watcher ------------------------------------------------------------------------------------


@dataclass
class _Job:
    path: Path
    sha: str
    attempts: int
    upcoming: Path | None = None   # the photo its worker decodes meanwhile, to be given to it next


class Watcher(Arrivals, Upkeep):
    """Watch one home until stopped. Build it, then call ``run()`` (blocks; returns the exit code)."""

    def __init__(self, home: Home, options: WatchOptions | None = None, log: logging.Logger | None = None) -> None:
        self.home = home
        self.options = options or WatchOptions()
        self.log = log or logging.getLogger(LOG_NAME)
        self.workers = self.options.workers or home.settings.worker_count
        self.events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        # Set by a file event and by a photo finished in a worker: the loop wakes for either at once,
        # and otherwise every ``tick`` (for the settle and debounce timers).
        self.wake = threading.Event()
        self.pending: dict[Path, _Waiting] = {}
        self.inflight: dict[Future, _Job] = {}
        self.next_up: list[Path] = []   # photos a worker that has just finished decoded ahead
        self.stopping = False
        self.signals = 0
        self.pool: ProcessPoolExecutor | None = None
        self.processor = None
        self.roster_signature: tuple | None = None
        self.roster_changed_at: float | None = None   # set: dispatching paused until the roster is synced
        self.roster_broken: str | None = None         # children.csv unusable: paused until it changes
        self.roster_reason = "start"
        self.disk_full_until = 0.0
        self.clock = Clock(self.options.clock_file)
        self.day = self.clock.today()
        self.purged_on: date | None = None             # the day of the last daily purge
        self.settings_seen = settings_signature(home.root)
        self.settings_changed_at: float | None = None  # set: dispatching paused until the new settings are read
        self.settings_problem: str | None = None       # photoguard.toml unusable: the old settings stay
        self.folders = EmptyFolders(home.inbox)
        self.folders_swept = 0.0
        self.empty_roster_said = False
        self.counts: dict[str, int] = {}
        self.stuck: set[Path] = set()                 # files given up on that cannot be failed safely
        self._status_written: dict | None = None
        self.started_at = now_iso()
        self.scans = 0                                # folder scans so far (rescans are incremental)
        self.disk_full_said = False

    # --- signals ---

    def _on_signal(self, signum: int, frame) -> None:
        self.signals += 1
        if self.signals == 1:
            self.stopping = True
            n = len(self.inflight)
            self.log.info(f"{signal.Signals(signum).name}: stopping — letting {n} photo(s) in hand finish; "
                          "send the signal again to stop at once (nothing is lost either way)")
        else:
            self.log.warning("second signal: stopping at once; interrupted photos are resumed on the next start")
            logging.shutdown()
            os._exit(128 + signum)

    # --- events ---


    # --- roster ---


    # --- housekeeping: settings, the daily purge, empty inbox folders ---


    # --- dispatch ---

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # forkserver: never fork a process that holds SQLite connections, models and observer threads.
            ctx = multiprocessing.get_context("forkserver")
            self.pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_watch_worker,
                initargs=(str(self.home.root), str(self.home.state / WORKERS_LOCK), os.getpid()),
                max_tasks_per_child=TASKS_PER_WORKER)
            # The pool starts a process per submission while none is idle: one no-op each starts them all
            # now, so the models are loaded (by each worker's initializer) before the first photo.
            for _ in range(self.workers):
                self.pool.submit(_started)
        return self.pool


    # A file created by a rename from outside the inbox brings "created" and nothing else; one created
    # by a writer brings "opened" right after "created" (the same system call). Wait a moment for it.
    ARRIVED_QUIET = 0.15

    def _dispatch(self, now: float) -> None:
        """Hand ready photos to idle workers, one each. With each goes the photo that worker will most
        likely be given next (``upcoming``), which it decodes while it processes this one; the rest of
        the backlog waits here as paths, not as pixels."""
        capacity = self.workers - len(self.inflight)
        if capacity <= 0 or not self.pending:
            return
        busy = {job.sha for job in self.inflight.values()}
        promised = {job.upcoming for job in self.inflight.values()} - {None}
        # A photo a worker that has just finished decoded meanwhile goes first: that worker is the idle one.
        first = [p for p in dict.fromkeys(self.next_up) if p in self.pending]
        self.next_up.clear()
        ready: list[tuple[Path, _Waiting]] = []
        for path in [*first, *(p for p in list(self.pending) if p not in first)]:
            if sum(p not in promised for p, _ in ready) >= 2 * capacity:
                break
            w = self.pending.get(path)
            if w is None or not self._ready(path, w, now) or w.sha is None:
                continue
            if w.sha in busy:
                continue  # the same bytes are being processed; afterwards this copy is archived as a duplicate
            ready.append((path, w))
        if not ready:
            return
        # A roster changed before these photos were written must be used for them, but its file notice
        # (another inotify queue) may come after theirs, now that the loop does not wait for a tick: look
        # at enrol/ itself before any photo goes.
        self._check_roster_files()
        if self.roster_changed_at is not None:
            return
        # Not a photo another worker is decoding ahead, unless there is nothing else to do.
        ready.sort(key=lambda item: item[0] in promised)
        chosen: list[tuple[Path, _Waiting]] = []
        for path, w in ready:
            if len(chosen) < capacity and w.sha not in busy:
                chosen.append((path, w))
                busy.add(w.sha)
        after = [path for path, _ in ready if path not in promised and all(path != c for c, _ in chosen)]
        today = self.clock.today().isoformat()
        for path, w in chosen:
            # A photo alone (an idle watcher, one drop) may use every core: it reaches the outbox sooner.
            # In a burst each worker keeps to one thread, so the workers do not fight over the cores.
            threads = (os.cpu_count() or 1) if not self.inflight and len(self.pending) == 1 else 1
            upcoming = after.pop(0) if after else None
            future = self._ensure_pool().submit(
                _work, (str(path), w.sha, today, threads, str(upcoming) if upcoming else None))
            self.inflight[future] = _Job(path, w.sha, w.attempts + 1, upcoming)
            future.add_done_callback(self._wake_up)
            del self.pending[path]

    # --- results ---

    def _wake_up(self, _future: Future | None = None) -> None:
        self.wake.set()

    def _collect(self, timeout: float) -> None:
        """Wait at most ``timeout`` for a file event or a finished photo, then take every finished photo."""
        if not any(future.done() for future in self.inflight):
            self.wake.wait(timeout)
        # Cleared before looking: a photo finishing or an event arriving from here on wakes the next wait.
        self.wake.clear()
        done = [future for future in self.inflight if future.done()]
        broken = False
        exhausted: list[tuple[_Job, str]] = []
        for future in done:
            job = self.inflight.pop(future)
            if job.upcoming is not None:
                self.next_up.append(job.upcoming)
            self.folders.took_from(job.path, self.clock.now())
            try:
                result = future.result()
            except DiskFull as exc:
                self.disk_full_until = time.monotonic() + DISK_FULL_RETRY
                self.log.error(f"{exc} — pausing {DISK_FULL_RETRY:.0f}s; photos wait in the inbox")
                self._retry(job, "", exhausted, count=False)
            except BrokenProcessPool:
                broken = True
                self._retry(job, "a worker process died while processing it", exhausted)
            except Exception as exc:  # noqa: BLE001 — a bug or a broken database must not stop the watcher
                self.log.error(f"{display_name(job.path.name)}: unexpected error ({type(exc).__name__}: {exc})")
                self._retry(job, f"unexpected error {type(exc).__name__}: {exc}", exhausted)
            else:
                self._done(result)
        if broken:
            self._restart_pool(exhausted)
        for job, why in exhausted:
            self._give_up(job, why)

    def _done(self, result: PhotoResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        level = logging.WARNING if result.status == "failed" else logging.INFO
        self.log.log(level, describe(result))

    def _retry(self, job: _Job, why: str, exhausted: list[tuple[_Job, str]], count: bool = True) -> None:
        key = _stat_key(job.path)
        if key is None:
            return  # moved: the pipeline finished it (or someone took it away)
        attempts = job.attempts if count else job.attempts - 1
        if attempts >= MAX_ATTEMPTS:
            exhausted.append((job, why))
            return
        self.pending[job.path] = _Waiting(key, time.monotonic() - self.options.settle, attempts=attempts)

    def _give_up(self, job: _Job, why: str) -> None:
        """A file that breaks the worker every time goes to failed/ with the reason, not round in circles."""
        if _stat_key(job.path) is None:
            return  # finished after all (resumed after a worker died)
        try:
            result = self.processor.give_up(job.path, job.sha, f"{why} ({MAX_ATTEMPTS} attempts); "
                                            "PhotoGuard could not process it")
        except Exception as exc:  # noqa: BLE001
            self.stuck.add(job.path)
            self.log.error(f"{display_name(job.path.name)}: could not be moved to failed/ ({exc}); left in the inbox")
            return
        if result is None:
            self.stuck.add(job.path)
            self.log.error(f"{display_name(job.path.name)}: {why}; left in the inbox — it is finished at the next start "
                           "of the watcher (or by photoguard process)")
            return
        self._done(result)

    def _restart_pool(self, exhausted: list[tuple[_Job, str]]) -> None:
        """A worker died (killed, out of memory): the pool is unusable. Start a new one once every old worker
        is gone, after finishing what the dead one left half done."""
        from photoguard.flow.batch import resume_interrupted

        self.log.warning("a worker process died; starting new workers")
        for future, job in list(self.inflight.items()):
            self.inflight.pop(future)
            self._retry(job, "a worker process died while processing it", exhausted)
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        fd = wait_for_old_workers(self.home, self.log)
        try:
            for result in resume_interrupted(self.processor):
                self._done(result)
        finally:
            os.close(fd)

    # --- status file (read by `photoguard status`) ---

    def _write_status(self, state: str) -> None:
        status = {
            "pid": os.getpid(), "started": self.started_at, "state": state, "workers": self.workers,
            "waiting": len(self.pending), "in_flight": len(self.inflight), "since_start": dict(self.counts),
            "settings_problem": self.settings_problem,
        }
        if status == self._status_written:
            return
        path = self.home.state / STATUS_FILE
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as fh:
                json.dump(status, fh)
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._status_written = status

    def _state(self) -> str:
        if self.stopping:
            return "stopping"
        if self.roster_broken:
            return f"paused: {self.roster_broken}"
        if self.roster_changed_at is not None:
            return "paused: syncing the roster"
        if self.settings_changed_at is not None:
            return "paused: reading the new settings"
        if time.monotonic() < self.disk_full_until:
            return "paused: the disk is full — free some space; photos wait in the inbox"
        return "watching"

    # --- main loop ---

    def start(self) -> None:
        """Everything before the loop: engine, roster sync, outbox re-check, resume, first scan."""
        from photoguard.flow.batch import resume_interrupted
        from photoguard.flow.housekeeping import last_purge_day
        from photoguard.flow.pipeline import Processor

        fd = wait_for_old_workers(self.home, self.log)
        try:
            self.roster_signature = self._enrol_signature()
            # Like pipeline.open_processor, but a roster that cannot be read pauses processing (photos
            # wait in the inbox) instead of stopping: the watcher resumes as soon as the file is fixed.
            self.processor = Processor(self.home)
            self._sync_roster("start")
            self.purged_on = last_purge_day(self.processor.conn)
            for result in resume_interrupted(self.processor):
                self._done(result)
        finally:
            os.close(fd)
        self.observer = self._observe()
        self._scan_inbox()
        self._ensure_pool()
        self.last_rescan = time.monotonic()
        mode = "polling" if self.options.poll else "notifications"
        self.log.info(f"watching {self.home.inbox} ({mode}, {self.workers} worker(s), settle {self.options.settle:g}s); "
                      f"{len(self.pending)} file(s) already waiting")

    def _step(self) -> None:
        now = time.monotonic()
        self._drain_events()
        if now - self.last_rescan >= self.options.rescan:
            self._scan_inbox()
            self._check_roster_files()
            self.last_rescan = now
        self._check_settings_file(now)
        if not self.stopping and self._housekeeping(now) and self._roster_gate(now) and now >= self.disk_full_until:
            self._dispatch(now)
        self._write_status(self._state())
        if self.disk_full_said and now >= self.disk_full_until:
            self.disk_full_said = False
            self.log.info("the disk has space again; carrying on")
        self._collect(self.options.tick)

    def _pause_for_disk(self, exc: BaseException) -> None:
        """The disk is full (writing the status, the database, a log...): pause, say so once, retry."""
        self.disk_full_until = time.monotonic() + DISK_FULL_RETRY
        if not self.disk_full_said:
            self.disk_full_said = True
            self.log.error(f"the disk of {self.home.root} is full ({exc}) — paused, retrying every "
                           f"{DISK_FULL_RETRY:.0f}s; photos wait in the inbox, nothing is lost")
        try:
            self._write_status(self._state())
        except OSError:
            pass
        self._collect(min(DISK_FULL_RETRY, 1.0))

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        try:
            while not (self.stopping and not self.inflight):
                try:
                    self._step()
                except (OSError, sqlite3.OperationalError) as exc:
                    if not _disk_full(exc):
                        raise
                    self._pause_for_disk(exc)
        finally:
            self.observer.stop()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self._write_status("stopped")
        done = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items())) or "no photos"
        self.log.info(f"stopped cleanly ({done} since start)")
        return 0


def _started() -> None:
    """Nothing: submitting it makes the pool start a worker, whose initializer loads and warms the models."""


def watch(home: Home, options: WatchOptions | None = None, log: logging.Logger | None = None) -> int:
    """Hold the home's lock and watch until SIGINT/SIGTERM. Raises lock.HomeBusy if another process works on it."""
    from photoguard.store.lock import WATCH_COMMAND, hold_lock

    with hold_lock(home, WATCH_COMMAND):
        return Watcher(home, options, log or setup_logging(home)).run()


# --- status -----------------------------------------------------------------------------------------
