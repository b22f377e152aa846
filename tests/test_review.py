"""The review library on real photos, a real home and database and the real pipeline: a face found on the
second look, the manager's changes, previews, releases per consent, rejects and undo."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from facekit import jpeg_bytes
from test_pipeline import CSV_HEADER, FirstLookMisses, diff, drop, make_enrolled_home, photo_of_both, region

from photoguard.cli import main
from photoguard.flow.audit import export_audit
from photoguard.flow.pipeline import Processor
from photoguard.flow.review import ReviewError, add_box, confirm_face, obscure_face, os_actor, render_preview, review_detail, review_queue, undo_edit
from photoguard.flow.release import reject, release, undo_last
from photoguard.photos.images import load_image_bytes
from photoguard.photos.jpeg import strip_check
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

CHANNELS = ("facebook", "instagram", "twitter")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory) -> Path:
    return make_enrolled_home(tmp_path_factory.mktemp("review-enrolled"))


@pytest.fixture(scope="module")
def held_home(enrolled, tmp_path_factory) -> Path:
    """A home where the first look missed Grace (right), so the photo 'held' waits for review."""
    root = tmp_path_factory.mktemp("review-held") / "home"
    shutil.copytree(enrolled, root)
    home = open_home(root)
    rgb, _ = photo_of_both(seed=21)
    processor = Processor(home, detector=FirstLookMisses())
    assert processor.process(drop(home, "held.jpg", jpeg_bytes(rgb))).status == "review"
    processor.conn.close()
    return root


@pytest.fixture
def home(held_home, tmp_path):
    root = tmp_path / "home"
    shutil.copytree(held_home, root)
    return open_home(root)


@pytest.fixture
def conn(home):
    c = connect(home.database)
    yield c
    c.close()


@pytest.fixture(scope="module")
def shared_processor(held_home):
    """One set of models for the module's releases (each test gives it its own home's connection)."""
    from photoguard.engine.detect import FaceDetector

    return FaceDetector()


@pytest.fixture
def processor(home, conn, shared_processor):
    return Processor(home, conn, detector=shared_processor)


def original() -> tuple[np.ndarray, dict]:
    return photo_of_both(seed=21)


def pixels(data: bytes) -> np.ndarray:
    return load_image_bytes(data).rgb


def crop(rgb: np.ndarray, box) -> np.ndarray:
    return rgb[box[1]:box[3], box[0]:box[2]]


def test_second_look_face_is_a_face_of_the_photo_obscured_in_review_copy_and_audited(home, conn):
    rgb, boxes = original()
    faces = conn.execute("SELECT * FROM faces ORDER BY idx").fetchall()
    late = [f for f in faces if f["reason"] == "found on the second look"]
    assert len(late) == 1 and late[0]["child_id"] is None
    actions = conn.execute("SELECT channel, action FROM face_actions WHERE face_idx = ?", (late[0]["idx"],)).fetchall()
    assert sorted(tuple(a) for a in actions) == [(c, "obscured") for c in CHANNELS]
    # The review copy has Grace obscured.
    g = boxes["grace"]
    assert diff(region(home.review / "held.jpg", g), crop(rgb, g)) > 15
    # In the audit, with the reason.
    out = io.StringIO()
    export_audit(conn, out)
    rows = [r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["identity"] == "found on the second look"]
    assert {r["channel"] for r in rows} == set(CHANNELS) and {r["action"] for r in rows} == {"obscured"}

    detail = review_detail(home, conn, "held")
    assert detail.item.reason.startswith("a face the first look missed, middle right")
    grace = next(f for f in detail.faces if f.kind == "second look")
    assert grace.reason == "a face the first look missed, middle right" and grace.who == "unknown"
    assert [c.shown for c in grace.channels] == [False, False, False]
    assert grace.channels[0].why == "not recognised: a face the first look missed"
    ada = next(f for f in detail.faces if f.child_id == "ada")
    assert ada.reason == "recognised as Ada, middle left" and all(c.shown for c in ada.channels)
    assert ada.channels[1].why == "consent for instagram"


def test_release_publishes_the_original_rendered_again_not_the_swapped_review_file(home, conn, processor):
    rgb, boxes = original()
    # Someone with access to review/ swaps the copy for the unobscured photo.
    swapped = jpeg_bytes(rgb)
    (home.review / "held.jpg").write_bytes(swapped)
    previews = {c: render_preview(home, conn, "held", c) for c in CHANNELS}
    done = release(home, conn, "held", actor="tester", processor=processor)
    assert set(done.files) == set(CHANNELS)
    g, a = boxes["grace"], boxes["ada"]
    for channel, path in done.files.items():
        data = path.read_bytes()
        assert data != swapped and data == previews[channel]   # what she saw is what is published
        assert strip_check(path) == []
        assert diff(region(path, g), crop(rgb, g)) > 15        # the second-look face is obscured
        assert diff(region(path, a), crop(rgb, a)) < 4         # Ada has consent everywhere
    # Each channel its own file, readable by the manager's group only.
    assert {p.stat().st_mode & 0o777 for p in done.files.values()} == {0o640}
    inodes = {p.stat().st_ino for p in done.files.values()}
    assert len(inodes) == 3 and all(p.stat().st_nlink == 1 for p in done.files.values())
    assert not (home.review / "held.jpg").exists() and review_queue(home, conn) == []
    event = conn.execute("SELECT * FROM events WHERE kind = 'released'").fetchone()
    assert event["actor"] == "tester" and "facebook, instagram, twitter" in event["detail"]
    outcome = conn.execute("SELECT outcome FROM photos").fetchone()[0]
    assert outcome == "released"


def test_confirmed_child_shown_only_where_her_consent_allows_each_channel(home, conn, processor):
    rgb, boxes = original()
    detail = review_detail(home, conn, "held")
    number = next(f.number for f in detail.faces if f.kind == "second look")
    message = confirm_face(home, conn, "held", number, "grace", actor="manager")
    assert "shown on Facebook, obscured elsewhere" in message
    grace = review_detail(home, conn, "held").faces[number - 1]
    assert grace.who == "Grace" and grace.reason == "you confirmed it is Grace, middle right"
    assert {c.channel: c.shown for c in grace.channels} == {"facebook": True, "instagram": False, "twitter": False}
    assert grace.channels[1].why == "no consent for instagram"

    g = boxes["grace"]
    assert diff(crop(pixels(render_preview(home, conn, "held", "facebook")), g), crop(rgb, g)) < 4
    assert diff(crop(pixels(render_preview(home, conn, "held", "instagram")), g), crop(rgb, g)) > 15

    done = release(home, conn, "held", actor="manager", processor=processor)   # every channel, each its own consent
    assert diff(region(done.files["facebook"], g), crop(rgb, g)) < 4
    assert diff(region(done.files["instagram"], g), crop(rgb, g)) > 15
    assert diff(region(done.files["twitter"], g), crop(rgb, g)) > 15
    face = conn.execute("SELECT * FROM faces WHERE idx = ?", (number - 1,)).fetchone()
    assert face["child_id"] == "grace" and face["reason"].startswith("confirmed by the manager")
    actions = dict(conn.execute("SELECT channel, action FROM face_actions WHERE face_idx = ?", (number - 1,)).fetchall())
    assert actions == {"facebook": "shown", "instagram": "obscured", "twitter": "obscured"}
    assert conn.execute("SELECT actor FROM review_edits").fetchone()[0] == "manager"
    # What the first look had decided is kept in the history, not lost with the replaced row.
    replaced = [r["detail"] for r in conn.execute("SELECT detail FROM events WHERE kind = 'decision_replaced'")]
    assert any(f"face {number}, facebook: first decided obscured" in d and "released shown" in d for d in replaced)

    # Grace's consent is withdrawn later: the outbox re-check knows it is her and re-renders Facebook.
    from photoguard.flow.recheck import recheck_outbox

    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,no,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    changes = recheck_outbox(processor)
    assert [(c.channel, c.action) for c in changes] == [("facebook", "rerendered")]
    assert diff(region(done.files["facebook"], g), crop(rgb, g)) > 15


def test_consent_withdrawn_while_waiting_is_obscured_on_release(home, conn, processor):
    rgb, boxes = original()
    # Ada (shown everywhere when the photo was held) loses her Facebook consent while it waits.
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,no,yes,yes,\ngrace,Grace,yes,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    ada = next(f for f in review_detail(home, conn, "held").faces if f.child_id == "ada")
    assert {c.channel: c.shown for c in ada.channels} == {"facebook": False, "instagram": True, "twitter": True}
    assert ada.channels[0].why == "no consent for facebook"
    done = release(home, conn, "held", ["facebook", "instagram"], actor="tester", processor=processor)
    a = boxes["ada"]
    assert diff(region(done.files["facebook"], a), crop(rgb, a)) > 15
    assert diff(region(done.files["instagram"], a), crop(rgb, a)) < 4
    assert not list(home.outbox_for("twitter").iterdir())


def test_obscure_draw_and_undo_edits(home, conn):
    rgb, boxes = original()
    a = boxes["ada"]
    ada = next(f for f in review_detail(home, conn, "held").faces if f.child_id == "ada")
    obscure_face(home, conn, "held", ada.number, actor="manager")
    face = review_detail(home, conn, "held").faces[ada.number - 1]
    assert not any(c.shown for c in face.channels) and face.edit == "you chose to obscure it"
    assert diff(crop(pixels(render_preview(home, conn, "held", "twitter")), a), crop(rgb, a)) > 15
    # The review copy follows the changes (to look at only).
    assert diff(region(home.review / "held.jpg", a), crop(rgb, a)) > 15
    # She cannot show it by confirming another face as Ada while this one is Ada.
    with pytest.raises(ReviewError, match="no face 9"):
        confirm_face(home, conn, "held", 9, "ada", actor="manager")
    with pytest.raises(ReviewError, match="no child 'zoe'"):
        confirm_face(home, conn, "held", 1, "zoe", actor="manager")
    assert "taken back" in undo_edit(home, conn, "held", actor="manager")
    assert all(c.shown for c in review_detail(home, conn, "held").faces[ada.number - 1].channels)

    # A drawn area (a name badge, say) is obscured on every channel and becomes a numbered face.
    badge = (400, 450, 560, 560)
    message = add_box(home, conn, "held", badge, actor="manager")
    assert "bottom centre" in message
    detail = review_detail(home, conn, "held")
    drawn = detail.faces[-1]
    assert drawn.kind == "drawn" and drawn.reason == "an area you marked, bottom centre"
    assert not any(c.shown for c in drawn.channels) and drawn.channels[0].why == "an area you marked"
    assert diff(crop(pixels(render_preview(home, conn, "held", "facebook")), badge), crop(rgb, badge)) > 5
    with pytest.raises(ReviewError, match="always obscured"):
        confirm_face(home, conn, "held", drawn.number, "ada", actor="manager")
    undo_edit(home, conn, "held", actor="manager")
    assert len(review_detail(home, conn, "held").faces) == len(detail.faces) - 1
    with pytest.raises(ReviewError, match="nothing to undo"):
        undo_edit(home, conn, "held", actor="manager")
    kinds = [r[0] for r in conn.execute("SELECT kind FROM review_edits ORDER BY id")]
    assert kinds == ["obscure", "undo", "box", "undo"]   # appended, never rewritten


def test_a_drawn_area_stays_obscured_after_release_and_a_later_recheck(home, conn, processor):
    rgb, _ = original()
    badge = (400, 450, 560, 560)
    add_box(home, conn, "held", badge, actor="manager")
    done = release(home, conn, "held", ["facebook"], actor="manager", processor=processor)
    assert diff(region(done.files["facebook"], badge), crop(rgb, badge)) > 5
    row = conn.execute("SELECT * FROM faces WHERE reason = 'drawn by the manager'").fetchone()
    assert row is not None
    assert conn.execute("SELECT action FROM face_actions WHERE face_idx = ? AND channel = 'facebook'",
                        (row["idx"],)).fetchone()[0] == "obscured"


def test_release_looks_again_and_a_new_face_stops_it(home, conn, processor):
    """A photo held by an older version, which did not record the face its second look found."""
    rgb, boxes = original()
    late = conn.execute("SELECT idx FROM faces WHERE reason = 'found on the second look'").fetchone()["idx"]
    conn.execute("DELETE FROM face_actions WHERE face_idx = ?", (late,))
    conn.execute("DELETE FROM faces WHERE idx = ?", (late,))
    g = boxes["grace"]
    assert diff(crop(pixels(render_preview(home, conn, "held", "facebook")), g), crop(rgb, g)) < 4
    with pytest.raises(ReviewError, match="a face the first look missed, middle right.*now obscured"):
        release(home, conn, "held", actor="tester", processor=processor)
    assert not any(list(home.outbox_for(c).iterdir()) for c in CHANNELS)
    assert conn.execute("SELECT COUNT(*) FROM faces WHERE reason = 'found on the second look'").fetchone()[0] == 1
    assert conn.execute("SELECT actor FROM events WHERE kind = 'second_look'").fetchone()[0] == "tester"
    assert diff(crop(pixels(render_preview(home, conn, "held", "facebook")), g), crop(rgb, g)) > 15
    done = release(home, conn, "held", actor="tester", processor=processor)
    assert diff(region(done.files["twitter"], g), crop(rgb, g)) > 15


def test_undo_last_release_while_uncollected_then_reject_and_undo(home, conn, processor):
    done = release(home, conn, "held", ["facebook", "twitter"], actor="manager", processor=processor)
    undone = undo_last(home, conn, actor="manager")
    assert undone.kind == "released" and set(undone.removed) == set(done.files.values())
    assert not any(p.exists() for p in done.files.values())
    assert [i.name for i in review_queue(home, conn)] == ["held"] and (home.review / "held.jpg").exists()
    assert conn.execute("SELECT COUNT(*) FROM outputs WHERE removed_at IS NULL").fetchone()[0] == 0

    reject(home, conn, "held", actor="manager")
    assert review_queue(home, conn) == [] and not (home.review / "held.jpg").exists()
    assert undo_last(home, conn, actor="manager").kind == "rejected"
    assert [i.name for i in review_queue(home, conn)] == ["held"]

    # Renamed within the outbox is still uncollected: undo finds it under its new name.
    done = release(home, conn, "held", ["instagram"], actor="manager", processor=processor)
    renamed = done.files["instagram"].with_name("for-monday.jpg")
    done.files["instagram"].rename(renamed)
    assert undo_last(home, conn, actor="manager").removed == (renamed,) and not renamed.exists()

    # Collected (taken out of the outbox), or marked posted: no undo; the photo stays released.
    from photoguard.flow.outbox import mark_posted

    done = release(home, conn, "held", ["instagram", "twitter"], actor="manager", processor=processor)
    mark_posted(home, conn, done.files["twitter"].name, "twitter", "manager")
    with pytest.raises(ReviewError, match="twitter copy was already marked posted"):
        undo_last(home, conn, actor="manager")
    done.files["instagram"].unlink()
    with pytest.raises(ReviewError, match="instagram copy was already collected"):
        undo_last(home, conn, actor="manager")
    assert review_queue(home, conn) == [] and done.files["twitter"].exists()
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE actor = 'manager' ORDER BY id")]
    assert kinds == ["released", "released_undone", "rejected", "rejected_undone", "released", "released_undone",
                     "released"]
    made = conn.execute("SELECT made, shown FROM outbox_files WHERE channel = 'twitter' ORDER BY id DESC").fetchone()
    assert made["made"] == "released by manager"


def test_cli_show_confirm_release_undo(home, conn):
    runner = CliRunner()
    args = ["--home", str(home.root)]
    out = runner.invoke(main, ["review", "list", *args])
    assert out.exit_code == 0 and out.output.startswith("held\theld.jpg")
    out = runner.invoke(main, ["review", "show", "held", *args])
    assert out.exit_code == 0, out.output
    assert "a face the first look missed, middle right" in out.output and "[" not in out.output
    assert "recognised as Ada, middle left" in out.output and "instagram: obscured (not recognised" in out.output
    number = next(f.number for f in review_detail(home, conn, "held").faces if f.kind == "second look")
    out = runner.invoke(main, ["review", "confirm", "held", str(number), "grace", *args])
    assert out.exit_code == 0 and "shown on Facebook" in out.output
    out = runner.invoke(main, ["review", "obscure", "held", "7", *args])
    assert out.exit_code != 0 and "no face 7" in out.output and "Traceback" not in out.output
    preview = home.root / "preview.jpg"
    out = runner.invoke(main, ["review", "preview", "held", "--channel", "twitter", "-o", str(preview), *args])
    assert out.exit_code == 0 and strip_check(preview) == []
    out = runner.invoke(main, ["review", "release", "held", "--channel", "twitter", *args])
    assert out.exit_code == 0, out.output
    published = home.outbox_for("twitter") / "held.jpg"
    assert published.read_bytes() == preview.read_bytes()
    assert conn.execute("SELECT actor FROM events WHERE kind = 'released'").fetchone()[0] == os_actor()
    out = runner.invoke(main, ["review", "undo", *args])
    assert out.exit_code == 0 and "back in review" in out.output and not published.exists()
    out = runner.invoke(main, ["review", "release", "held", "--channel", "myspace", *args])
    assert out.exit_code != 0 and "unknown channel" in out.output


def test_a_confirmation_taken_back_after_an_undone_release_leaves_the_face_obscured(home, conn, processor):
    rgb, boxes = original()
    number = next(f.number for f in review_detail(home, conn, "held").faces if f.kind == "second look")
    confirm_face(home, conn, "held", number, "grace", actor="manager")
    release(home, conn, "held", ["facebook"], actor="manager", processor=processor)
    undo_last(home, conn, actor="manager")
    assert review_detail(home, conn, "held").faces[number - 1].channels[0].shown   # still confirmed
    undo_edit(home, conn, "held", actor="manager")
    face = review_detail(home, conn, "held").faces[number - 1]
    assert face.child_id is None and not any(c.shown for c in face.channels)
    assert face.reason == "you took back who it is, middle right"
    g = boxes["grace"]
    assert diff(crop(pixels(render_preview(home, conn, "held", "facebook")), g), crop(rgb, g)) > 15


def test_a_release_killed_before_it_was_recorded_is_not_published_twice(home, conn, processor):
    # What a release killed after placing its file and before recording it leaves behind.
    (home.outbox_for("facebook") / "held.jpg").write_bytes(render_preview(home, conn, "held", "facebook"))
    done = release(home, conn, "held", ["facebook"], actor="manager", processor=processor)
    assert done.files["facebook"] == home.outbox_for("facebook") / "held.jpg"
    assert [p.name for p in home.outbox_for("facebook").iterdir()] == ["held.jpg"]
    assert conn.execute("SELECT COUNT(*) FROM outbox_files WHERE channel = 'facebook'").fetchone()[0] == 1


def test_second_look_face_stays_obscured_when_a_consent_change_remakes_the_released_file(home, conn, processor):
    from photoguard.flow.recheck import recheck_outbox

    rgb, boxes = original()
    done = release(home, conn, "held", ["facebook"], actor="manager", processor=processor)
    a, g = boxes["ada"], boxes["grace"]
    assert diff(region(done.files["facebook"], a), crop(rgb, a)) < 4
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,no,yes,yes,\ngrace,Grace,yes,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    changes = recheck_outbox(processor)
    assert [(c.channel, c.action) for c in changes] == [("facebook", "rerendered")]
    remade = home.outbox_for("facebook") / "held.jpg"
    assert diff(region(remade, a), crop(rgb, a)) > 15     # Ada's consent went
    assert diff(region(remade, g), crop(rgb, g)) > 15     # the face found on the second look is still obscured


def test_purge_keeps_the_original_of_a_photo_waiting_for_review(home, conn, processor):
    from datetime import date, timedelta

    from photoguard.flow.audit import purge_archive

    assert purge_archive(home, conn, retention_days=0, today=date.today() + timedelta(days=400)) == []
    assert review_detail(home, conn, "held").problem is None
    release(home, conn, "held", ["facebook"], actor="manager", processor=processor)
    purged = purge_archive(home, conn, retention_days=0, today=date.today() + timedelta(days=400))
    assert [p.source for p in purged] == ["held.jpg"]


def test_a_release_that_loses_a_race_publishes_nothing(home, conn, shared_processor):
    """Two windows (or a double click): another release commits while this one is placing its files."""
    import threading
    import time

    outcome: dict[str, object] = {}
    ready, go = threading.Event(), threading.Event()

    def second_window() -> None:
        own = connect(home.database)
        processor = Processor(home, own, detector=shared_processor)
        ready.set()
        go.wait(60)
        try:
            release(home, own, "held", ["facebook", "twitter"], actor="manager", processor=processor)
        except ReviewError as exc:
            outcome["error"] = str(exc)
        finally:
            own.close()

    thread = threading.Thread(target=second_window)
    thread.start()
    assert ready.wait(60)
    conn.execute("BEGIN IMMEDIATE")   # the first release, about to record
    conn.execute("UPDATE photos SET outcome = 'released'")
    go.set()
    deadline = time.monotonic() + 120
    while len(list(home.outbox_for("twitter").iterdir())) == 0 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.execute("COMMIT")
    thread.join(120)
    assert "released by someone else just now" in str(outcome.get("error"))
    assert list(home.outbox_for("facebook").iterdir()) == [] and list(home.outbox_for("twitter").iterdir()) == []


def test_a_release_that_fails_half_way_leaves_nothing_in_the_outbox(home, conn, processor):
    """The second channel cannot be written (here its outbox folder is a file): the first channel's copy,
    already placed, goes again; the photo is still waiting for review and can be released once mended."""
    twitter = home.outbox_for("twitter")
    shutil.rmtree(twitter)
    twitter.write_bytes(b"not a folder")
    with pytest.raises(OSError):
        release(home, conn, "held", ["facebook", "twitter"], actor="manager", processor=processor)
    assert list(home.outbox_for("facebook").rglob("*.jpg")) == []
    assert conn.execute("SELECT COUNT(*) FROM outbox_files").fetchone()[0] == 0
    assert [i.name for i in review_queue(home, conn)] == ["held"]
    twitter.unlink()
    twitter.mkdir()
    done = release(home, conn, "held", ["facebook", "twitter"], actor="manager", processor=processor)
    assert all(p.exists() for p in done.files.values())
