"""reprocess never loses a photo or deletes a file it did not make: a run killed while taking copies out
of the outbox, a copy taken in that moment, the manager's own file under our name, a full disk.
Real photos, the real pipeline, a real home and database; only the moment of failure is arranged."""

from __future__ import annotations

import errno

import pytest
from facekit import jpeg_bytes
from test_pipeline import detector, drop, enrolled_home, home, photo_of_both, processor  # noqa: F401

import photoguard.flow.pipeline as pipeline
import photoguard.flow.reprocess as rp
from photoguard.flow.outbox import sweep
from photoguard.flow.results import DiskFull
from photoguard.flow.reprocess import interrupted, reprocess, select_photos


def copies(home, channel: str = "facebook") -> list[str]:
    return sorted(p.name for p in home.outbox_for(channel).rglob("*.jpg"))


def test_killed_while_taking_copies_out_the_next_run_finishes_the_photo(home, processor, monkeypatch):
    processor.process(drop(home, "party.jpg", jpeg_bytes(photo_of_both(seed=5)[0])))
    first = (home.outbox_for("instagram") / "party.jpg").read_bytes()   # Grace obscured there: noise of its own
    real_delete = rp._delete_replaced

    def killed(conn, h, sha):   # the copies are recorded as replaced; the process dies before deleting them
        raise KeyboardInterrupt

    monkeypatch.setattr(rp, "_delete_replaced", killed)
    with pytest.raises(KeyboardInterrupt):
        reprocess(processor, select_photos(processor.conn, ["party.jpg"]))
    monkeypatch.setattr(rp, "_delete_replaced", real_delete)
    sweep(home, processor.conn)
    assert [r["source"] for r in interrupted(processor.conn)] == ["party.jpg"]   # named as unfinished
    # The next run (for any photo) finishes it: one new copy per channel, the old one gone, none collected.
    [redo] = reprocess(processor, [])
    assert redo.outcome == "cleared"
    for channel in home.settings.channels:
        assert copies(home, channel) == ["party.jpg"]
    assert (home.outbox_for("instagram") / "party.jpg").read_bytes() != first         # made again
    assert processor.conn.execute("SELECT COUNT(*) FROM outbox_files WHERE ended = 'collected'").fetchone()[0] == 0
    assert interrupted(processor.conn) == []


def test_a_copy_taken_in_the_moment_stops_the_photo(home, processor, monkeypatch, tmp_path):
    processor.process(drop(home, "party.jpg", jpeg_bytes(photo_of_both(seed=6)[0])))
    real_sweep = rp.sweep

    def look_then_collect(h, conn):
        where = real_sweep(h, conn)
        (h.outbox_for("facebook") / "party.jpg").rename(tmp_path / "on-the-laptop.jpg")   # the manager takes it now
        return where

    monkeypatch.setattr(rp, "sweep", look_then_collect)
    [redo] = reprocess(processor, select_photos(processor.conn, ["party.jpg"]))
    assert redo.outcome == "skipped" and "taken from the outbox just now" in redo.detail
    assert processor.conn.execute("SELECT COUNT(*) FROM outbox_files WHERE ended = 'collected'").fetchone()[0] == 1
    assert copies(home) == [] and copies(home, "instagram") == ["party.jpg"]   # nothing made again, nothing deleted


def test_the_managers_own_file_under_our_name_is_never_deleted(home, processor, tmp_path):
    processor.process(drop(home, "party.jpg", jpeg_bytes(photo_of_both(seed=9)[0])))
    ours = home.outbox_for("facebook") / "party.jpg"
    edited = tmp_path / "edited.jpg"
    edited.write_bytes(jpeg_bytes(photo_of_both(seed=10)[0]))   # her cropped, captioned version
    edited.replace(ours)                                          # saved over ours
    mine = ours.read_bytes()
    [redo] = reprocess(processor, select_photos(processor.conn, ["party.jpg"]))
    assert redo.outcome == "skipped" and "changed by someone (facebook/party.jpg)" in redo.detail
    assert ours.read_bytes() == mine
    assert copies(home, "instagram") == ["party.jpg"] and interrupted(processor.conn) == []


def test_a_full_disk_stops_the_run_instead_of_emptying_every_outbox(home, processor, monkeypatch):
    for i, name in enumerate(("a.jpg", "b.jpg")):
        processor.process(drop(home, name, jpeg_bytes(photo_of_both(seed=7 + i)[0])))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "save_stripped_jpeg", full)
    with pytest.raises(DiskFull, match="no space left"):
        reprocess(processor, select_photos(processor.conn, ["a.jpg", "b.jpg"]))
    # The run stopped at the first photo it took (whichever that was); the other was not touched.
    [stopped] = [r["source"] for r in interrupted(processor.conn)]
    assert copies(home) == sorted({"a.jpg", "b.jpg"} - {stopped})
    monkeypatch.undo()
    [redo] = reprocess(processor, [])                             # space again: the first is finished
    assert redo.outcome == "cleared" and copies(home) == ["a.jpg", "b.jpg"]
