"""``photoguard watch``: process photos as they arrive in inbox/, for days on end, without losing one.

How a dropped file travels:
1. seen (an inotify/polling event, the scan at start, or the periodic rescan) -> ``pending``;
2. taken once its writer is done AND it decodes (a cheap check here; the worker decodes it fully).
   With file notifications (inotify) the writer is done when it closes the file after writing, or
   when the file arrives whole by a rename; otherwise (polling, network shares, the scans) once its
   size and mtime have not changed for ``settle`` seconds. A file that never decodes is still handed
   over after ``decode_timeout`` seconds unchanged, so the pipeline routes it to failed/ with a reason;
3. hashed here and dispatched to a worker process (at most 2 per worker at once, so the backlog
   waits as paths, not as pixels). Two files with the same bytes are never in flight together: the
   second waits and the pipeline archives it as a duplicate.

The journal (table ``photos``) and the pipeline's staging make a crash at any moment safe; this
module adds: resume at start, one watcher per home (``hold_lock``), no worker of a dead watcher still
running when the next one starts (``workers.lock``), and roster changes that pause dispatching so a
withdrawn consent is never outrun by a photo already queued.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import logging.handlers
import multiprocessing
import os
import queue
import secrets
import signal
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from photoguard.flow.batch import _work
from photoguard.flow.housekeeping import Clock, EmptyFolders, settings_signature
from photoguard.flow.results import DiskFull, PhotoResult
from photoguard.photos.durable import display_name
from photoguard.photos.images import MAX_FILE_BYTES
from photoguard.photos.inbox import is_candidate
from photoguard.photos.intake import NotAPhotoFile, open_regular
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

LOG_NAME = "photoguard.watch"
LOG_FILE = "watch.log"
STATUS_FILE = "watch.json"
WORKERS_LOCK = "workers.lock"
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


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created owner-only (the log names photos)."""

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(home: Home, stream=None, max_bytes: int = 5_000_000, backups: int = 5) -> logging.Logger:
    """One line per event on stderr and in ``.photoguard/logs/watch.log`` (rotated, 0600)."""
    log = logging.getLogger(LOG_NAME)
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    home.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    file_handler = _PrivateRotatingFileHandler(home.logs / LOG_FILE, maxBytes=max_bytes, backupCount=backups,
                                               encoding="utf-8")
    console = logging.StreamHandler(stream or sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def describe(result: PhotoResult) -> str:
    """The log line for one photo: status, faces shown/obscured, seconds."""
    faces = result.face_summary()
    if result.status == "cleared":
        detail = faces
    elif result.status == "review":
        detail = f"{faces}; held for review: {result.reason}"
    else:
        detail = result.reason or ""
    return f"{result.status:<9} {result.source} — {detail} ({result.seconds:.1f}s)"


# --- worker processes -------------------------------------------------------------------------------


def _exit_with(watcher_pid: int) -> None:
    """A worker never outlives its watcher: a SIGKILLed watcher must not leave an orphan finishing a photo
    while the next watcher resumes it. (PR_SET_PDEATHSIG does not help: a worker's parent is the
    forkserver, which lives as long as any worker does.)"""
    try:
        pidfd = os.pidfd_open(watcher_pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        os.kill(watcher_pid, 0)
    except ProcessLookupError:
        os._exit(1)

    def wait() -> None:
        if pidfd is not None:
            import select

            select.select([pidfd], [], [])  # readable once the process has exited
            os._exit(1)
        while True:
            time.sleep(0.5)
            try:
                os.kill(watcher_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=wait, name="watcher-alive", daemon=True).start()


_workers_lock_fd: int | None = None


def _init_watch_worker(root: str, lock_path: str, watcher_pid: int) -> None:
    global _workers_lock_fd
    from photoguard.flow import batch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the watcher, which lets this photo finish
    _exit_with(watcher_pid)
    # Held until the process ends: the next watcher waits for it before resuming interrupted photos.
    _workers_lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(_workers_lock_fd, fcntl.LOCK_SH)
    batch._init_worker(root)


def wait_for_old_workers(home: Home, log: logging.Logger) -> int:
    """Block until no worker of an earlier watcher is alive; returns the fd holding the exclusive lock."""
    fd = os.open(home.state / WORKERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not said:
                log.info("waiting for the workers of a previous run to stop")
                said = True
            time.sleep(0.1)


# --- complete files only ----------------------------------------------------------------------------

def check_complete(path: Path) -> tuple[bool, str]:
    """(whether the file is a whole image, its sha256), reading it once. JPEGs are decoded at 1/8 scale
    (which still reads every byte of the compressed data, so a truncated copy fails), others fully.

    Never follows a link and never blocks on a FIFO. Anything that is not a regular file, or is larger
    than images.MAX_FILE_BYTES (checked by its size, before reading a byte), is "complete" at once: the
    pipeline refuses it to failed/ with the reason, without reading it."""
    import hashlib
    import io

    from PIL import Image

    from photoguard.photos.images import register_heif

    try:
        fd, st = open_regular(path, MAX_FILE_BYTES)
    except NotAPhotoFile:
        st = os.lstat(path)
        return True, f"unread:{st.st_dev}:{st.st_ino}"
    with open(fd, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    sha = hashlib.sha256(data).hexdigest()
    register_heif()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        return True, sha
    except Image.DecompressionBombError:
        return True, sha  # complete, just huge: the pipeline says so in failed/
    except Exception:
        return False, sha


def decodes(path: Path) -> bool:
    return check_complete(path)[0]


@dataclass
class _Waiting:
    key: tuple[int, int, int]       # (size, mtime_ns, inode) when last seen
    since: float                    # monotonic time the key last changed
    checked: tuple[int, int, int] | None = None   # key for which `decodable` was computed
    checked_at: float = 0.0
    decodable: bool = False
    sha: str | None = None          # computed for `checked`
    attempts: int = 0
    # Notifications only: the key when its writer closed it after writing (or it was renamed in whole);
    # while the file still has that key, there is no need to wait for it to settle.
    finished: tuple[int, int, int] | None = None
    created_at: float | None = None  # a "created" with no "opened" after it: moved in from elsewhere
    opened: bool = False             # someone opened it since it was created (maybe to write)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime, inode) of an entry, links not followed; None if gone or a folder. Entries that are
    not regular files (links, FIFOs) get a key too: they are handed over at once and refused."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return (-2, st.st_mtime_ns, st.st_ino)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


# --- the watcher ------------------------------------------------------------------------------------


@dataclass
class _Job:
    path: Path
    sha: str
    attempts: int


class Watcher:
    """Watch one home until stopped. Build it, then call ``run()`` (blocks; returns the exit code)."""

    def __init__(self, home: Home, options: WatchOptions | None = None, log: logging.Logger | None = None) -> None:
        self.home = home
        self.options = options or WatchOptions()
        self.log = log or logging.getLogger(LOG_NAME)
        self.workers = self.options.workers or home.settings.worker_count
        self.events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.pending: dict[Path, _Waiting] = {}
        self.inflight: dict[Future, _Job] = {}
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

    def _observe(self):
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        events = self.events
        interesting = {"created", "modified", "moved", "closed", "deleted", "opened"}

        class Handler(FileSystemEventHandler):
            def __init__(self, kind: str, notified: bool) -> None:
                self.kind = kind
                # inotify says when a writer closes a file; a polling observer only sees it change.
                self.notified = notified

            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in interesting:
                    return
                path = event.dest_path if event.event_type == "moved" else event.src_path
                if isinstance(path, bytes):
                    path = os.fsdecode(path)
                tag = "dir" if event.is_directory else "file"
                # A folder's "modified" (a file created or removed in it) needs no scan: the file has
                # its own event. Only a folder that arrives whole is scanned.
                if tag == "dir" and event.event_type not in ("created", "moved"):
                    tag = "dir-touched"
                if tag == "file" and self.notified and event.event_type in ("closed", "moved", "created", "opened"):
                    # closed = closed after writing (IN_CLOSE_WRITE); moved = renamed whole into place.
                    tag = {"closed": "finished", "moved": "finished"}.get(event.event_type, event.event_type)
                elif event.event_type == "opened":
                    return
                events.put((f"{self.kind}-{tag}", path or ""))

        poll = self.options.poll
        while True:
            observer = PollingObserver(timeout=self.options.poll_interval) if poll else Observer()
            observer.schedule(Handler("inbox", not poll), str(self.home.inbox), recursive=True)
            observer.schedule(Handler("enrol", not poll), str(self.home.enrol), recursive=True)
            observer.daemon = True
            try:
                observer.start()
                return observer
            except OSError as exc:
                if poll:
                    raise
                # e.g. the inotify watch limit with thousands of subfolders: slower, but nothing is missed.
                self.log.warning(f"file notifications unavailable ({exc}); polling the folders instead "
                                 "(raise fs.inotify.max_user_watches to avoid this)")
                poll = True

    def _hidden(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.home.inbox)
        except ValueError:
            return True
        return any(part.startswith(".") for part in rel.parts[:-1]) or not is_candidate(path)

    def _see(self, path: Path, now: float) -> None:
        if path in self.pending or path in self.stuck or self._hidden(path) \
                or any(j.path == path for j in self.inflight.values()):
            return
        key = _stat_key(path)
        if key is not None:
            self.pending[path] = _Waiting(key, now)

    def _scan_inbox(self, folder: Path | None = None) -> None:
        """Add what is new under ``folder`` (default: the whole inbox); already known files cost a lookup."""
        from photoguard.photos.inbox import collect

        self.scans += 1
        now = time.monotonic()
        for path in collect([folder or self.home.inbox]):
            self._see(path, now)

    def _drain_events(self, limit: int = 20_000) -> None:
        """Take queued events (at most ``limit`` per call, so a flood of 10,000 new files does not hold up
        dispatching). File events add that one file; a folder that arrived whole is scanned once, however
        many events it brought; enrol/ changes are checked once."""
        now = time.monotonic()
        enrol_touched = False
        folders: set[Path] = set()
        for _ in range(limit):
            try:
                kind, raw = self.events.get_nowait()
            except queue.Empty:
                break
            path = Path(raw)
            if kind in ("inbox-file", "inbox-finished", "inbox-created"):
                self._see(path, now)
                w = self.pending.get(path)
                if w is not None and kind == "inbox-finished":
                    w.finished = _stat_key(path)
                elif w is not None and kind == "inbox-created":
                    w.created_at, w.opened = now, False
            elif kind == "inbox-opened":
                if path in self.pending:
                    self.pending[path].opened = True
            elif kind == "inbox-dir":
                folders.add(path)
            elif kind.startswith("enrol"):
                enrol_touched = True
        for folder in sorted(folders):
            # A subfolder inside one scanned anyway needs no scan of its own.
            if folder.is_dir() and not folder.is_symlink() and not any(f in folder.parents for f in folders):
                self._scan_inbox(folder)  # a folder moved in whole brings no event per file
        if enrol_touched:
            self._check_roster_files()

    # --- roster ---

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

    # --- housekeeping: settings, the daily purge, empty inbox folders ---

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
            # now, so the models are loaded before the first photo rather than after it.
            for _ in range(self.workers):
                self.pool.submit(_warm_up)
        return self.pool

    def _ready(self, path: Path, w: _Waiting, now: float) -> bool:
        """Settled and decodable (or undecodable for too long): update ``w`` and say whether to take it."""
        key = _stat_key(path)
        if key is None:
            del self.pending[path]
            return False
        if key != w.key:
            w.key, w.since = key, now
            if key != w.finished:
                return False
        if now - w.since < self.options.settle and not self._writer_done(w, key, now):
            return False
        if w.checked != key or (not w.decodable and now - w.checked_at >= max(self.options.settle, 1.0)):
            try:
                w.decodable, w.sha = check_complete(path)
            except FileNotFoundError:
                del self.pending[path]
                return False
            except OSError as exc:
                self.log.warning(f"{display_name(path.name)}: cannot be read yet ({exc.strerror}); trying again")
                w.key, w.since = (-1, -1, -1), now
                return False
            w.checked, w.checked_at = key, now
            if not w.decodable:
                self.log.debug(f"{display_name(path.name)}: not a whole image yet")
        return w.decodable or now - w.since >= self.options.decode_timeout

    # A file created by a rename from outside the inbox brings "created" and nothing else; one created
    # by a writer brings "opened" right after "created" (the same system call). Wait a moment for it.
    ARRIVED_QUIET = 0.15

    def _writer_done(self, w: _Waiting, key: tuple[int, int, int], now: float) -> bool:
        """Notifications say the file is complete as it stands: closed after writing, or renamed in."""
        if w.finished is not None and w.finished == key:
            return True
        return w.created_at is not None and not w.opened and now - w.created_at >= self.ARRIVED_QUIET \
            and w.since <= w.created_at

    def _dispatch(self, now: float) -> None:
        capacity = 2 * self.workers - len(self.inflight)
        if capacity <= 0 or not self.pending:
            return
        busy = {job.sha for job in self.inflight.values()}
        today = self.clock.today().isoformat()
        for path, w in list(self.pending.items()):
            if capacity <= 0:
                break
            if not self._ready(path, w, now) or w.sha is None:
                continue
            if w.sha in busy:
                continue  # the same bytes are being processed; afterwards this copy is archived as a duplicate
            # A photo alone (an idle watcher, one drop) may use every core: it reaches the outbox sooner.
            # In a burst each worker keeps to one thread, so the workers do not fight over the cores.
            threads = (os.cpu_count() or 1) if not self.inflight and len(self.pending) == 1 else 1
            future = self._ensure_pool().submit(_work, (str(path), w.sha, today, threads))
            self.inflight[future] = _Job(path, w.sha, w.attempts + 1)
            busy.add(w.sha)
            del self.pending[path]
            capacity -= 1

    # --- results ---

    def _collect(self, timeout: float) -> None:
        if not self.inflight:
            time.sleep(timeout)
            return
        done, _ = wait_futures(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
        broken = False
        exhausted: list[tuple[_Job, str]] = []
        for future in done:
            job = self.inflight.pop(future)
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


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "full" in str(exc).lower()   # sqlite3: "database or disk is full"


def _warm_up() -> None:
    from photoguard.flow.batch import warm_up_worker

    warm_up_worker()


def watch(home: Home, options: WatchOptions | None = None, log: logging.Logger | None = None) -> int:
    """Hold the home's lock and watch until SIGINT/SIGTERM. Raises lock.HomeBusy if another process works on it."""
    from photoguard.store.lock import hold_lock

    with hold_lock(home, "photoguard watch"):
        return Watcher(home, options, log or setup_logging(home)).run()


# --- status -----------------------------------------------------------------------------------------


@dataclass
class Recent:
    at: str
    status: str
    name: str
    detail: str


@dataclass
class WatchStatus:
    watcher_pid: int | None
    watcher: dict | None                 # the running watcher's own view (state, waiting, in flight)
    inbox_waiting: int                   # files in inbox/ not yet processed
    unfinished: list[tuple[str, str]]    # (source, state) of journal rows not done
    today: dict[str, int]                # cleared / review / failed / duplicate
    recent: list[Recent]
    inbox_not_taken: list[str] = field(default_factory=list)   # files in inbox/ PhotoGuard leaves alone
    disk_full: bool = False              # the home's disk is full (then the rest is as last written whole)


def watch_status(home: Home, recent: int = 10, today: date | None = None) -> WatchStatus:
    """What ``photoguard status`` shows; safe while the watcher runs (SQLite WAL, read only)."""
    from photoguard.photos.inbox import collect, not_taken
    from photoguard.store import db
    from photoguard.store.lock import lock_holder

    pid = lock_holder(home)
    watcher = None
    status_path = home.state / STATUS_FILE
    if pid is not None and status_path.exists():
        try:
            watcher = json.loads(status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            watcher = None
        if watcher is not None and watcher.get("pid") != pid:
            watcher = None  # left by an earlier run; the lock is held by `process`
    conn = db.connect(home.database, snapshot_when_full=True)
    try:
        unfinished = [(r["source"], r["state"]) for r in conn.execute(
            "SELECT source, state FROM photos WHERE state != 'done' ORDER BY received_at")]
        day = (today or date.today()).isoformat()
        counts = {"cleared": 0, "review": 0, "failed": 0, "duplicate": 0}
        rows = conn.execute("SELECT id, kind, detail, photo_sha256 FROM events "
                            "WHERE kind IN ('processed', 'duplicate') AND at >= ? ORDER BY id", (day,)).fetchall()
        # A photo done again (`reprocess`) is one photo: it counts once, as it came out last.
        last = {("p", r["photo_sha256"]) if r["kind"] == "processed" and r["photo_sha256"] else ("e", r["id"]): r
                for r in rows}
        for r in last.values():
            status = "duplicate" if r["kind"] == "duplicate" else (r["detail"] or "").split(":", 1)[0]
            counts[status] = counts.get(status, 0) + 1
        items = []
        listed: set[str] = set()
        for r in conn.execute(
                "SELECT e.at, e.kind, e.detail, e.photo_sha256, p.source FROM events e "
                "LEFT JOIN photos p ON p.sha256 = e.photo_sha256 "
                "WHERE e.kind IN ('processed', 'duplicate') ORDER BY e.id DESC LIMIT ?", (recent * 4,)):
            if r["kind"] == "processed" and r["photo_sha256"]:
                if r["photo_sha256"] in listed:
                    continue
                listed.add(r["photo_sha256"])
            items.append(_recent(r))
            if len(items) == recent:
                break
    finally:
        conn.close()
    return WatchStatus(pid, watcher, len(collect([home.inbox])), unfinished, counts, items, not_taken(home.inbox),
                       db.disk_is_full(home.root))


def not_taken_words(names: Sequence[str], show: int = 3) -> str:
    """The inbox files PhotoGuard leaves alone, in words a manager can act on."""
    listed = ", ".join(names[:show]) + (f" and {len(names) - show} more" if len(names) > show else "")
    return (f"{len(names)} file(s) PhotoGuard does not take ({listed}): copies still being written, or a "
            "computer's own files; delete them if nobody is copying photos in just now")


def _recent(row) -> Recent:
    detail = row["detail"] or ""
    if row["kind"] == "duplicate":
        name, _, first = detail.partition(" = ")
        return Recent(row["at"], "duplicate", name, f"same photo as {first}")
    status, _, rest = detail.partition(": ")
    if status == "failed":
        name, _, reason = rest.partition(": ")
        return Recent(row["at"], status, name, reason)
    return Recent(row["at"], status, row["source"] or "?", "" if rest == "ok" else rest)
