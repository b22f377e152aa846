"""Answers teach (issue 18 item 1): a face the manager confirms becomes one of the child's reference photos,
only when her consent allows face matching, the face is good enough and alike the child's references;
a bounded, fresh set per child; withdrawn with the consent. Real photos, the real pipeline and database."""

from __future__ import annotations

import shutil
import stat

from facekit import jpeg_bytes
from photoguard.flow.learning import learn_answer, learned_faces
from photoguard.flow.pipeline import Processor
from photoguard.flow.review import confirm_face, obscure_face, review_detail
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster
from test_pipeline import CSV_HEADER, FirstLookMisses, drop, photo_of_both
from test_review import conn, enrolled, held_home, home, processor, shared_processor  # noqa: F401


def _number(home, conn, name: str, kind: str) -> int:
    return next(f.number for f in review_detail(home, conn, name).faces if f.kind == kind)


def _grace(home, conn) -> int:
    return _number(home, conn, "held", "second look")


def _templates(conn, child: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = ?", (child,)).fetchone()[0]


def _learnt_files(home, child: str) -> list:
    return sorted(p for p in (home.enrol / child).iterdir() if p.name.startswith("confirmed-"))


def test_a_confirmed_face_becomes_a_reference_photo_of_the_child(home, conn, processor):
    before = _templates(conn, "grace")
    said = confirm_face(home, conn, "held", _grace(home, conn), "grace", actor="manager", processor=processor)
    assert "Kept as one of Grace's reference photos" in said
    [path] = _learnt_files(home, "grace")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _templates(conn, "grace") == before + 1
    [learnt] = learned_faces(conn, "grace")
    assert learnt.source == "held.jpg" and learnt.face == _grace(home, conn) and learnt.similarity >= 0.5
    row = conn.execute("SELECT status FROM reference_photos WHERE child_id = 'grace' AND path = ?",
                       (learnt.path,)).fetchone()
    assert row["status"] == "accepted"
    # The next sync finds it done: nothing encoded again, nothing lost.
    result = sync_roster(home, conn)
    assert result.photos_checked == 0 and _templates(conn, "grace") == before + 1
    # Answering again does not learn the same face twice.
    assert "already one of Grace's reference photos" in learn_answer(
        home, conn, processor, learnt.photo_sha256, learnt.face - 1, "grace", actor="manager").words


def test_not_kept_without_consent_to_face_matching(home, conn, processor):
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,no,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    said = confirm_face(home, conn, "held", _grace(home, conn), "grace", actor="manager", processor=processor)
    assert "Not kept as a reference photo of Grace: no consent to face matching." in said
    assert _learnt_files(home, "grace") == [] and learned_faces(conn, "grace") == []


def test_not_kept_when_unlike_the_child_so_a_wrong_answer_cannot_teach(home, conn, processor):
    obscure_face(home, conn, "held", _number(home, conn, "held", "face"), actor="manager")
    before = _templates(conn, "ada")
    said = confirm_face(home, conn, "held", _grace(home, conn), "ada", actor="manager", processor=processor)
    assert "Not kept as a reference photo of Ada: the face is not alike enough" in said
    assert _learnt_files(home, "ada") == [] and _templates(conn, "ada") == before


def test_not_kept_when_the_face_is_too_small_for_a_reference_photo(home, conn, shared_processor):
    (home.root / "photoguard.toml").write_text("[match]\nmin_face_px = 400\n", encoding="utf-8")
    strict = open_home(home.root)
    said = confirm_face(strict, conn, "held", _grace(strict, conn), "grace", actor="manager",
                        processor=Processor(strict, conn, detector=shared_processor))
    assert "Not kept as a reference photo of Grace: the face is only" in said and "needs 400 px" in said
    assert _learnt_files(home, "grace") == []


def test_each_child_keeps_only_the_newest_learnt_faces(home, conn, processor, shared_processor):
    first = confirm_face(home, conn, "held", _grace(home, conn), "grace", actor="manager", processor=processor)
    assert "Kept" in first
    [old] = learned_faces(conn, "grace")
    # A second photo of Grace held to ask; her face there is learnt with a cap of one.
    rgb, _ = photo_of_both(seed=33)
    result = Processor(home, conn, detector=FirstLookMisses()).process(drop(home, "later.jpg", jpeg_bytes(rgb)))
    assert result.status == "review"
    newer = learn_answer(home, conn, processor, result.sha256, _number(home, conn, "later", "second look") - 1,
                         "grace", actor="manager", max_learned=1)
    assert newer.kept and "The oldest face learnt from an answer was let go." in newer.words
    assert [f.source for f in learned_faces(conn, "grace")] == ["later.jpg"]
    assert not (home.enrol / old.path).exists()
    assert conn.execute("SELECT COUNT(*) FROM reference_photos WHERE path = ?", (old.path,)).fetchone()[0] == 0
    assert _templates(conn, "grace") == 3 + 1


def test_withdrawing_consent_erases_learnt_faces_with_the_rest(home, conn, processor):
    confirm_face(home, conn, "held", _grace(home, conn), "grace", actor="manager", processor=processor)
    assert len(_learnt_files(home, "grace")) == 1
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,no,no,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    assert _learnt_files(home, "grace") == []
    assert learned_faces(conn, "grace") == [] and _templates(conn, "grace") == 0
    # Her enrolment photos are the manager's own files: left where she put them.
    assert len(list((home.enrol / "grace").glob("ref*.jpg"))) == 3
    shutil.rmtree(home.enrol / "grace")


def test_a_face_that_cannot_teach_is_said_without_enrolment_advice(tmp_path, shared_processor):
    """On an activity photo there is no 'use a sharper photo' to do: the words say only why the face cannot teach."""
    import cv2
    from facekit import face_patch

    from photoguard.flow.learning import _on_a_photo
    from photoguard.store.reference_photos import check_photo

    blurred = tmp_path / "blurred.jpg"
    blurred.write_bytes(jpeg_bytes(cv2.GaussianBlur(face_patch("astronaut", 140, context=0.6).rgb, (0, 0), 5)))
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg_bytes(face_patch("astronaut", 60, context=0.6).rgb))
    for path, words in ((blurred, "the face is too blurred to learn from"), (small, "the face is too small to learn from")):
        _, problem = check_photo(path, shared_processor, 80)
        assert problem is not None and _on_a_photo(problem) == words


def test_a_yes_taken_back_stops_teaching(home, conn, processor):
    """A mistaken "yes", undone at once, must not stay one of the child's reference photos."""
    from photoguard.flow.review import undo_edit

    before = _templates(conn, "grace")
    said = confirm_face(home, conn, "held", _grace(home, conn), "grace", actor="manager", processor=processor)
    assert "Kept as one of Grace's reference photos" in said and _templates(conn, "grace") == before + 1
    undo_edit(home, conn, "held", actor="manager")
    assert learned_faces(conn, "grace") == [] and _learnt_files(home, "grace") == []
    assert _templates(conn, "grace") == before
