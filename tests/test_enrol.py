"""Enrolment on real photos and a real SQLite file: templates only with consent, erased when it goes."""

import os
import shutil
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from facekit import face_patch, jpeg_bytes, scene
from PIL import Image, ImageEnhance

from photoguard.cli import main
from photoguard.store import db
from photoguard.store.home import open_home
from photoguard.store.roster import load_consents, load_templates, sync_roster

TODAY = date(2026, 5, 10)
HEADER = "id,name,face_matching,facebook,instagram,twitter,expires\n"
AMY = "amy,Amy,yes,yes,no,yes,2030-12-31\n"
BOB = "bob,Bob,yes,yes,yes,yes,\n"


def jpeg(path: Path, rgb: np.ndarray, orientation: int = 1) -> None:
    path.write_bytes(jpeg_bytes(rgb, orientation))


def bright(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb)).enhance(factor))


def make_photos(enrol: Path) -> None:
    amy, bob = enrol / "amy", enrol / "bob"
    amy.mkdir()
    bob.mkdir()
    # amy (astronaut): three good photos (one stored sideways with EXIF orientation 6), four bad ones
    jpeg(amy / "close.jpg", face_patch("astronaut", 150, context=0.6).rgb)
    jpeg(amy / "sideways.jpg", bright(face_patch("astronaut", 110, context=0.8).rgb, 1.2), orientation=6)
    Image.fromarray(face_patch("astronaut", 120, context=0.6).rgb[:, ::-1]).save(amy / "flipped.png")
    jpeg(amy / "wall.jpg", scene(240, 160, [])[0])
    jpeg(amy / "with-friend.jpg", scene(420, 200, [("astronaut", 30, 40, 110), ("hopper", 260, 40, 110)])[0])
    jpeg(amy / "far.jpg", face_patch("astronaut", 45, context=1.5).rgb)
    jpeg(amy / "blurry.jpg", cv2.GaussianBlur(face_patch("astronaut", 140, context=0.6).rgb, (0, 0), 5))
    # bob (hopper): only two good photos, one of them HEIC
    jpeg(bob / "portrait.jpg", face_patch("hopper", 130, context=0.5).rgb)
    import pillow_heif

    pillow_heif.from_pillow(Image.fromarray(bright(face_patch("hopper", 100, context=0.6).rgb, 0.8))).save(
        bob / "phone.heic", quality=85)


def sync(home, conn, detector, **kw):
    return sync_roster(home, conn, today=kw.pop("today", TODAY), detector=detector, **kw)


@pytest.fixture(scope="module")
def detector():
    from photoguard.engine.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, detector):
    """A home enrolled once (amy, bob); each test works on its own copy."""
    root = tmp_path_factory.mktemp("enrolled") / "home"
    home = open_home(root)
    make_photos(home.enrol)
    home.roster_csv.write_text(HEADER + AMY + BOB)
    conn = db.connect(home.database)
    progress = []
    result = sync(home, conn, detector, progress=lambda i, n, rel: progress.append((i, n, rel)))
    conn.close()
    return root, result, progress


@pytest.fixture
def home(enrolled, tmp_path):
    root = tmp_path / "home"
    shutil.copytree(enrolled[0], root)
    h = open_home(root)
    conn = db.connect(h.database)
    yield h, conn
    conn.close()


def encodings(conn, child_id):
    return [bytes(r[0]) for r in conn.execute("SELECT encoding FROM templates WHERE child_id = ?", (child_id,))]


def assert_gone_from_file(database: Path, blobs: list[bytes]) -> None:
    """No 16-byte piece of any template is left anywhere in the database file or its WAL."""
    assert blobs
    data = b"".join(p.read_bytes() for p in (database, database.with_name(database.name + "-wal")) if p.exists())
    for blob in blobs:
        for offset in range(0, 1024, 128):
            assert blob[offset:offset + 16] not in data


def test_first_sync_builds_templates_and_rejects_bad_photos(enrolled, home):
    _, result, progress = enrolled
    h, conn = home
    by_id = {s.child_id: s for s in result.children}
    amy, bob = by_id["amy"], by_id["bob"]
    assert sorted(p.path for p in amy.accepted) == ["amy/close.jpg", "amy/flipped.png", "amy/sideways.jpg"]
    reasons = {p.path: p.reason for p in amy.rejected}
    assert reasons["amy/wall.jpg"].startswith("no face found")
    assert reasons["amy/with-friend.jpg"].startswith("a second face, ")
    assert reasons["amy/far.jpg"].startswith("face only") and "at least 80 px" in reasons["amy/far.jpg"]
    assert reasons["amy/blurry.jpg"].startswith("too blurry")
    assert amy.templates == 3 and amy.warning is None
    assert bob.templates == 2 and "only 2 good reference photos" in bob.warning
    assert result.photos_checked == 9 and result.photos_unchanged == 0
    assert [n for _, n, _ in progress] == [9] * 9
    assert result.reduced == set()

    templates = load_templates(conn)
    assert sorted(t.child_id for t in templates) == ["amy"] * 3 + ["bob"] * 2
    assert all(t.encoding.shape == (128,) and t.encoding.dtype == np.float64 for t in templates)
    # the same child's photos are alike, the two children are not (cosine similarity of SFace embeddings)
    a = [t.encoding for t in templates if t.child_id == "amy"]
    b = [t.encoding for t in templates if t.child_id == "bob"]
    assert min(float(x @ y) for x in a for y in a) > 0.75
    assert max(float(x @ y) for x in a for y in b) < 0.4

    rows = conn.execute("SELECT child_id, field FROM consent_history ORDER BY child_id").fetchall()
    assert [tuple(r) for r in rows] == [("amy", "added"), ("bob", "added")]
    consents = load_consents(conn)
    assert consents["amy"].channels == {"facebook": True, "instagram": False, "twitter": True}
    assert consents["amy"].expires == date(2030, 12, 31)
    assert os.stat(h.database).st_mode & 0o777 == 0o600
    assert os.stat(h.enrol).st_mode & 0o777 == 0o700


def test_unchanged_photos_are_not_reencoded(home, monkeypatch):
    h, conn = home

    def no_detector(*args, **kwargs):
        raise AssertionError("the face detector was loaded with nothing to encode")

    monkeypatch.setattr("photoguard.engine.detect.FaceDetector", no_detector)
    before = conn.execute("SELECT path, checked_at FROM reference_photos ORDER BY path").fetchall()
    result = sync_roster(h, conn, today=TODAY)
    assert result.photos_checked == 0 and result.photos_unchanged == 9
    assert result.changes == [] and result.reduced == set() and result.templates_erased == 0
    assert conn.execute("SELECT path, checked_at FROM reference_photos ORDER BY path").fetchall() == before
    assert len(load_templates(conn)) == 5


@pytest.mark.parametrize("change, today, recorded", [
    ("amy,Amy,no,yes,no,yes,2030-12-31\n", TODAY, ["face_matching"]),
    ("amy,Amy,yes,no,no,no,2030-12-31\n", TODAY, ["channel:facebook", "channel:twitter"]),
    (AMY, date(2031, 1, 1), []),                           # expired; the CSV did not change
    ("", TODAY, ["removed"]),
    ("amy,Amy,yes,yes,no,yes,31/12/2030\n", TODAY, ["expires", "problem"]),
], ids=["face-matching-off", "channels-off", "expired", "removed", "row-problem"])
def test_templates_erased_from_the_file_when_consent_goes(home, detector, change, today, recorded):
    h, conn = home
    amy_blobs = encodings(conn, "amy")
    bob_blobs = encodings(conn, "bob")
    assert len(amy_blobs) == 3
    h.roster_csv.write_text(HEADER + change + BOB)
    result = sync(h, conn, detector, today=today)
    assert result.reduced == {"amy"}
    assert result.templates_erased == 3 and result.photos_checked == 0
    assert encodings(conn, "amy") == []
    assert conn.execute("SELECT COUNT(*) FROM reference_photos WHERE child_id = 'amy'").fetchone()[0] == 0
    assert encodings(conn, "bob") == bob_blobs
    assert_gone_from_file(h.database, amy_blobs)
    assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'templates_erased' AND child_id = 'amy'").fetchone()[0] == 1
    fields = [r["field"] for r in conn.execute("SELECT field FROM consent_history WHERE child_id = 'amy' ORDER BY id")]
    assert fields == ["added", *recorded]
    amy = next((s for s in result.children if s.child_id == "amy"), None)
    if change:
        assert amy.templates == 0 and amy.not_matched and amy.photo_files == 7 and amy.photos == []
    else:
        assert amy is None


def test_history_records_each_field_change(home, detector):
    h, conn = home
    h.roster_csv.write_text(HEADER + "amy,Amy P,no,no,yes,yes,2031-06-30\n" + BOB)
    result = sync(h, conn, detector)
    got = {(c.field, c.old, c.new) for c in result.changes}
    assert got == {("name", "Amy", "Amy P"), ("face_matching", "yes", "no"), ("channel:facebook", "yes", "no"),
                   ("channel:instagram", "no", "yes"), ("expires", "2030-12-31", "2031-06-30")}
    stored = {(r["field"], r["old"], r["new"]) for r in conn.execute(
        "SELECT field, old, new FROM consent_history WHERE child_id = 'amy' AND field != 'added'")}
    assert stored == got
    assert all(r[0] for r in conn.execute("SELECT changed_at FROM consent_history"))


def test_one_channel_withdrawn_keeps_templates_but_counts_as_reduced(home, detector):
    h, conn = home
    h.roster_csv.write_text(HEADER + AMY + "bob,Bob,yes,yes,no,yes,\n")
    result = sync(h, conn, detector)
    assert result.reduced == {"bob"} and result.templates_erased == 0
    assert len(encodings(conn, "bob")) == 2
    # giving consent back is not a reduction
    h.roster_csv.write_text(HEADER + AMY + BOB)
    assert sync(h, conn, detector).reduced == set()


def test_removed_and_replaced_photos(home, detector):
    h, conn = home
    before = encodings(conn, "amy")
    close_sha = conn.execute("SELECT sha256 FROM reference_photos WHERE path = 'amy/close.jpg'").fetchone()[0]
    close_blob = bytes(conn.execute("SELECT encoding FROM templates WHERE photo_sha256 = ?", (close_sha,)).fetchone()[0])
    (h.enrol / "amy" / "close.jpg").unlink()
    flipped_sha = conn.execute("SELECT sha256 FROM reference_photos WHERE path = 'amy/flipped.png'").fetchone()[0]
    flipped_blob = bytes(conn.execute("SELECT encoding FROM templates WHERE photo_sha256 = ?", (flipped_sha,)).fetchone()[0])
    Image.fromarray(face_patch("astronaut", 130, context=0.7).rgb).save(h.enrol / "amy" / "flipped.png")
    result = sync(h, conn, detector)
    assert result.photos_checked == 1 and result.templates_erased == 2
    assert result.reduced == set()
    amy = next(s for s in result.children if s.child_id == "amy")
    assert sorted(p.path for p in amy.accepted) == ["amy/flipped.png", "amy/sideways.jpg"]
    assert "only 2 good reference photos" in amy.warning
    assert len(encodings(conn, "amy")) == 2 and set(encodings(conn, "amy")) != set(before)
    assert_gone_from_file(h.database, [close_blob, flipped_blob])


def test_consent_given_again_rebuilds_templates(home, detector):
    h, conn = home
    h.roster_csv.write_text(HEADER + "amy,Amy,no,yes,no,yes,2030-12-31\n" + BOB)
    sync(h, conn, detector)
    assert encodings(conn, "amy") == []
    h.roster_csv.write_text(HEADER + AMY + BOB)
    result = sync(h, conn, detector)
    assert result.photos_checked == 7 and len(encodings(conn, "amy")) == 3


def test_duplicate_ids_erase_templates_and_the_rest_syncs(home, detector):
    h, conn = home
    h.roster_csv.write_text(HEADER + AMY + BOB + "amy,Amy twin,yes,yes,yes,yes,\n")
    result = sync(h, conn, detector)
    assert result.reduced == {"amy"} and encodings(conn, "amy") == []
    assert len(encodings(conn, "bob")) == 2
    assert [p.line for p in result.problems] == [2]
    assert load_consents(conn)["amy"].problem


def test_folder_without_roster_line_is_reported_and_not_used(home, detector):
    h, conn = home
    (h.enrol / "zed").mkdir()
    jpeg(h.enrol / "zed" / "a.jpg", face_patch("hopper", 120).rgb)
    result = sync(h, conn, detector)
    assert any("no line for 'zed'" in w.message for w in result.warnings)
    assert result.photos_checked == 0
    assert conn.execute("SELECT COUNT(*) FROM reference_photos WHERE child_id = 'zed'").fetchone()[0] == 0


def test_folder_found_whatever_the_case_of_the_id(home, detector):
    h, conn = home
    h.roster_csv.write_text(HEADER + AMY + "Bob,Bob,yes,yes,yes,yes,\n")
    result = sync(h, conn, detector)
    assert result.reduced == {"bob"}          # 'bob' left the roster; 'Bob' is a new line
    bob = next(s for s in result.children if s.child_id == "Bob")
    assert bob.templates == 2 and sorted(p.path for p in bob.accepted) == ["bob/phone.heic", "bob/portrait.jpg"]
    assert not any("no line for" in w.message for w in result.warnings)


def test_rejected_photos_checked_again_when_the_rules_change(home, detector):
    h, conn = home
    (h.root / "photoguard.toml").write_text("[match]\nmin_face_px = 40\n")
    h = open_home(h.root)
    result = sync(h, conn, detector)
    assert result.photos_checked == 4 and result.photos_unchanged == 5
    assert sync(h, conn, detector).photos_checked == 0


def test_bad_csv_changes_nothing(home, detector):
    from photoguard.store.roster_csv import RosterError

    h, conn = home
    h.roster_csv.write_text("")
    with pytest.raises(RosterError, match="is empty"):
        sync(h, conn, detector)
    assert len(load_templates(conn)) == 5


# ---------------------------------------------------------------- CLI


def test_cli_enrol_prints_table_rejections_and_warnings(home):
    h, _ = home
    jpeg(h.enrol / "bob" / "third.jpg", face_patch("hopper", 140, context=0.7).rgb)
    h.roster_csv.write_text(HEADER + AMY + BOB + "../evil,X,yes,yes,yes,yes,\n")
    res = CliRunner().invoke(main, ["enrol", "--home", str(h.root)])
    assert res.exit_code == 1, res.output   # a line needs fixing; the good lines are enrolled all the same
    assert "1 line(s) of the roster need fixing" in res.stderr
    out = res.stdout
    assert "checking reference photo 1/1: bob/third.jpg" in res.stderr
    assert "children.csv:4:" in res.stderr and "only letters, digits" in res.stderr
    lines = out.splitlines()
    assert lines[0].split() == ["child", "name", "matching", "facebook", "instagram", "twitter", "expires",
                                "status", "photos", "templates"]
    assert lines[1].split() == ["amy", "Amy", "yes", "yes", "no", "yes", "2030-12-31", "ok", "3", "ok,", "4", "rejected", "3"]
    assert lines[2].split()[-4:] == ["ok,", "0", "rejected", "3"]
    assert "rejected amy/blurry.jpg: too blurry" in out
    assert "warning" not in out   # bob has three good photos now


def test_cli_enrol_missing_csv_is_an_error(tmp_path):
    open_home(tmp_path / "new")  # a home (as an earlier version made them) without children.csv
    res = CliRunner().invoke(main, ["enrol", "--home", str(tmp_path / "new")])
    assert res.exit_code == 1
    assert "children.csv not found" in res.output and "Nothing was changed" in res.output


def test_cli_children_list_show_and_expiring(home, detector):
    h, conn = home
    runner = CliRunner()
    res = runner.invoke(main, ["children", "--home", str(h.root)])
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines()]
    assert rows[0] == ["child", "name", "matching", "facebook", "instagram", "twitter", "expires", "status", "templates"]
    assert rows[1] == ["amy", "Amy", "yes", "yes", "no", "yes", "2030-12-31", "ok", "3"]
    assert rows[2] == ["bob", "Bob", "yes", "yes", "yes", "yes", "-", "ok", "2"]

    h.roster_csv.write_text(HEADER + "amy,Amy,yes,yes,no,no,2030-12-31\n" + "bob,Bob,yes,yes,yes,yes,2020-01-31\n")
    sync(h, conn, detector)
    res = runner.invoke(main, ["children", "--home", str(h.root), "show", "amy"])
    assert res.exit_code == 0, res.output
    assert "twitter: obscured (no consent for twitter)" in res.output
    assert "facebook: shown (consent for facebook)" in res.output
    assert "Twitter: yes -> no" in res.output and "added to the roster: face matching yes" in res.output
    assert "photo amy/blurry.jpg: rejected: too blurry" in res.output

    res = runner.invoke(main, ["children", "show", "bob", "--home", str(h.root)])
    assert "consent expired 2020-01-31" in res.output and "templates: 0" in res.output

    res = runner.invoke(main, ["children", "--home", str(h.root), "--expiring", "30"])
    assert res.exit_code == 0, res.output
    assert "bob" in res.output and "EXPIRED" in res.output and "amy" not in res.output

    res = runner.invoke(main, ["children", "--home", str(h.root), "show", "nobody"])
    assert res.exit_code == 1 and "no child 'nobody'" in res.output


def test_cli_enrol_rerenders_outbox_when_consent_is_withdrawn(home):
    h, _ = home
    rgb, _ = scene(700, 320, [("astronaut", 60, 60, 150), ("hopper", 400, 60, 150)])
    jpeg(h.inbox / "party.jpg", rgb)
    runner = CliRunner()
    res = runner.invoke(main, ["process", "--home", str(h.root)])
    assert res.exit_code == 0, res.output
    assert (h.outbox_for("facebook") / "party.jpg").exists()
    h.roster_csv.write_text(HEADER + "amy,Amy,yes,no,no,yes,2030-12-31\n" + BOB)
    res = runner.invoke(main, ["enrol", "--home", str(h.root)])
    assert res.exit_code == 0, res.output
    assert "consent reduced for: amy" in res.stdout
    assert "outbox facebook/party.jpg: rerendered" in res.stdout and "no consent for facebook" in res.stdout
    assert "twitter/party.jpg" not in res.stdout


def test_home_enrolled_with_old_dlib_templates_is_encoded_again_at_the_next_sync(enrolled, tmp_path, detector):
    """A home made by the version before SFace: no model column, dlib numbers in the templates. The next
    sync (enrol, process and watch all sync first) encodes the reference photos again, by itself."""
    root = tmp_path / "old"
    shutil.copytree(enrolled[0], root)
    h = open_home(root)
    conn = db.connect(h.database)
    new = {(r["child_id"], r["photo_sha256"]): bytes(r["encoding"])
           for r in conn.execute("SELECT child_id, photo_sha256, encoding FROM templates")}
    old = np.random.default_rng(0).normal(0, 0.1, size=(len(new), 128)).astype("<f8")   # dlib-like numbers
    for (cid, sha), enc in zip(new, old):
        conn.execute("UPDATE templates SET encoding = ? WHERE child_id = ? AND photo_sha256 = ?",
                     (enc.tobytes(), cid, sha))
    conn.execute("ALTER TABLE templates DROP COLUMN model")   # the old schema
    conn.close()

    conn = db.connect(h.database)   # the new version opens it: the column comes back, empty ('' = dlib)
    assert {r[0] for r in conn.execute("SELECT model FROM templates")} == {""}
    assert load_templates(conn) == []   # never compared with today's faces
    result = sync(h, conn, detector)
    assert result.photos_checked == 5 and result.templates_erased == 5
    rows = conn.execute("SELECT child_id, photo_sha256, encoding, model FROM templates").fetchall()
    from photoguard.store.reference_photos import current_model

    assert {r["model"] for r in rows} == {current_model()}
    assert {(r["child_id"], r["photo_sha256"]): bytes(r["encoding"]) for r in rows} == new
    assert len(load_templates(conn)) == 5
    events = conn.execute("SELECT child_id FROM events WHERE kind = 'templates_outdated' ORDER BY child_id").fetchall()
    assert [r[0] for r in events] == ["amy", "bob"]
    assert_gone_from_file(h.database, [enc.tobytes() for enc in old])
    # Nothing more to do on the sync after.
    again = sync(h, conn, detector)
    assert again.photos_checked == 0 and again.templates_erased == 0
    conn.close()


def test_a_link_to_a_photo_elsewhere_is_not_a_reference(home, detector, tmp_path):
    """A symbolic link in enrol/<id>/ (to a file anywhere on the computer, or a linked folder) is refused
    with words that say what to do: only photos put in the child's folder are the child's references."""
    h, conn = home
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    jpeg(outside / "bob-portrait.jpg", face_patch("hopper", 130, context=0.5).rgb)
    (h.enrol / "amy" / "linked.jpg").symlink_to(outside / "bob-portrait.jpg")
    (h.enrol / "bob" / "more").symlink_to(outside, target_is_directory=True)

    result = sync(h, conn, detector)

    amy = {s.child_id: s for s in result.children}["amy"]
    reasons = {p.path: p.reason for p in amy.rejected}
    assert "amy/linked.jpg" in reasons and "link" in reasons["amy/linked.jpg"]
    assert "copy the photo itself" in reasons["amy/linked.jpg"]
    assert amy.templates == 3
    assert sorted(t.child_id for t in load_templates(conn)) == ["amy"] * 3 + ["bob"] * 2
