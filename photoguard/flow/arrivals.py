"""How the watcher sees photos arrive: file system events, a rescan now and then, and waiting until each file is
whole.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from photoguard.flow.watch_support import _stat_key, check_complete
from photoguard.photos.durable import display_name
from photoguard.photos.inbox import is_candidate


class Arrivals:
    """How the Watcher notices new files and decides they are ready."""

    def _observe(self):
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers.polling import PollingObserver

        events, wake = self.events, self.wake
        interesting = {"created", "modified", "moved", "closed", "deleted", "opened"}

        class Handler(FileSystemEventHandler):
            def __init__(self, kind: str, notified: bool) -> None:
                self.kind = kind
                # inotify says when a writer closes a file; a polling observer only sees it change.
                self.notified = notified

            def on_any_event(self, event: FileSystemEvent) -> None:
                kind = event.event_type
                if kind not in interesting:
                    return
                path = event.dest_path if kind == "moved" else event.src_path
                if kind == "moved" and not path:
                    kind, path = "deleted", event.src_path   # moved out of the watched folders
                if isinstance(path, bytes):
                    path = os.fsdecode(path)
                tag = "dir" if event.is_directory else "file"
                # A folder's "modified" (a file created or removed in it) needs no scan: the file has
                # its own event. Only a folder that arrives whole is scanned.
                if tag == "dir" and kind not in ("created", "moved"):
                    tag = "dir-touched"
                if tag == "file" and self.notified and kind in ("closed", "moved", "created", "opened"):
                    # closed = closed after writing (IN_CLOSE_WRITE); moved = renamed whole into place,
                    # from inside the watched folders or (full events) from anywhere else on the disk.
                    tag = {"closed": "finished", "moved": "finished"}.get(kind, kind)
                elif kind == "opened":
                    return
                events.put((f"{self.kind}-{tag}", path or ""))
                wake.set()   # the watcher's loop takes it now, not at its next tick

        poll = self.options.poll
        while True:
            observer = PollingObserver(timeout=self.options.poll_interval) if poll else _notifying_observer()
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

    def _writer_done(self, w: _Waiting, key: tuple[int, int, int], now: float) -> bool:
        """Notifications say the file is complete as it stands: closed after writing, or renamed in."""
        if w.finished is not None and w.finished == key:
            return True
        return w.created_at is not None and not w.opened and now - w.created_at >= self.ARRIVED_QUIET \
            and w.since <= w.created_at


def _notifying_observer():
    """The platform's notifying observer. With inotify, one that reports a file renamed in from a folder
    it does not watch as "moved" (a sync tool finishing a file), not as "created": such a file is whole
    at once, and no quiet moment is waited for to tell it from a file a writer has just created."""
    from watchdog.observers import Observer

    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:   # not Linux
        return Observer()
    if Observer is not InotifyObserver:
        return Observer()
    try:
        return InotifyObserver(generate_full_events=True)
    except TypeError:     # an older watchdog
        return Observer()


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
