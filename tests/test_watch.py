"""The watcher as staff meet it: a real ``photoguard watch`` subprocess on a real home folder."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from facekit import background, face_patch, jpeg_bytes, scene
from PIL import Image

from photoguard.cli import main
from photoguard.flow.watch_support import decodes
from photoguard.store import db
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

CSV_HEADER = "id,name,face_matching,facebook,instagram,twitter,expires\n"


def tiny_jpeg(seed: int) -> bytes:
    """A 64×48 faceless photo, different bytes for every seed."""
    return jpeg_bytes(background(64, 48, seed=seed), quality=90)


def wait_until(check, timeout: float = 60.0, what: str = "condition", proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watcher exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Watch:
    """A watcher subprocess; its stderr goes to a file so the test can read it after it exits."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.log = root.parent / f"watch-{time.monotonic_ns()}.err"
        self.err = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "photoguard", "watch", "--home", str(root), "--settle", "0.5",
             "--workers", "2", "--rescan", "3", *args],
            stdout=subprocess.DEVNULL, stderr=self.err)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_watching(self) -> "Watch":
        wait_until(lambda: "watching " in self.output(), 90, "the watcher to start", self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.err.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.err.close()


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def no_worker_left(home) -> bool:
    """True when no worker process of any watcher holds the workers' lock."""
    fd = os.open(home.state / "workers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def assert_each_in_one_place(home, stems: set[str]) -> None:
    """Every photo: one output per channel + one archived original; nothing partial, nothing twice."""
    assert not files(home.inbox)
    assert not files(home.failed) and not files(home.review)
    for channel in home.settings.channels:
        out = files(home.outbox_for(channel))
        assert all(not p.name.startswith(".") and p.suffix == ".jpg" for p in out), out
        assert sorted(p.stem for p in out) == sorted(stems), channel
        for p in out:
            with Image.open(p) as im:
                im.load()  # whole, decodable files only
    archived = [p for p in files(home.archive) if "duplicates" not in p.parts]
    assert sorted(p.stem.split("_", 1)[1] for p in archived) == sorted(stems)  # archive names: <sha12>_<name>
    conn = db.connect(home.database)
    rows = conn.execute("SELECT state, COUNT(*) FROM photos GROUP BY state").fetchall()
    conn.close()
    assert [tuple(r) for r in rows] == [("done", len(stems))]
    assert not list((home.state / "staging").iterdir())


# --- cheap unit checks --------------------------------------------------------------------------


def test_decodes_only_whole_images(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    data = jpeg_bytes(rgb)
    path = tmp_path / "a.jpg"
    for cut in (0, 100, len(data) // 2, len(data) - 50):
        path.write_bytes(data[:cut])
        assert not decodes(path), cut
    path.write_bytes(data)
    assert decodes(path)
    path.write_bytes(data + b"motion photo trailer")  # phones append videos after the JPEG
    assert decodes(path)


# --- the watcher process ------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path):
    return open_home(tmp_path / "home")


def test_slow_copy_is_taken_only_when_complete_and_junk_goes_to_failed(home):
    rgb = np.random.default_rng(2).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    data = jpeg_bytes(rgb)
    w = Watch(home.root, "--decode-timeout", "3").wait_watching()
    try:
        target = home.inbox / "tablet" / "slow.jpg"   # sync tools create subfolders
        target.parent.mkdir()
        with open(target, "wb") as fh:
            for i, part in enumerate(np.array_split(np.frombuffer(data, np.uint8), 4)):
                fh.write(part.tobytes())
                fh.flush()
                if i < 3:
                    time.sleep(1.5)  # longer than --settle, but the file does not decode yet
                    assert target.exists(), f"taken after chunk {i + 1} of 4"
                    assert not files(home.outbox)
        out = wait_until(lambda: files(home.outbox_for("facebook")), 60, "slow.jpg in the outbox", w.proc)
        assert [p.name for p in out] == ["slow.jpg"]

        # A whole folder moved in brings one event, not one per file.
        batch = home.root / "batch"
        batch.mkdir()
        for i in range(2):
            (batch / f"moved{i}.jpg").write_bytes(tiny_jpeg(300 + i))
        batch.rename(home.inbox / "batch")
        wait_until(lambda: len(files(home.outbox_for("facebook"))) == 3, 60, "the moved folder's photos", w.proc)

        # A file that never decodes is not left in the inbox forever: after --decode-timeout it fails.
        (home.inbox / "notes.jpg").write_bytes(b"this is not a photo at all" * 100)
        (home.inbox / "copying.jpg.part").write_bytes(data[:1000])   # ignored name: never touched
        wait_until(lambda: (home.failed / "notes.jpg.txt").exists(), 60, "notes.jpg in failed/", w.proc)
        assert (home.failed / "notes.jpg").exists()
        time.sleep(1)
        assert (home.inbox / "copying.jpg.part").exists()
    finally:
        assert w.stop() == 0
    log = (home.logs / "watch.log").read_text()
    assert "cleared   slow.jpg" in log and "failed    notes.jpg" in log
    assert os.stat(home.logs / "watch.log").st_mode & 0o777 == 0o600


def test_burst_of_200_each_processed_once_and_status_while_running(home):
    w = Watch(home.root).wait_watching()
    try:
        stems = set()
        for i in range(200):
            name = f"IMG_{i:04d}"
            (home.inbox / f"{name}.jpg").write_bytes(tiny_jpeg(i))
            stems.add(name)
        # The same bytes dropped twice more (a second tablet synced the same photo).
        (home.inbox / "copy-of-IMG_0007.jpg").write_bytes(tiny_jpeg(7))
        (home.inbox / "again-IMG_0007.jpg").write_bytes(tiny_jpeg(7))

        res = CliRunner().invoke(main, ["status", "--home", str(home.root)])
        assert res.exit_code == 0, res.output
        assert "watcher: running since" in res.output and "(process " not in res.output

        wait_until(lambda: not files(home.inbox), 240, "the inbox to empty", w.proc)
    finally:
        assert w.stop() == 0
    assert_each_in_one_place(home, stems)
    dups = [p for p in files(home.archive / "duplicates") if p.suffix == ".jpg"]
    assert sorted(p.name for p in dups) == ["again-IMG_0007.jpg", "copy-of-IMG_0007.jpg"]

    res = CliRunner().invoke(main, ["status", "--home", str(home.root)])
    assert "watcher: not running" in res.output
    assert "inbox: 0 file(s) waiting" in res.output
    assert "today: 200 cleared, 0 held for review, 0 not usable (in failed/), 2 duplicate(s)" in res.output
    assert "last photos:" in res.output


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(home):
    rng = random.Random(7)
    stems = set()
    for i in range(80):
        name = f"kill_{i:03d}"
        if i < 4:  # the first ones take a while, so the second signal below finds them in hand
            data = jpeg_bytes(np.random.default_rng(i).integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
        else:
            data = tiny_jpeg(1000 + i)
        (home.inbox / f"{name}.jpg").write_bytes(data)
        stems.add(name)
    for round_ in range(4):
        w = Watch(home.root).wait_watching()
        if round_ == 0:
            # Two signals: the second stops at once, without waiting for the photos in hand.
            status = home.state / "watch.json"
            wait_until(lambda: status.exists() and json.loads(status.read_text())["in_flight"] > 0, 30, "a photo in hand")
            w.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "SIGTERM: stopping" in w.output(), 10, "the first signal", w.proc)
            w.proc.send_signal(signal.SIGTERM)
            assert w.stop(timeout=10) == 128 + signal.SIGTERM
            wait_until(lambda: no_worker_left(home), 10, "the workers to stop")
            continue
        # Kill once some photos of this round are done (or at once), at a random moment.
        before = len(files(home.archive))
        wait_until(lambda: len(files(home.archive)) > before or not files(home.inbox), 60, "progress", w.proc)
        time.sleep(rng.uniform(0, 0.6))
        w.kill()
        # No worker of the dead watcher keeps going behind the next one's back.
        wait_until(lambda: no_worker_left(home), 10, "the dead watcher's workers to stop")
        # Nothing partial is ever visible in the outbox.
        for channel in home.settings.channels:
            assert all(not p.name.startswith(".") for p in files(home.outbox_for(channel)))
    w = Watch(home.root).wait_watching()
    try:
        wait_until(lambda: not files(home.inbox), 120, "the inbox to empty", w.proc)
        conn = db.connect(home.database)
        wait_until(lambda: conn.execute("SELECT COUNT(*) FROM photos WHERE state != 'done'").fetchone()[0] == 0,
                   30, "the journal to finish")
        conn.close()
    finally:
        assert w.stop() == 0
    assert_each_in_one_place(home, stems)


def grandchildren(pid: int) -> list[int]:
    """The watcher's workers: children of its forkserver."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    children = {p for p, pp in parents.items() if pp == pid}
    return [p for p, pp in parents.items() if pp in children]


def test_a_worker_killed_mid_photo_is_replaced_and_nothing_is_lost(home):
    stems = set()
    for i in range(30):
        name = f"oom_{i:02d}"
        size = (900, 1200) if i < 2 else (48, 64)
        (home.inbox / f"{name}.jpg").write_bytes(
            jpeg_bytes(np.random.default_rng(900 + i).integers(0, 255, (*size, 3), dtype=np.uint8)))
        stems.add(name)
    w = Watch(home.root).wait_watching()
    try:
        status = home.state / "watch.json"
        wait_until(lambda: status.exists() and json.loads(status.read_text())["in_flight"] > 0, 30, "a photo in hand")
        workers = wait_until(lambda: grandchildren(w.proc.pid), 10, "the workers")
        os.kill(workers[0], signal.SIGKILL)   # as the out-of-memory killer would
        wait_until(lambda: not files(home.inbox), 120, "the inbox to empty", w.proc)
    finally:
        assert w.stop() == 0
    assert "a worker process died; starting new workers" in w.output()
    assert_each_in_one_place(home, stems)


def test_second_watcher_refuses_and_sigterm_finishes_photos_in_hand(home):
    w = Watch(home.root).wait_watching()
    second = subprocess.run([sys.executable, "-m", "photoguard", "watch", "--home", str(home.root)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"pid {w.proc.pid}" in second.stderr

    for i in range(30):
        (home.inbox / f"t{i:02d}.jpg").write_bytes(tiny_jpeg(5000 + i))
    wait_until(lambda: files(home.outbox_for("facebook")), 60, "a first photo", w.proc)
    assert w.stop(signal.SIGTERM) == 0
    assert "stopped cleanly" in w.output()
    assert no_worker_left(home)
    # Stopped mid-burst: each photo is done or still waiting in the inbox, none half-done.
    conn = db.connect(home.database)
    assert conn.execute("SELECT COUNT(*) FROM photos WHERE state != 'done'").fetchone()[0] == 0
    done = {r[0] for r in conn.execute("SELECT source FROM photos")}
    conn.close()
    waiting = {p.name for p in files(home.inbox)}
    assert done | waiting == {f"t{i:02d}.jpg" for i in range(30)} and not done & waiting
    assert sorted(p.name for p in files(home.outbox_for("facebook"))) == sorted(done)


# --- consent withdrawn while the watcher runs ---------------------------------------------------


@pytest.fixture(scope="module")
def enrolled_root(tmp_path_factory) -> Path:
    """A home where Ada (the astronaut) is enrolled with consent for every channel."""
    root = tmp_path_factory.mktemp("enrolled") / "home"
    home = open_home(root)
    folder = home.enrol / "ada"
    folder.mkdir()
    for i, (width, context, gain) in enumerate([(150, 0.8, 1.0), (190, 0.6, 1.1), (170, 1.0, 0.9)]):
        rgb = face_patch("astronaut", width, context).rgb.astype(np.float32) * gain
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"ref{i}.jpg", quality=92)
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\n", encoding="utf-8")
    conn = db.connect(home.database)
    sync_roster(home, conn)
    assert conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0] >= 3
    conn.close()
    return root


def face_actions(home, source: str) -> dict[str, str]:
    conn = db.connect(home.database)
    rows = conn.execute("SELECT a.channel, a.action FROM face_actions a JOIN photos p ON p.sha256 = a.photo_sha256 "
                        "WHERE p.source = ?", (source,)).fetchall()
    conn.close()
    return {r["channel"]: r["action"] for r in rows}


def test_consent_withdrawn_while_running_is_never_outrun(enrolled_root, tmp_path):
    root = tmp_path / "home"
    shutil.copytree(enrolled_root, root)
    home = open_home(root)
    photo = lambda seed: scene(480, 360, [("astronaut", 150, 90, 160)], seed=seed)  # noqa: E731
    w = Watch(root).wait_watching()
    try:
        rgb1, (box,) = photo(1)
        (home.inbox / "before.jpg").write_bytes(jpeg_bytes(rgb1))
        out1 = home.outbox_for("facebook") / "before.jpg"
        wait_until(out1.exists, 90, "before.jpg in the outbox", w.proc)
        assert face_actions(home, "before.jpg") == {"facebook": "shown", "instagram": "shown", "twitter": "shown"}

        # Ada's parents withdraw Facebook consent; a photo of her is dropped straight after.
        home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,no,yes,yes,\n", encoding="utf-8")
        rgb2, (box2,) = photo(2)
        (home.inbox / "after.jpg").write_bytes(jpeg_bytes(rgb2))
        out2 = home.outbox_for("facebook") / "after.jpg"
        wait_until(out2.exists, 90, "after.jpg in the outbox", w.proc)
        assert face_actions(home, "after.jpg") == {"facebook": "obscured", "instagram": "shown", "twitter": "shown"}
        with Image.open(out2) as im:
            face = np.asarray(im.convert("RGB"))[box2[1]:box2[3], box2[0]:box2[2]].astype(int)
        original = rgb2[box2[1]:box2[3], box2[0]:box2[2]].astype(int)
        assert np.abs(face - original).mean() > 20
        # The photo cleared before the change was re-rendered in the outbox.
        # (The decision at processing stays in the audit as it was; the outbox file is re-made.)
        wait_until(lambda: "outbox facebook/before.jpg: rerendered" in w.output(), 30, "the re-check", w.proc)
        with Image.open(out1) as im:
            face = np.asarray(im.convert("RGB"))[box[1]:box[3], box[0]:box[2]].astype(int)
        assert np.abs(face - rgb1[box[1]:box[3], box[0]:box[2]].astype(int)).mean() > 20

        # A roster that cannot be read pauses processing (the consents on file may be out of date).
        home.roster_csv.write_text("name,facebook\nAda,yes\n", encoding="utf-8")
        wait_until(lambda: "roster not usable" in w.output(), 30, "the roster error", w.proc)
        (home.inbox / "paused.jpg").write_bytes(jpeg_bytes(photo(3)[0]))
        time.sleep(2)
        assert (home.inbox / "paused.jpg").exists()
        res = CliRunner().invoke(main, ["status", "--home", str(root)])
        assert "paused: " in res.output and "no 'id' column" in res.output
        home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,no,yes,yes,\n", encoding="utf-8")
        wait_until((home.outbox_for("facebook") / "paused.jpg").exists, 60, "paused.jpg after the fix", w.proc)
        assert face_actions(home, "paused.jpg")["facebook"] == "obscured"
    finally:
        assert w.stop() == 0
    log = w.output()
    assert "enrol/ changed: pausing" in log and "roster synced" in log
    assert "outbox facebook/before.jpg: rerendered" in log


def test_polling_for_network_shares(home):
    w = Watch(home.root, "--poll").wait_watching()
    try:
        (home.inbox / "share").mkdir()
        for i in range(3):
            (home.inbox / "share" / f"nas{i}.jpg").write_bytes(tiny_jpeg(700 + i))
        wait_until(lambda: len(files(home.outbox_for("twitter"))) == 3, 60, "three photos via polling", w.proc)
    finally:
        assert w.stop() == 0
    assert_each_in_one_place(home, {f"nas{i}" for i in range(3)})


# --- files replaced, links, pipes and floods (issue 11: items 5, 8, 9) ---------------------------


def test_photo_replaced_under_the_same_name_while_processed_is_a_photo_of_its_own(home):
    """The first photo is big enough to take a while; it is replaced under the same name (a tablet
    syncing again) once the worker has taken it. Each ends in the outbox, and the archive holds exactly
    the bytes that were processed, under their own hash. A FIFO and a link to /dev/zero dropped beside
    them go to failed/ as themselves, without blocking or spinning the watcher."""
    import hashlib

    first = jpeg_bytes(scene(2400, 1600, [("astronaut", 700, 500, 300)], seed=1)[0])
    second = jpeg_bytes(scene(800, 600, [("hopper", 300, 200, 160)], seed=2)[0])
    w = Watch(home.root).wait_watching()
    try:
        (home.inbox / "same.jpg").write_bytes(first)
        conn = db.connect(home.database)
        wait_until(lambda: conn.execute("SELECT state FROM photos WHERE source = 'same.jpg'").fetchone(), 60,
                   "the worker to take same.jpg", w.proc)
        replacement = home.inbox / ".same.jpg.tmp"
        replacement.write_bytes(second)
        os.replace(replacement, home.inbox / "same.jpg")
        os.mkfifo(home.inbox / "pipe.jpg")
        os.symlink("/dev/zero", home.inbox / "zero.jpg")
        wait_until(lambda: not files(home.inbox) and not list(home.inbox.iterdir()), 180, "the inbox to empty",
                   w.proc)
        wait_until(lambda: len(files(home.outbox_for("facebook"))) == 2, 60, "both photos", w.proc)
        conn.close()
    finally:
        assert w.stop() == 0
    archived = {p.read_bytes() for p in files(home.archive)}
    assert archived == {first, second}
    for p in files(home.archive):
        assert p.name.startswith(hashlib.sha256(p.read_bytes()).hexdigest()[:12] + "_")
    assert sorted(p.name for p in files(home.outbox_for("facebook"))) == ["same-1.jpg", "same.jpg"]
    assert stat_kind(home.failed / "pipe.jpg") == "fifo" and os.readlink(home.failed / "zero.jpg") == "/dev/zero"
    assert (home.failed / "pipe.jpg.txt").exists() and (home.failed / "zero.jpg.txt").exists()
    assert not list((home.state / "staging").iterdir())


def stat_kind(path: Path) -> str:
    import stat as st

    mode = os.lstat(path).st_mode
    return "fifo" if st.S_ISFIFO(mode) else "link" if st.S_ISLNK(mode) else "file"


def test_thousands_of_new_files_are_seen_one_by_one_not_by_rescanning(home):
    """Real inotify events for 3,000 new files (and a folder moved in whole): each file is seen from
    its own event; the inbox is never rescanned per folder event (which made 10,000 files quadratic).
    The time it takes lives in benchmarks/bench_watch.py."""
    from photoguard.flow.watch import Watcher, WatchOptions

    watcher = Watcher(home, WatchOptions(workers=1))
    observer = watcher._observe()
    try:
        for i in range(3000):
            (home.inbox / f"IMG_{i:05d}.jpg").write_bytes(b"")
        batch = home.root / "batch"
        (batch / "deeper").mkdir(parents=True)
        for i in range(50):
            (batch / "deeper" / f"old_{i}.jpg").write_bytes(b"")
        batch.rename(home.inbox / "batch")
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 3050 and time.monotonic() < deadline:
            time.sleep(0.2)
            watcher._drain_events()
            seen = len(watcher.pending)
    finally:
        observer.stop()
        observer.join(5)
    assert seen == 3050
    assert watcher.scans == 1   # the folder that arrived whole, once
    watcher._scan_inbox()       # the periodic rescan finds nothing new
    assert len(watcher.pending) == 3050 and watcher.scans == 2
