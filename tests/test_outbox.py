"""The outbox after publishing, on real files: separate files per channel, files renamed or edited in the
outbox re-made when consent goes, collection and posting as known events, the take-down list."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from facekit import jpeg_bytes
from PIL import Image, ImageDraw
from test_pipeline import (  # noqa: F401 (the same fixtures)
    CSV_HEADER,
    ROSTER,
    detector,
    diff,
    drop,
    enrolled_home,
    home,
    photo_of_both,
    processor,
    region,
)

from photoguard.cli import main
from photoguard.flow.outbox import OutboxError, list_outbox, mark_posted, mark_taken_down, outbox_photo, sweep, takedown_list
from photoguard.flow.recheck import recheck_outbox
from photoguard.store.home import OUTBOX_FILE
from photoguard.store.roster import sync_roster

CHANNELS = ("facebook", "instagram", "twitter")
NO_ADA = CSV_HEADER + "ada,Ada,yes,no,no,no,\ngrace,Grace,yes,yes,no,no,\n"


def withdraw(home, processor, roster: str = NO_ADA) -> list:
    home.roster_csv.write_text(roster, encoding="utf-8")
    sync_roster(home, processor.conn)
    processor.reload_roster()
    return recheck_outbox(processor)


def published(processor, name: str, seed: int):
    rgb, boxes = photo_of_both(seed=seed)
    result = processor.process(drop(processor.home, name, jpeg_bytes(rgb)))
    assert result.status == "cleared", result.reason
    return rgb, boxes, {c: Path(p) for c, p in result.outputs.items()}


def crop(rgb, box):
    return rgb[box[1]:box[3], box[0]:box[2]]


def test_each_channel_gets_a_file_of_its_own(processor):
    _, _, out = published(processor, "own.jpg", seed=21)
    # Instagram and Twitter show the same faces (Ada only): the same picture, but two files.
    ig, tw = out["instagram"], out["twitter"]
    assert ig.read_bytes() == tw.read_bytes()
    inodes = {os.stat(p).st_ino for p in out.values()}
    assert len(inodes) == 3 and all(os.stat(p).st_nlink == 1 for p in out.values())
    before = tw.read_bytes()
    with open(ig, "r+b") as fh:  # edit one channel's copy in place
        fh.seek(-20, os.SEEK_END)
        fh.write(b"\0" * 10)
    assert tw.read_bytes() == before


def test_renamed_and_edited_outbox_files_are_remade_when_consent_goes(home, processor):
    rgb, boxes, out = published(processor, "picnic.jpg", seed=22)
    a = boxes["ada"]
    # Facebook: renamed within the outbox. Instagram: edited in place (same file). Twitter: an editor
    # that saves a new file under the same name (a new inode).
    renamed = out["facebook"].parent / "friday" / "for-friday.jpg"     # renamed into a folder of its own
    renamed.parent.mkdir()
    os.rename(out["facebook"], renamed)
    with Image.open(out["instagram"]) as im:
        edited = im.convert("RGB")
    ImageDraw.Draw(edited).rectangle((0, 0, 40, 40), fill=(255, 0, 0))
    with open(out["instagram"], "r+b") as fh:
        edited.save(fh, "JPEG")
        fh.truncate()
    ino_ig = os.stat(out["instagram"]).st_ino
    tmp = out["twitter"].with_name("twitter-edit.tmp.jpg")
    edited.save(tmp, "JPEG")
    os.replace(tmp, out["twitter"])
    for path in (renamed, out["instagram"], out["twitter"]):
        assert diff(region(path, a), crop(rgb, a)) < 6          # Ada visible in all three

    changes = withdraw(home, processor)

    assert sorted((c.channel, Path(c.path).name, c.action) for c in changes) == [
        ("facebook", "for-friday.jpg", "rerendered"), ("instagram", "picnic.jpg", "rerendered"),
        ("twitter", "picnic.jpg", "rerendered")]
    assert not out["facebook"].exists()                          # re-made where it is now, not where it was
    for path in (renamed, out["instagram"], out["twitter"]):
        assert diff(region(path, a), crop(rgb, a)) > 15          # Ada obscured everywhere
        assert stat.S_IMODE(os.stat(path).st_mode) == OUTBOX_FILE  # re-made with the outbox's mode (was 0644)
    assert os.stat(out["instagram"]).st_ino != ino_ig
    assert len({os.stat(p).st_ino for p in (renamed, out["instagram"], out["twitter"])}) == 3
    assert takedown_list(processor.conn) == []                  # nothing had left the outbox
    assert recheck_outbox(processor) == []                       # and nothing left to do


def test_collected_and_posted_photos_go_on_the_takedown_list_until_marked(home, processor, tmp_path):
    rgb, boxes, out = published(processor, "garden.jpg", seed=23)
    runner = CliRunner()
    args = ["--home", str(home.root)]
    # Facebook: the manager posts it (and leaves it in the outbox). Instagram: collected (moved away).
    result = runner.invoke(main, ["posted", "garden.jpg", "--channel", "facebook", "--by", "Mrs Jones", *args])
    assert result.exit_code == 0, result.output
    assert "marked posted" in result.output
    collected = tmp_path / "collected.jpg"
    shutil.move(out["instagram"], collected)
    assert runner.invoke(main, ["takedown", *args]).output.strip() == "nothing to take down"

    changes = withdraw(home, processor)

    # Still in the outbox (posted or not) is re-made; the collected one is not brought back.
    assert sorted((c.channel, c.action) for c in changes) == [("facebook", "rerendered"), ("twitter", "rerendered")]
    assert not out["instagram"].exists()
    a = boxes["ada"]
    assert diff(region(out["facebook"], a), crop(rgb, a)) > 15
    items = takedown_list(processor.conn)
    assert [(i.channel, i.how, i.name, [(c.child_id, c.reason) for c in i.children]) for i in items] == [
        ("facebook", "posted", "garden.jpg", [("ada", "no consent for facebook")]),
        ("instagram", "collected", "garden.jpg", [("ada", "no consent for instagram")])]
    assert takedown_list(processor.conn, child_id="grace") == []

    listing = runner.invoke(main, ["takedown", "--child", "ada", *args]).output
    assert "garden.jpg" in listing and "posted" in listing and "Ada (no consent for facebook)" in listing
    status = runner.invoke(main, ["status", *args])
    assert status.exit_code == 0, status.output
    # Which home first, then the take-down list before anything else.
    assert status.output.splitlines()[0].startswith("PhotoGuard home: ")
    assert status.output.splitlines()[1].startswith("take down: 2 photo(s)")
    assert "garden.jpg" in status.output

    from photoguard.flow.report_page import build_report

    page = build_report(home, processor.conn, date.today()).read_text(encoding="utf-8")
    top = page.index("Take these photos down")
    assert top < page.index("class=\"tiles\"") and page.count("garden.jpg") >= 2
    assert "posted " in page[top:page.index("</section>", top)] and "no consent for instagram" in page

    fb_item = items[0]
    result = runner.invoke(main, ["takedown", "done", str(fb_item.file_id), "--by", "Mrs Jones", *args])
    assert result.exit_code == 0 and "marked taken down" in result.output, result.output
    assert [i.channel for i in takedown_list(processor.conn)] == ["instagram"]
    mark_taken_down(processor.conn, takedown_list(processor.conn)[0], "Mrs Jones")
    assert takedown_list(processor.conn) == []
    assert "take down" not in runner.invoke(main, ["status", *args]).output
    bad = runner.invoke(main, ["takedown", "done", "999", *args])
    assert bad.exit_code != 0 and "not on the take-down list" in bad.output

    # The audit keeps what was published: the posted file still says Ada was shown in it, the decision
    # at processing is unchanged, and every step is an event.
    conn = processor.conn
    ada = conn.execute("SELECT idx FROM faces WHERE photo_sha256 = ? AND child_id = 'ada'",
                       (fb_item.photo_sha256,)).fetchone()[0]
    posted_row = conn.execute("SELECT * FROM outbox_files WHERE id = ?", (fb_item.file_id,)).fetchone()
    assert ada in json.loads(posted_row["shown"]) and posted_row["ended"] == "replaced"
    assert posted_row["posted_by"] == "Mrs Jones"
    assert {r[0] for r in conn.execute("SELECT action FROM face_actions WHERE face_idx = ?", (ada,))} == {"shown"}
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind IN ('posted', 'collected', 'rerendered', "
                                        "'removed', 'taken_down') ORDER BY id")]
    assert kinds == ["posted", "collected", "rerendered", "rerendered", "taken_down", "taken_down"]
    from photoguard.flow.audit import export_audit

    buf = io.StringIO()
    export_audit(conn, buf)
    files = [r for r in csv.DictReader(io.StringIO(buf.getvalue().lstrip("\ufeff"))) if r["outcome"] == "outbox file"]
    facebook = [(r["child"], r["action"]) for r in files if r["channel"] == "facebook"]
    assert len(facebook) == 2
    assert facebook[0][0] == "ada, grace" and "replaced" in facebook[0][1] and "posted" in facebook[0][1]
    assert "taken down" in facebook[0][1] and "Mrs Jones" in facebook[0][1]
    assert facebook[1] == ("grace", "in the outbox")


def test_consent_given_back_takes_a_photo_off_the_list(home, processor):
    _, _, out = published(processor, "sandpit.jpg", seed=24)
    mark_posted(home, processor.conn, "sandpit", "twitter", "manager")
    withdraw(home, processor)
    assert [i.channel for i in takedown_list(processor.conn)] == ["twitter"]
    withdraw(home, processor, ROSTER)
    assert takedown_list(processor.conn) == []


def test_library_api_for_the_web_app(home, processor):
    _, _, out = published(processor, "paint.jpg", seed=25)
    photos = list_outbox(home, processor.conn, "facebook")
    assert len(photos) == 1
    photo = photos[0]
    assert (photo.channel, photo.name, photo.source, photo.path, photo.posted) == \
        ("facebook", "paint.jpg", "paint.jpg", out["facebook"], None)
    assert {p.channel for p in list_outbox(home, processor.conn)} == set(CHANNELS)
    # The id is stable and follows the file when it is renamed.
    os.rename(out["facebook"], out["facebook"].with_name("paint-final.jpg"))
    again = outbox_photo(home, processor.conn, photo.id)
    assert again.path == out["facebook"].with_name("paint-final.jpg") and again.name == "paint-final.jpg"
    marked = mark_posted(home, processor.conn, photo.id, "facebook", "web")
    assert marked.posted and marked.posted_by == "web"
    assert mark_posted(home, processor.conn, photo.id, "facebook", "someone else").posted_by == "web"  # once
    with pytest.raises(OutboxError, match="not twitter"):
        mark_posted(home, processor.conn, photo.id, "twitter", "web")
    with pytest.raises(OutboxError, match="unknown channel"):
        list_outbox(home, processor.conn, "myspace")
    with pytest.raises(OutboxError, match="no photo called nothing.jpg"):
        mark_posted(home, processor.conn, "nothing.jpg", "facebook", "web")
    with pytest.raises(OutboxError, match="no outbox photo number"):
        outbox_photo(home, processor.conn, 12345)
    with pytest.raises(OutboxError, match="not an outbox photo number"):
        outbox_photo(home, processor.conn, "../../etc/passwd")  # type: ignore[arg-type]
    # Collected after being renamed: named by the name it had last.
    list_outbox(home, processor.conn)
    out["facebook"].with_name("paint-final.jpg").unlink()
    sweep(home, processor.conn)
    gone = outbox_photo(home, processor.conn, photo.id)
    assert (gone.name, gone.path, gone.posted_by) == ("paint-final.jpg", None, "web") and gone.collected
    # Collected: out of the listing, and the same id says when.
    out["instagram"].unlink()
    assert {p.channel for p in list_outbox(home, processor.conn)} == {"twitter"}
    ig = [r["id"] for r in processor.conn.execute("SELECT id FROM outbox_files WHERE channel = 'instagram'")][0]
    gone = outbox_photo(home, processor.conn, ig)
    assert gone.path is None and gone.collected is not None
    # A photo may be marked posted after it was collected, by the name it had.
    assert mark_posted(home, processor.conn, "paint.jpg", "instagram", "manager").id == ig


def test_copied_under_another_name_is_still_in_the_outbox(home, processor):
    rgb, boxes, out = published(processor, "slide.jpg", seed=26)
    copy = out["twitter"].with_name("slide (copy).jpg")
    shutil.copyfile(out["twitter"], copy)
    out["twitter"].unlink()
    assert sweep(home, processor.conn)  # found by content: not collected
    changes = withdraw(home, processor)
    assert ("twitter", "slide (copy).jpg") in {(c.channel, Path(c.path).name) for c in changes}
    a = boxes["ada"]
    assert diff(region(copy, a), crop(rgb, a)) > 15


def test_outputs_of_an_older_home_are_followed_too(home, processor):
    rgb, boxes, out = published(processor, "older.jpg", seed=27)
    # As an earlier version left it: outputs only, no outbox file rows.
    processor.conn.execute("DELETE FROM outbox_files")
    os.rename(out["facebook"], out["facebook"].with_name("renamed.jpg"))
    changes = withdraw(home, processor)
    assert {c.channel for c in changes} == set(CHANNELS)
    a = boxes["ada"]
    assert diff(region(out["facebook"].with_name("renamed.jpg"), a), crop(rgb, a)) > 15


def test_posted_before_a_remake_marks_the_copy_that_was_posted(home, processor):
    from datetime import datetime, timedelta

    _, _, out = published(processor, "swings.jpg", seed=29)
    posted_at = datetime.now() - timedelta(seconds=1)
    withdraw(home, processor)                     # re-made: Ada obscured in the outbox copy
    result = CliRunner().invoke(main, ["posted", "swings.jpg", "--channel", "twitter",
                                       "--when", posted_at.strftime("%Y-%m-%d %H:%M"), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    # The copy in the outbox at that time showed Ada: it is the one to take down.
    assert [(i.channel, i.how, [c.child_id for c in i.children]) for i in takedown_list(processor.conn)] == \
        [("twitter", "posted", ["ada"])]


def test_without_the_original_the_outbox_file_is_removed_and_recorded(home, processor):
    _, _, out = published(processor, "purged.jpg", seed=30)
    archived = processor.conn.execute("SELECT archive_path FROM photos WHERE source = 'purged.jpg'").fetchone()[0]
    (home.root / archived).unlink()
    changes = withdraw(home, processor)
    assert {(c.channel, c.action) for c in changes} == {(c, "removed") for c in CHANNELS}
    assert not any(p.exists() for p in out.values())
    rows = processor.conn.execute("SELECT ended FROM outbox_files").fetchall()
    assert [r[0] for r in rows] == ["removed"] * 3
    assert list_outbox(home, processor.conn) == [] and takedown_list(processor.conn, home=home) == []


def test_a_consent_that_expires_puts_posted_photos_on_the_list_the_next_day(home, processor):
    from datetime import date

    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,2030-06-30\ngrace,Grace,yes,yes,no,no,\n",
                               encoding="utf-8")
    sync_roster(home, processor.conn)
    processor.reload_roster()
    _, _, out = published(processor, "trip.jpg", seed=31)
    mark_posted(home, processor.conn, "trip.jpg", "instagram", "manager")
    assert takedown_list(processor.conn, today=date(2030, 6, 30)) == []       # the last valid day
    items = takedown_list(processor.conn, today=date(2030, 7, 1))
    assert [(i.channel, i.children[0].child_id, i.children[0].reason) for i in items] == \
        [("instagram", "ada", "consent expired 2030-06-30")]
