"""With file notifications, a photo is taken as soon as its writer is done with it, not after the settle wait.

A real ``photoguard watch`` subprocess with ``--settle 600``: the settle timer never runs out during
these tests, so a photo in the outbox shows that the close (or the rename) was what let it through.
"""

from __future__ import annotations

import os

import numpy as np
from facekit import jpeg_bytes
from test_watch import Watch, files, tiny_jpeg, wait_until

from photoguard.store.home import open_home


def test_photo_is_taken_when_its_writer_closes_it_or_it_is_renamed_in(tmp_path):
    home = open_home(tmp_path / "home")
    w = Watch(home.root, "--settle", "600").wait_watching()
    try:
        # Written in place and closed, as a copy tool or a phone's upload does.
        with open(home.inbox / "closed.jpg", "wb") as fh:
            fh.write(tiny_jpeg(901))
        # Written elsewhere and renamed in whole, as a sync tool finishing a file does.
        staged = home.root / "elsewhere.jpg"
        staged.write_bytes(tiny_jpeg(902))
        os.rename(staged, home.inbox / "renamed.jpg")
        wait_until(lambda: len(files(home.outbox_for("facebook"))) == 2, 60, "both photos in the outbox", w.proc)
        assert sorted(p.name for p in files(home.outbox_for("facebook"))) == ["closed.jpg", "renamed.jpg"]
    finally:
        assert w.stop() == 0


def test_a_file_closed_before_it_is_whole_waits(tmp_path):
    """A writer that closes a file part-way (and appends later) does not get it taken half written:
    it must still decode whole. Once the rest is written and closed, it goes."""
    home = open_home(tmp_path / "home")
    rgb = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    data = jpeg_bytes(rgb)
    w = Watch(home.root, "--settle", "600", "--decode-timeout", "600").wait_watching()
    target = home.inbox / "parts.jpg"
    try:
        with open(target, "wb") as fh:
            fh.write(data[: len(data) // 2])
        # The watcher sees the close, finds the file does not decode and leaves it; the other photo,
        # dropped after, goes through first.
        (home.root / "other.jpg").write_bytes(tiny_jpeg(903))
        os.rename(home.root / "other.jpg", home.inbox / "other.jpg")
        wait_until(lambda: [p.name for p in files(home.outbox_for("facebook"))] == ["other.jpg"], 60,
                   "the other photo in the outbox", w.proc)
        assert target.exists() and not files(home.failed)
        with open(target, "ab") as fh:
            fh.write(data[len(data) // 2:])
        wait_until(lambda: len(files(home.outbox_for("facebook"))) == 2, 60, "parts.jpg once whole", w.proc)
    finally:
        assert w.stop() == 0


def test_which_notices_let_a_file_skip_the_settle_wait(tmp_path):
    """The watcher's own bookkeeping, on real files, with the notices inotify would give (no subprocess)."""
    import time

    from photoguard.flow.watch import Watcher, WatchOptions

    home = open_home(tmp_path / "home")
    watcher = Watcher(home, WatchOptions(settle=600))
    names = ("renamed.jpg", "written.jpg", "closed.jpg", "changed.jpg")
    for i, name in enumerate(names):
        (home.inbox / name).write_bytes(tiny_jpeg(910 + i))
    notices = [("inbox-created", "renamed.jpg"),                                   # renamed in from elsewhere
               ("inbox-created", "written.jpg"), ("inbox-opened", "written.jpg"),  # a writer still at it
               ("inbox-created", "closed.jpg"), ("inbox-opened", "closed.jpg"), ("inbox-finished", "closed.jpg"),
               ("inbox-finished", "changed.jpg")]
    for kind, name in notices:
        watcher.events.put((kind, str(home.inbox / name)))
    watcher._drain_events()
    # Written to again after it was closed: its close no longer speaks for it.
    with open(home.inbox / "changed.jpg", "ab") as fh:
        fh.write(b"more")
    time.sleep(Watcher.ARRIVED_QUIET + 0.05)
    now = time.monotonic()
    ready = {name for name in names if watcher._ready(home.inbox / name, watcher.pending[home.inbox / name], now)}
    assert ready == {"renamed.jpg", "closed.jpg"}


def test_a_photo_renamed_in_from_elsewhere_is_whole_at_once(tmp_path):
    """inotify's rename from a folder it does not watch is a "moved" notice (a sync tool finishing a file),
    so the file is taken without waiting the quiet moment that tells a rename from a new writer's file."""
    import time

    from photoguard.flow.watch import Watcher, WatchOptions

    home = open_home(tmp_path / "home")
    watcher = Watcher(home, WatchOptions(settle=600))
    observer = watcher._observe()
    try:
        staged = tmp_path / "elsewhere.jpg"
        staged.write_bytes(tiny_jpeg(920))
        os.rename(staged, home.inbox / "synced.jpg")
        target = home.inbox / "synced.jpg"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and watcher.pending.get(target) is None:
            watcher._drain_events()
            time.sleep(0.01)
        waiting = watcher.pending[target]
        assert waiting.finished == waiting.key
        assert watcher._ready(target, waiting, time.monotonic())
    finally:
        observer.stop()
        observer.join(10)


def test_the_watcher_wakes_for_a_file_at_once_not_at_its_next_tick(tmp_path):
    """Between a file's notice and its dispatch there is no sleep: the loop's wait ends when the notice comes."""
    import threading
    import time

    from photoguard.flow.watch import Watcher, WatchOptions

    home = open_home(tmp_path / "home")
    watcher = Watcher(home, WatchOptions(settle=600, tick=30))
    observer = watcher._observe()
    try:
        watcher._collect(0)   # whatever the observer said while starting
        threading.Timer(0.3, lambda: (home.inbox / "new.jpg").write_bytes(tiny_jpeg(921))).start()
        started = time.monotonic()
        watcher._collect(watcher.options.tick)
        assert time.monotonic() - started < 10
        watcher._drain_events()
        assert home.inbox / "new.jpg" in watcher.pending
    finally:
        observer.stop()
        observer.join(10)


def test_a_watch_worker_starts_with_both_thread_counts_ready(tmp_path):
    """The session a photo alone in an idle watcher runs with (every core) is made when the worker starts,
    not while that photo waits."""
    import signal

    from photoguard.flow import batch, watch_support

    home = open_home(tmp_path / "home")
    sigint = signal.getsignal(signal.SIGINT)
    try:
        watch_support._init_watch_worker(str(home.root), str(home.state / watch_support.WORKERS_LOCK), os.getpid())
        sessions = batch._worker.detector.centerface.net._sessions
        assert {1, os.cpu_count() or 1} <= set(sessions)
    finally:   # this test's process is not a worker: give back what the initializer took
        signal.signal(signal.SIGINT, sigint)
        if watch_support._workers_lock_fd is not None:
            os.close(watch_support._workers_lock_fd)
            watch_support._workers_lock_fd = None
        batch._worker = None


def test_a_roster_change_not_yet_notified_holds_back_a_photo_written_after_it(tmp_path):
    """children.csv changed, then a photo dropped: even if the photo's notice comes first (each folder has
    its own notification queue), the photo does not go until the roster is synced."""
    import time

    from photoguard.flow.watch import Watcher, WatchOptions

    home = open_home(tmp_path / "home")
    home.roster_csv.write_text("id,name,face_matching,facebook,instagram,twitter,expires\n", encoding="utf-8")
    watcher = Watcher(home, WatchOptions(settle=0))
    watcher.roster_signature = watcher._enrol_signature()
    try:
        home.roster_csv.write_text("id,name,face_matching,facebook,instagram,twitter,expires\n"
                                   "ada,Ada,yes,no,yes,yes,\n", encoding="utf-8")
        (home.inbox / "after.jpg").write_bytes(tiny_jpeg(930))
        watcher.events.put(("inbox-finished", str(home.inbox / "after.jpg")))
        watcher._drain_events()
        watcher._dispatch(time.monotonic() + 1)
        assert not watcher.inflight and home.inbox / "after.jpg" in watcher.pending
        assert watcher.roster_changed_at is not None
    finally:
        if watcher.pool is not None:
            watcher.pool.shutdown(wait=True, cancel_futures=True)
