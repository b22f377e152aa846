"""Taking files in, on real files: FIFOs, links, hard links, long and non-UTF-8 names, files outside the
inbox, notes that must not overwrite, damaged JPEGs, modes whatever the umask, and a journal entry that
cannot be finished."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from facekit import background, jpeg_bytes

from photoguard.engine.detect import FaceDetector
from photoguard.flow.pipeline import Processor
from photoguard.flow.batch import resume_interrupted, run_batch
from photoguard.photos.inbox import collect
from photoguard.photos.durable import safe_name
from photoguard.store.db import connect
from photoguard.store.home import open_home


def tiny_jpeg(seed: int) -> bytes:
    return jpeg_bytes(background(96, 64, seed=seed), quality=90)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer: a FIFO used to block forever."""
    def expired(signum, frame):
        raise AssertionError(f"took longer than {seconds}s (blocked?)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture
def home(tmp_path):
    return open_home(tmp_path / "home")


@pytest.fixture
def processor(home, detector) -> Processor:
    return Processor(home, detector=detector)


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- item 8: entries that are not regular files --------------------------------------------------


def test_fifo_and_links_go_to_failed_as_themselves_and_targets_are_untouched(home, processor, tmp_path):
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(tiny_jpeg(1))
    os.chmod(elsewhere, 0o644)
    before = elsewhere.read_bytes()
    os.mkfifo(home.inbox / "pipe.jpg")
    os.symlink("/dev/zero", home.inbox / "zero.jpg")
    os.symlink(elsewhere, home.inbox / "link.jpg")
    (tmp_path / "somefolder").mkdir()
    os.symlink(tmp_path / "somefolder", home.inbox / "folder-link")

    with deadline(60):
        results = {r.source: r for r in run_batch(processor, collect([home.inbox]))}

    assert {n: r.status for n, r in results.items()} == {
        "pipe.jpg": "failed", "zero.jpg": "failed", "link.jpg": "failed", "folder-link": "failed"}
    assert "pipe" in results["pipe.jpg"].reason and "link" in results["link.jpg"].reason
    assert names_in(home.inbox) == []
    # The entries themselves were moved, each with a note; no target was read, moved or changed.
    assert stat.S_ISFIFO(os.lstat(home.failed / "pipe.jpg").st_mode)
    assert os.readlink(home.failed / "zero.jpg") == "/dev/zero"
    assert os.readlink(home.failed / "link.jpg") == str(elsewhere)
    assert os.path.islink(home.failed / "folder-link")
    for name in ("pipe.jpg", "zero.jpg", "link.jpg", "folder-link"):
        assert "could not be processed" in (home.failed / f"{name}.txt").read_text()
    assert elsewhere.read_bytes() == before and mode(elsewhere) == 0o644
    assert not list(home.archive.rglob("*.jpg")) and not list(home.outbox.rglob("*.jpg"))
    assert not list(processor.staging.iterdir())


def test_hard_linked_photo_is_copied_in_and_the_shared_file_is_never_changed(home, processor, tmp_path):
    elsewhere = tmp_path / "staff-copy.jpg"
    data = tiny_jpeg(2)
    elsewhere.write_bytes(data)
    os.chmod(elsewhere, 0o644)
    os.link(elsewhere, home.inbox / "linked.jpg")

    result = processor.process(home.inbox / "linked.jpg", date.today())

    assert result.status == "cleared", result.reason
    assert not (home.inbox / "linked.jpg").exists()
    st = os.stat(elsewhere)
    assert elsewhere.read_bytes() == data and stat.S_IMODE(st.st_mode) == 0o644 and st.st_nlink == 1
    [archived] = [p for p in home.archive.rglob("*.jpg")]
    assert archived.read_bytes() == data and mode(archived) == 0o600 and os.stat(archived).st_nlink == 1


def test_a_file_too_large_is_refused_by_its_size_without_being_read(home, processor, monkeypatch):
    import photoguard.flow.pipeline as pipeline

    monkeypatch.setattr(pipeline, "MAX_FILE_BYTES", 10_000)   # a small limit stands in for 300 MB
    big = home.inbox / "huge.jpg"
    with open(big, "wb") as fh:
        fh.truncate(50_000)   # sparse: no data to read
    result = processor.process(big, date.today())
    assert result.status == "failed" and "too large" in result.reason
    assert (home.failed / "huge.jpg").stat().st_size == 50_000


# --- item 7: files outside the inbox, notes, non-UTF-8 names -------------------------------------


def test_process_paths_outside_the_inbox_never_moves_the_users_files(home, processor, tmp_path):
    mine = tmp_path / "my pictures"
    mine.mkdir()
    good, bad = mine / "party.jpg", mine / "broken.jpg"
    good.write_bytes(tiny_jpeg(3))
    bad.write_bytes(b"not a photo" * 50)
    os.mkfifo(mine / "pipe.jpg")
    os.symlink("/dev/zero", mine / "zero.jpg")
    before = {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mode) for p in mine.iterdir()}

    with deadline(60):
        results = {r.source: r.status for r in run_batch(processor, collect([mine]))}

    assert results == {"party.jpg": "cleared", "broken.jpg": "failed", "pipe.jpg": "failed", "zero.jpg": "failed"}
    assert {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mode) for p in mine.iterdir()} == before
    assert good.read_bytes() == tiny_jpeg(3)
    assert [p.read_bytes() for p in home.archive.rglob("*party.jpg")] == [tiny_jpeg(3)]
    assert (home.failed / "broken.jpg").read_bytes() == bad.read_bytes()   # a copy for the manager
    assert not list(processor.staging.iterdir())
    assert not (home.failed / "pipe.jpg").exists()                          # not ours: left alone


def test_a_note_never_overwrites_a_file_already_in_failed(home, processor):
    (home.inbox / "a.jpg.txt").write_text("staff notes, not a photo\n")
    processor.process(home.inbox / "a.jpg.txt", date.today())
    assert (home.failed / "a.jpg.txt").read_text() == "staff notes, not a photo\n"

    (home.inbox / "a.jpg").write_bytes(b"junk" * 100)
    result = processor.process(home.inbox / "a.jpg", date.today())

    assert result.status == "failed"
    assert (home.failed / "a.jpg.txt").read_text() == "staff notes, not a photo\n"
    moved = Path(result.outputs["failed"])
    assert moved.read_bytes() == b"junk" * 100
    assert "a.jpg could not be processed" in moved.with_name(moved.name + ".txt").read_text()


def test_non_utf8_names_are_processed_printed_and_stored(home, tmp_path):
    inbox = os.fsencode(home.inbox)
    with open(os.path.join(inbox, b"caf\xe9 \xe0 la cr\xe8che.jpg"), "wb") as fh:   # Latin-1 bytes
        fh.write(tiny_jpeg(4))
    with open(os.path.join(inbox, b"d\xe9g\xe2t.jpg"), "wb") as fh:
        fh.write(b"not a photo" * 50)

    proc = subprocess.run([sys.executable, "-m", "photoguard", "process", "--json", "--home", str(home.root)],
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONIOENCODING": "utf-8"})

    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert {(r["source"], r["status"]) for r in lines} == {
        ("caf\ufffd \ufffd la cr\ufffdche.jpg", "cleared"), ("d\ufffdg\ufffdt.jpg", "failed")}
    assert os.listdir(inbox) == []
    out = os.listdir(home.outbox_for("facebook"))
    assert out == ["caf\ufffd \ufffd la cr\ufffdche.jpg"]   # a readable UTF-8 name
    assert sorted(os.listdir(home.failed)) == ["d\ufffdg\ufffdt.jpg", "d\ufffdg\ufffdt.jpg.txt"]
    conn = connect(home.database)
    assert sorted(r[0] for r in conn.execute("SELECT source FROM photos")) == [
        "caf\ufffd \ufffd la cr\ufffdche.jpg", "d\ufffdg\ufffdt.jpg"]


# --- item 6: long names, and a journal entry that cannot be finished -------------------------------


def test_safe_name_keeps_the_extension_valid_utf8_and_apart():
    long_a, long_b = "照" * 82 + "a.jpeg", "照" * 82 + "b.jpeg"
    assert len(("照" * 82 + ".jpeg").encode()) == 251
    a, b = safe_name(long_a), safe_name(long_b)
    assert a != b and a.endswith(".jpeg") and len(a.encode("utf-8")) <= 200
    a.encode("utf-8").decode("utf-8")
    assert safe_name("IMG_0001.jpg") == "IMG_0001.jpg"
    assert safe_name("a/b.jpg") == "a_b.jpg"


def test_251_byte_names_are_shortened_wherever_photoguard_writes(home, processor):
    name = "照" * 82 + ".jpeg"              # 251 bytes: the archive name "<sha12>_<name>" would not fit
    bad = "写" * 81 + "x.jpg"               # 248 bytes, not a photo
    (home.inbox / name).write_bytes(tiny_jpeg(5))
    (home.inbox / bad).write_bytes(b"not a photo" * 50)

    (home.inbox / ("again-" + "照" * 81 + ".jpeg")).write_bytes(tiny_jpeg(5))   # the same photo again: 254 bytes

    results = run_batch(processor, collect([home.inbox]))

    assert sorted(r.status for r in results) == ["cleared", "duplicate", "failed"]
    assert not list(processor.staging.iterdir())
    [dup] = [p for p in (home.archive / "duplicates").iterdir() if p.suffix == ".jpeg"]
    assert dup.read_bytes() == tiny_jpeg(5) and len(dup.name.encode()) <= 200
    assert os.listdir(home.inbox) == []
    written = [p for p in home.root.rglob("*") if p.is_file() and ".photoguard" not in p.parts]
    assert len(written) == 3 + 1 + 2 + 2   # outbox copy per channel, original, failed + note, duplicate + note
    for path in written:
        assert len(path.name.encode("utf-8")) <= 210, path.name
    assert all(p.name.endswith(".jpg") for p in home.outbox.rglob("*.jpg"))
    [archived] = [p for p in home.archive.rglob("*.jpeg") if "duplicates" not in p.parts]
    assert archived.read_bytes() == tiny_jpeg(5)
    [failed_note] = list(home.failed.glob("*.txt"))
    assert failed_note.read_text().startswith(bad)   # the note names the file by its whole name


def test_one_journal_entry_that_cannot_be_finished_never_stops_the_rest(home, processor):
    """A run killed while publishing left two entries; one of them (as an older PhotoGuard wrote it) has
    an archive name too long for the file system. Resuming finishes the other and fails that one."""
    snaps = []
    for i in (6, 7):
        (home.inbox / f"p{i}.jpg").write_bytes(tiny_jpeg(i))
    # Decide and stage both, as a killed run would have left them ('publishing').
    from photoguard.photos.intake import take_snapshot

    for i in (6, 7):
        snap = take_snapshot(home.inbox / f"p{i}.jpg", processor.staging, 10**8)
        folder = processor.staging / snap.sha256
        folder.mkdir()
        os.replace(snap.path, folder / "original")
        snap = type(snap)(folder / "original", snap.sha256, snap.source)
        processor.conn.execute("INSERT INTO photos (sha256, source, source_path, state, received_at) "
                               "VALUES (?, ?, ?, 'processing', 'now')", (snap.sha256, f"p{i}.jpg", "x"))
        assert isinstance(processor._decide_and_stage(snap, f"p{i}.jpg", snap.sha256, date.today()), list)
        snaps.append(snap)
    too_long = f"archive/{date.today()}/{'照' * 90}.jpg"
    processor.conn.execute("UPDATE photos SET archive_path = ? WHERE sha256 = ?", (too_long, snaps[0].sha256))

    results = {r.source: r for r in resume_interrupted(processor)}
    again = resume_interrupted(processor)   # and the next start is not stuck either

    assert results["p6.jpg"].status == "failed" and "could not finish" in results["p6.jpg"].reason
    assert results["p7.jpg"].status == "cleared"
    assert again == []
    assert (home.failed / "p6.jpg").read_bytes() == tiny_jpeg(6)
    assert "file name too long" in (home.failed / "p6.jpg.txt").read_text()
    assert os.listdir(home.inbox) == []
    assert sorted(os.listdir(home.outbox_for("facebook"))) == ["p7.jpg"]   # p6's copies were taken back
    rows = processor.conn.execute("SELECT source, state, outcome FROM photos ORDER BY source").fetchall()
    assert [tuple(r) for r in rows] == [("p6.jpg", "done", "failed"), ("p7.jpg", "done", "cleared")]


# --- item 10: damaged picture data ---------------------------------------------------------------


def corrupt_quietly(data: bytes, seed: int = 1) -> bytes:
    """Random bytes (no 0xFF, so every marker stays valid) over 200 bytes in the middle of the picture
    data: libjpeg decodes it into smeared blocks and only warns."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    mid = int(len(out) * 0.6)
    out[mid:mid + 200] = rng.integers(0, 255, 200, dtype=np.uint8).tobytes().replace(b"\xff", b"\xfe")
    return bytes(out)


def test_jpeg_with_corrupt_picture_data_goes_to_failed_not_the_outbox(home, processor):
    from skimage import data as skdata

    from photoguard.photos.images import libjpeg_warning
    from photoguard.photos.jpeg import jpeg_problem

    photo = jpeg_bytes(skdata.astronaut(), quality=90)
    damaged = corrupt_quietly(photo)
    assert jpeg_problem(damaged) is None              # the marker walk cannot see it
    assert libjpeg_warning(photo) is None
    (home.inbox / "garbage.jpg").write_bytes(damaged)

    result = processor.process(home.inbox / "garbage.jpg", date.today())

    assert result.status == "failed", result.status
    assert "damaged JPEG" in result.reason and "Corrupt JPEG data" not in result.reason   # words, not libjpeg's
    assert (home.failed / "garbage.jpg").read_bytes() == damaged
    assert not list(home.outbox.rglob("*.jpg"))


# --- item 11: modes, whatever the umask; purge ---------------------------------------------------


def test_modes_are_set_explicitly_even_with_umask_000(tmp_path, detector):
    old = os.umask(0)
    try:
        home = open_home(tmp_path / "home")
        processor = Processor(home, detector=detector)
        (home.inbox / "ok.jpg").write_bytes(tiny_jpeg(8))
        (home.inbox / "bad.jpg").write_bytes(b"not a photo" * 50)
        run_batch(processor, collect([home.inbox]))
        processor.conn.close()
    finally:
        os.umask(old)
    assert mode(home.inbox) == 0o2770
    assert mode(home.outbox) == 0o750
    for channel in home.settings.channels:
        folder = home.outbox_for(channel)
        assert mode(folder) == 0o750
        assert [mode(p) for p in folder.iterdir()] == [0o640]
    for private in (home.review, home.failed, home.archive, home.enrol, home.state, home.logs, home.reports):
        assert mode(private) == 0o700, private
    for day in home.archive.iterdir():
        assert mode(day) == 0o700
        assert all(mode(p) == 0o600 for p in day.iterdir())
    assert sorted((p.name, mode(p)) for p in home.failed.iterdir()) == [("bad.jpg", 0o600), ("bad.jpg.txt", 0o600)]
    for db_file in home.state.glob("photoguard.db*"):
        assert mode(db_file) == 0o600, db_file


def test_purge_clears_old_failed_and_review_files(home):
    from photoguard.flow.audit import purge_archive

    old = home.failed / "old.jpg"
    for p in (old, old.with_name("old.jpg.txt"), home.review / "left.jpg", home.review / "left.json"):
        p.write_bytes(b"x")
    # A file from a camera keeps the day it was taken as its mtime: in failed/ (its only copy) it is
    # aged from when it arrived.
    long_ago = int((date.today() - timedelta(days=90)).strftime("%s"))
    os.utime(old, (long_ago, long_ago))
    conn = connect(home.database)
    assert purge_archive(home, conn) == []
    later = date.today() + timedelta(days=home.settings.archive_retention_days + 1)
    purged = {p.path.name for p in purge_archive(home, conn, today=later)}
    assert purged == {"old.jpg", "old.jpg.txt", "left.jpg", "left.json"}
    assert names_in(home.failed) == [] and names_in(home.review) == []
    # The history says a failed photo went (the note with it needs no line of its own).
    assert [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = 'purged'")] == [
        f"failed/old.jpg: deleted after {home.settings.archive_retention_days} days in failed/"]
