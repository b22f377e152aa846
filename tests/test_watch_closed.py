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
