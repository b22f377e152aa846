"""Faces PhotoGuard is not sure enough to show are put to the manager ("is this Ada?") instead of being
obscured without a word: real photos, the real pipeline, a real home and database, the review commands."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from facekit import jpeg_bytes
from test_pipeline import CSV_HEADER, diff, drop, make_enrolled_home, photo_of_both, region, write_reference_photos
from webhome import BASE, ORIGIN, PIN

from photoguard.cli import main
from photoguard.flow.pipeline import Processor
from photoguard.flow.reprocess import interrupted, reprocess, select_photos
from photoguard.flow.review import confirm_face, review_detail
from photoguard.flow.release import release
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

# Ada (astronaut) and Grace (Hopper) are enrolled; their faces in the test photo match their references
# well, so a strict similarity makes both "not sure enough" while still alike enough to ask about.
STRICT = "[match]\nsimilarity = 0.99\nask_from = {ask_from}\n"


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory) -> Path:
    return make_enrolled_home(tmp_path_factory.mktemp("ask-enrolled"))


def process_strictly(enrolled: Path, target: Path, name: str, seed: int, ask_from: float):
    """A copy of the enrolled home with the strict rule; Ada and Grace's photo ``name`` processed there.
    Returns (home, processor, result, photo, face boxes)."""
    shutil.copytree(enrolled, target)
    (target / "photoguard.toml").write_text(STRICT.format(ask_from=ask_from), encoding="utf-8")
    home = open_home(target)
    rgb, boxes = photo_of_both(seed=seed)
    processor = Processor(home)
    result = processor.process(drop(home, name, jpeg_bytes(rgb, quality=95)))
    return home, processor, result, rgb, boxes


def face_numbers(conn: sqlite3.Connection, sha: str, boxes: dict) -> dict[str, int]:
    """Which face number (1, 2, ...) is Ada's and which Grace's, by where the boxes are."""
    out = {}
    for row in conn.execute("SELECT idx, box FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,)):
        left, top, right, bottom = json.loads(row["box"])
        cx, cy = (left + right) / 2, (top + bottom) / 2
        for child, (l2, t2, r2, b2) in boxes.items():
            if l2 <= cx <= r2 and t2 <= cy <= b2:
                out[child] = row["idx"] + 1
    return out


def test_unsure_faces_hold_the_photo_with_a_question_and_stay_obscured(enrolled, tmp_path):
    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "sandpit.jpg", 31, ask_from=0.3)

    assert result.status == "review"
    assert result.reason.count("not sure who face") == 2
    from photoguard.flow.watch_support import describe

    for logged in (result.reason, describe(result)):                 # no child's name in what is logged
        assert "ada" not in logged.lower() and "grace" not in logged.lower()
    assert not any(any(home.outbox_for(c).iterdir()) for c in home.settings.channels)   # nothing published
    copy = home.review / "sandpit.jpg"
    for child in ("ada", "grace"):    # asking never shows: both obscured in the copy waiting for review
        assert diff(region(copy, boxes[child]), rgb[boxes[child][1]:boxes[child][3], boxes[child][0]:boxes[child][2]]) > 10

    detail = review_detail(home, processor.conn, "sandpit")
    numbers = face_numbers(processor.conn, result.sha256, boxes)
    by_number = {f.number: f for f in detail.faces}
    assert by_number[numbers["ada"]].asked_about == "ada"
    assert by_number[numbers["grace"]].asked_about == "grace"
    assert "looks like Ada, but not alike enough to be sure" in by_number[numbers["ada"]].reason
    assert by_number[numbers["ada"]].question == "is this Ada?"
    assert all(not o.shown for f in detail.faces for o in f.channels)
    processor.conn.close()


def test_the_manager_says_who_they_are_and_the_release_shows_each_where_consent_allows(enrolled, tmp_path):
    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "paint.jpg", 32, ask_from=0.3)
    assert result.status == "review"
    numbers = face_numbers(processor.conn, result.sha256, boxes)

    shown = CliRunner().invoke(main, ["review", "show", "paint", "--home", str(home.root)])
    assert shown.exit_code == 0, shown.output
    assert f"PhotoGuard asks: is this Ada? To answer: photoguard review confirm paint {numbers['ada']} ada" in shown.output
    assert f"photoguard review confirm paint {numbers['grace']} grace" in shown.output

    said = [confirm_face(home, processor.conn, "paint", numbers[child], child, actor="test") for child in ("ada", "grace")]
    assert "is Ada; shown on Facebook, Instagram, Twitter." in said[0]             # shown everywhere
    assert "is Grace; shown on Facebook, obscured elsewhere." in said[1]
    changes = review_detail(home, processor.conn, "paint").edits
    assert changes[0] == f"face {numbers['ada']}: it is Ada (test, today {changes[0][-6:-1]})", changes
    release(home, processor.conn, "paint", processor=processor)

    def face(channel: str, child: str) -> np.ndarray:
        return region(home.outbox_for(channel) / "paint.jpg", boxes[child])

    original = {c: rgb[b[1]:b[3], b[0]:b[2]] for c, b in boxes.items()}
    assert diff(face("facebook", "ada"), original["ada"]) < 6          # Ada: every channel
    assert diff(face("instagram", "ada"), original["ada"]) < 6
    assert diff(face("facebook", "grace"), original["grace"]) < 6      # Grace: Facebook only
    assert diff(face("instagram", "grace"), original["grace"]) > 10
    assert diff(face("twitter", "grace"), original["grace"]) > 10
    # The history keeps that PhotoGuard had asked, and what the manager answered.
    reasons = [r["reason"] for r in processor.conn.execute("SELECT reason FROM faces ORDER BY idx")]
    assert any("confirmed by the manager" in r and "PhotoGuard asked whether it was ada" in r for r in reasons)
    processor.conn.close()


def test_with_asking_off_an_unsure_face_is_obscured_and_the_photo_goes_out(enrolled, tmp_path):
    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "blocks.jpg", 33, ask_from=1.0)
    assert result.status == "cleared", result.reason
    for channel in home.settings.channels:
        for child, (left, top, right, bottom) in boxes.items():
            assert diff(region(home.outbox_for(channel) / "blocks.jpg", boxes[child]), rgb[top:bottom, left:right]) > 10
    assert processor.conn.execute("SELECT COUNT(*) FROM faces WHERE asked_about IS NOT NULL").fetchone()[0] == 0
    processor.conn.close()


def test_a_database_from_before_asking_gets_the_column_at_the_next_connect(tmp_path):
    path = tmp_path / "photoguard.db"
    conn = connect(path)
    conn.execute("ALTER TABLE faces DROP COLUMN asked_about")
    conn.close()
    conn = connect(path)
    assert "asked_about" in {row["name"] for row in conn.execute("PRAGMA table_info(faces)")}
    conn.close()


def test_a_face_as_alike_to_two_children_asks_which_with_neither_chosen(tmp_path):
    # Twins: Eve enrolled from the same face as Ada. Ada's face is too close to call between them.
    home = open_home(make_enrolled_home(tmp_path / "home"))
    write_reference_photos(home.enrol, "eve", "astronaut")
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
                               "eve,Eve,yes,yes,yes,yes,\n", encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    conn.close()
    rgb, boxes = photo_of_both(seed=41)
    processor = Processor(home)
    result = processor.process(drop(home, "twins.jpg", jpeg_bytes(rgb, quality=95)))
    assert result.status == "review"
    number = face_numbers(processor.conn, result.sha256, boxes)["ada"]
    face = {f.number: f for f in review_detail(home, processor.conn, "twins").faces}[number]
    assert face.question == "is this Ada or Eve?" and face.asked_about is None
    assert "looks as much like Ada as like Eve" in face.reason
    assert all(not o.shown and o.why == "until you say who it is" for o in face.channels)
    processor.conn.close()


def test_the_engine_reason_for_two_alike_children_names_them():
    from photoguard.engine.identify import _pair_reason, pair_in
    from photoguard.flow.review_words import _reason_words
    from photoguard.rules.consent import ChildConsent

    consents = {c: ChildConsent(c, c.capitalize(), True, {"facebook": True}) for c in ("ada", "eve")}
    assert pair_in(_pair_reason("eve", "ada")) == ("ada", "eve")
    assert pair_in("no enrolled child close enough") is None
    assert _reason_words(_pair_reason("eve", "ada"), consents) == "as alike to Ada as to Eve"
    assert _reason_words("no enrolled child close enough", consents) == "not close enough to any enrolled child"


def test_no_question_about_a_child_taken_off_the_roster_and_no_one_chosen_in_her_place(enrolled, tmp_path):
    from starlette.testclient import TestClient

    from photoguard.web.app import create_app

    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "sandpit.jpg", 34, ask_from=0.3)
    numbers = face_numbers(processor.conn, result.sha256, boxes)
    processor.conn.close()
    # Ada's parents ask for her to be erased while the photo waits: her line leaves the roster.
    csv = home.roster_csv.read_text(encoding="utf-8")
    home.roster_csv.write_text("".join(line for line in csv.splitlines(True) if not line.startswith("ada,")),
                               encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    face = {f.number: f for f in review_detail(home, conn, "sandpit").faces}[numbers["ada"]]
    conn.close()
    assert face.question is None and face.asked_about is None and "Ada" not in face.reason

    client = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
    assert client.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    page = client.get(f"/review/{result.sha256}").text
    card = page[page.index(f'id="face-{numbers["ada"]}"'):]
    select = card[card.index("<select"):card.index("</select>")]
    # Nothing a browser would send for her unless the manager picks a child: the placeholder is chosen.
    assert '<option value="" selected disabled>choose a child</option>' in select
    assert "is this" not in card[:card.index("</h3>")]


def test_reprocess_with_asking_on_puts_the_question_for_a_photo_already_cleared(enrolled, tmp_path):
    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "blocks.jpg", 35, ask_from=1.0)
    assert result.status == "cleared"
    processor.conn.close()
    (home.root / "photoguard.toml").write_text(STRICT.format(ask_from=0.3), encoding="utf-8")
    home = open_home(home.root)
    processor = Processor(home)
    redo = reprocess(processor, select_photos(processor.conn, ["blocks.jpg"]))
    assert [r.outcome for r in redo] == ["review"]
    assert "not sure who face" in redo[0].detail and "ada" not in redo[0].detail.lower()
    for channel in home.settings.channels:                      # its uncollected copies are taken back
        assert list(home.outbox_for(channel).rglob("*.jpg")) == []
    assert sorted(p.name for p in home.review.iterdir()) == ["blocks.jpg", "blocks.json"]
    for child, (left, top, right, bottom) in boxes.items():
        assert diff(region(home.review / "blocks.jpg", boxes[child]), rgb[top:bottom, left:right]) > 10
    row = processor.conn.execute("SELECT outcome, state, archive_path FROM photos").fetchone()
    assert (row["outcome"], row["state"]) == ("review", "done") and (home.root / row["archive_path"]).is_file()
    assert interrupted(processor.conn) == []
    assert [r.outcome for r in reprocess(processor, select_photos(processor.conn, ["blocks.jpg"]))] == ["skipped"]
    processor.conn.close()


def test_after_an_undone_release_a_taken_back_answer_is_not_asked_again(enrolled, tmp_path):
    from photoguard.flow.review import undo_edit
    from photoguard.flow.release import undo_last

    home, processor, result, rgb, boxes = process_strictly(enrolled, tmp_path / "home", "slide.jpg", 36, ask_from=0.3)
    number = face_numbers(processor.conn, result.sha256, boxes)["ada"]
    confirm_face(home, processor.conn, "slide", number, "ada", actor="test")
    release(home, processor.conn, "slide", ["facebook"], actor="test", processor=processor)
    undo_last(home, processor.conn, actor="test")
    undo_edit(home, processor.conn, "slide", actor="test")
    # The manager took back who it is: the face says so, stays obscured, and is not asked about again.
    face = {f.number: f for f in review_detail(home, processor.conn, "slide").faces}[number]
    assert face.question is None and face.asked_about is None
    assert face.reason.startswith("you took back who it is") and not any(o.shown for o in face.channels)
    processor.conn.close()
