"""Evaluation on labelled data built from public-domain faces (never ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import facekit
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photoguard.cli import main
from photoguard.engine.boxes import covers, iou
from photoguard.engine.detect import FaceDetector
from photoguard.evaluate.faces import (EvaluationError, encode_folder, evaluate_detection, format_detection,
                                       format_identity, identity_report, read_imglab, score_image)


def test_iou_and_covers():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert covers((0, 0, 100, 100), (40, 40, 50, 50))          # centre inside, IoU tiny
    assert not covers((0, 0, 10, 10), (20, 20, 30, 30))


def test_score_image_counts_by_truth_and_false_boxes():
    r = score_image("x", [(0, 0, 30, 30), (100, 100, 140, 140)], [(2, 2, 31, 31), (300, 300, 310, 310)])
    assert (r.truth, r.found) == (2, 1)
    assert r.missed == [(100, 100, 140, 140)] and r.false_boxes == [(300, 300, 310, 310)]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("det")
    (folder / "photos").mkdir()
    rgb, truth = facekit.scene(900, 600, [("astronaut", 80, 80, 40), ("hopper", 500, 250, 110)], seed=5)
    Image.fromarray(rgb).save(folder / "photos" / "a.jpg", quality=92)
    boxes = "".join(f"<box top='{t}' left='{l}' width='{r - l}' height='{b - t}'/>" for l, t, r, b in truth)
    xml = folder / "faces.xml"
    xml.write_text(f"<?xml version='1.0'?><dataset><images><image file='photos/a.jpg'>{boxes}"
                   f"<box top='1' left='1' width='5' height='5' ignore='1'/></image></images></dataset>")
    Image.fromarray(facekit.background(640, 480, seed=2)).save(folder / "wall.jpg")
    return xml, truth, folder / "wall.jpg"


def test_read_imglab(labelled):
    xml, truth, _ = labelled
    [(path, boxes)] = read_imglab(xml)
    assert path == xml.parent / "photos" / "a.jpg" and boxes == [tuple(t) for t in truth]


def test_read_imglab_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<dataset><images><image file='x.jpg'><box top='a'/></image></images></dataset>")
    with pytest.raises(EvaluationError, match="bad.xml"):
        read_imglab(bad)
    (tmp_path / "broken.xml").write_text("<dataset")
    with pytest.raises(EvaluationError, match="broken.xml"):
        read_imglab(tmp_path / "broken.xml")


def test_evaluate_detection(detector, labelled):
    xml, truth, wall = labelled
    report = evaluate_detection(detector, read_imglab(xml), [wall])
    assert (report.found, report.faces, report.recall) == (2, 2, 1.0)
    assert report.by_size() == {"32-64": (1, 1), "64-128": (1, 1)}
    assert report.extra[0].false_boxes == []
    text = "\n".join(format_detection(report))
    assert "2/2" in text and "wall.jpg: 0 boxes" in text


def test_evaluate_detection_command(labelled):
    xml, _, wall = labelled
    result = CliRunner().invoke(main, ["evaluate", "detection", str(xml), "--extra", str(wall), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recall"] == 1.0 and data["extra"][0]["false_boxes"] == []


def _variant(name: str, i: int) -> np.ndarray:
    return facekit.face_variant(name, i, turn=(4, -4), gain=(0.75, 0.15))


@pytest.fixture(scope="module")
def people(tmp_path_factory, detector):
    folder = tmp_path_factory.mktemp("people")
    for name in ("astronaut", "hopper"):
        (folder / name).mkdir()
        for i in range(3):
            Image.fromarray(_variant(name, i)).save(folder / name / f"{name}{i}.jpg", quality=90)
    return folder, encode_folder(detector, folder)


def test_identity_enrol_one_test_the_rest(people):
    folder, photos = people
    report = identity_report(photos, k=1, threshold=0.60, margin=0.05, min_face_px=80)
    assert report.enrolled == {"astronaut": ["astronaut0.jpg"], "hopper": ["hopper0.jpg"]}
    ident = report.counts(report.identifiable())
    assert ident == {"faces": 4, "correct": 4, "wrong": 0, "unknown": 0}
    assert report.wrong_keeps == 0
    text = "\n".join(format_identity(report))
    assert "4/4" in text and "LEAKS, must be 0): 0" in text


def test_identity_held_out_person_stays_unknown(people):
    _, photos = people
    report = identity_report(photos, k=1, holdout=["hopper"], threshold=0.60, margin=0.05, min_face_px=80)
    hopper = [f for f in report.faces if f.photo.endswith(("hopper0.jpg", "hopper1.jpg", "hopper2.jpg"))
              and f.person == "hopper"]
    assert len(hopper) == 3 and all(f.shown_as is None and not f.enrolled for f in hopper)
    assert report.wrong_keeps == 0


def test_identity_loose_rule_shows_leaks(people):
    # With an absurd threshold a held-out person is shown as the enrolled one: the report must say so.
    _, photos = people
    report = identity_report(photos, k=1, holdout=["hopper"], threshold=-1.0, margin=0.0, min_face_px=80)
    assert report.wrong_keeps > 0
    assert "LEAK:" in "\n".join(format_identity(report))


def test_identity_command(people):
    folder, _ = people
    result = CliRunner().invoke(main, ["evaluate", "identity", str(folder), "--k", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["all"]["wrong"] == 0 and data["enrolled_faces_min_width"]["correct"] == 4
    result = CliRunner().invoke(main, ["evaluate", "identity", str(folder), "--holdout", "nobody"])
    assert result.exit_code != 0 and "nobody" in result.output


# --- simulated rosters -------------------------------------------------------------------------


def _synthetic_children(n: int, seed: int = 0):
    """EncodedPhoto lists of ``n`` made-up children, 5 photos each at ages 2-6, one 120 px face each."""
    from photoguard.engine.detect import FaceBox
    from photoguard.evaluate.faces import EncodedPhoto

    rng = np.random.default_rng(seed)
    out = []
    for c in range(n):
        centre = rng.normal(size=128)
        centre /= np.linalg.norm(centre)
        for age in range(2, 7):
            v = centre + 0.5 * rng.normal(size=128) / np.sqrt(128)
            out.append(EncodedPhoto(f"child{c:03d}", Path(f"child{c:03d}/{c:03d}A{age:02d}.JPG"),
                                    [FaceBox(0, 0, 120, 120, 0.9)], [v / np.linalg.norm(v)]))
    return out


def test_simulated_rosters_enrol_two_thirds_within_the_window_and_count_strangers():
    from photoguard.evaluate.rosters import format_rosters, photo_age, simulate

    assert photo_age(Path("001A05.JPG")) == 5 and photo_age(Path("012A14a.JPG")) == 14
    assert photo_age(Path("obama1.jpg")) is None
    photos = _synthetic_children(15)
    r = simulate(photos, 9, 4, threshold=0.60, margin=0.05, min_face_px=80)
    assert r.enrolled_children == 4 * 6                 # a third of 9 never enrolled
    assert r.stranger_faces == 4 * 3 * 5                # all their photos are strangers' faces
    # window of 2 years: 3 photos in it, 2 enrolled, 1 tested per child
    assert r.enrolled_faces == 4 * 6 * 1
    assert r.wrong == 0 and r.kept == r.enrolled_faces
    text = "\n".join(format_rosters([r], 0.60, 0.05, 80))
    assert "100.0%" in text and "60/60" in text
    # A rule that shows anyone reports the leaks.
    loose = simulate(photos, 9, 2, threshold=-1.0, margin=0.0, min_face_px=80)
    assert loose.wrong > 0 and loose.leaks


def test_identity_command_runs_rosters(people):
    folder, _ = people
    result = CliRunner().invoke(main, ["evaluate", "identity", str(folder), "--roster-sizes", "2", "--runs", "3",
                                       "--json"])
    assert result.exit_code == 0, result.output
    [r] = json.loads(result.stdout)
    assert r["size"] == 2 and r["wrong"] == 0 and r["enrolled_children"] == 3


def test_roster_curve_trades_keep_against_wrong_shows_on_the_same_rosters():
    from photoguard.evaluate.rosters import curve, format_curve, simulate

    photos = _synthetic_children(15)
    rows = curve(photos, [(9, 3)], [0.60, -1.0, 0.99], margin=0.0, min_face_px=80)
    assert [t for t, _ in rows] == [-1.0, 0.60, 0.99]            # lowest similarity first
    (loose,), (rule,), (strict,) = (rs for _, rs in rows)
    assert loose.wrong > 0 and rule.wrong == 0 and strict.wrong == 0
    assert loose.kept >= rule.kept >= strict.kept and strict.kept == 0
    # The same rosters as a plain run at that similarity (same seed per size).
    same = simulate(photos, 9, 3, threshold=0.60, margin=0.0, min_face_px=80, seed=9)
    assert (same.kept, same.wrong, same.enrolled_faces) == (rule.kept, rule.wrong, rule.enrolled_faces)
    text = "\n".join(format_curve(rows))
    assert "roster 9" in text and "0.60" in text and "100.0%" in text
    assert format_curve([]) == []


def test_identity_command_curve_does_not_change_the_verdict(people):
    folder, _ = people
    args = ["evaluate", "identity", str(folder), "--roster-sizes", "2", "--runs", "3"]
    result = CliRunner().invoke(main, args + ["--curve", "-1,0.6", "--json"])
    assert result.exit_code == 0, result.output       # only the rule in force decides the exit status
    rows = json.loads(result.stdout)
    assert [r["similarity"] for r in rows] == [0.60, -1.0, 0.6]
    assert rows[1]["wrong"] > 0 and rows[0]["wrong"] == 0
    text = CliRunner().invoke(main, args + ["--curve", "0.5,0.7"])
    assert text.exit_code == 0 and "keep % / WRONG shows at other similarity thresholds" in text.output
    bad = CliRunner().invoke(main, args + ["--curve", "lots"])
    assert bad.exit_code == 2 and "0.55,0.58,0.62" in bad.output


def test_simulated_rosters_count_the_faces_the_manager_would_be_asked_about():
    from photoguard.evaluate.rosters import format_rosters, simulate

    photos = _synthetic_children(15)
    # Too strict to show anyone: every enrolled child's test face is put to the manager as themselves,
    # and no stranger is (their faces are not alike enough to anyone).
    r = simulate(photos, 9, 4, threshold=0.99, margin=0.05, min_face_px=80, ask_from=0.5)
    assert r.kept == 0 and r.wrong == 0
    assert r.asked_right == r.enrolled_faces and r.asked_other == 0 and r.strangers_asked == 0
    text = "\n".join(format_rosters([r], 0.99, 0.05, 80, ask_from=0.5))
    assert "asked (match.ask_from 0.50)" in text and "100.0%" in text
    # Asking from below every stranger's similarity puts strangers to the manager too; nobody is shown.
    loose = simulate(photos, 9, 4, threshold=0.99, margin=0.0, min_face_px=80, ask_from=-1.0)
    assert loose.strangers_asked == loose.stranger_faces and loose.wrong == 0
    # Asking off (the default): nothing is asked.
    off = simulate(photos, 9, 4, threshold=0.99, margin=0.05, min_face_px=80)
    assert off.asked_right == off.asked_other == off.strangers_asked == 0
    assert "asked" not in "\n".join(format_rosters([off], 0.99, 0.05, 80))
