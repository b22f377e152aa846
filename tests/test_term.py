"""The simulated nursery term (photoguard evaluate term) on public-domain faces (never ../shared)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import facekit
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photoguard.cli import main
from photoguard.engine.detect import FaceDetector
from photoguard.evaluate.faces import encode_folder
from photoguard.evaluate.rosters import photo_age
from photoguard.evaluate.term import MatchRule, References, TermError, TermSetup, simulate_term
from photoguard.evaluate.term_report import format_term, term_to_dict

AGES = range(6)
PRODUCT = MatchRule(similarity=0.60, margin=0.05, ask_from=0.50, min_face_px=80)
# Never sure enough to show anyone: every enrolled child's face becomes a question.
ASK_ALL = MatchRule(similarity=1.01, margin=0.05, ask_from=0.50, min_face_px=80)


def _variant(name: str, i: int) -> np.ndarray:
    return facekit.face_variant(name, i, turn=(3, -6), gain=(0.8, 0.08))


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """child001 (the astronaut) and child002 (Grace Hopper), one photo a year at ages 0-5."""
    folder = tmp_path_factory.mktemp("children")
    for n, name in ((1, "astronaut"), (2, "hopper")):
        sub = folder / f"child{n:03d}"
        sub.mkdir()
        for age in AGES:
            Image.fromarray(_variant(name, age)).save(sub / f"{n:03d}A{age:02d}.JPG", quality=90)
    return folder, encode_folder(FaceDetector(0.3), folder)


def _age(path: str) -> int:
    return photo_age(Path(path))


def test_rosters_batches_and_counts_add_up(children):
    _, photos = children
    setup = TermSetup(roster=2, batches=3, max_age=5, runs=6, seed=3)
    result = simulate_term(photos, setup, PRODUCT)
    assert (result.children, result.enrolable) == (2, 2)
    assert {run.enrolled[0] for run in result.runs} == {"child001", "child002"}   # both get drawn
    for run in result.runs:
        [child], [stranger] = run.enrolled, run.strangers
        assert child != stranger
        arrivals = [p for batch in run.arrivals for p in batch]
        # The two youngest are the enrolment photos; every other photo arrives once, in age order.
        assert run.references[child] == [p for p in sorted(arrivals + run.references[child], key=_age)
                                         if Path(p).parent.name == child][:2]
        assert sorted(arrivals) == sorted(str(p.path) for p in photos if str(p.path) not in run.references[child])
        assert [_age(p) for p in arrivals] == sorted(_age(p) for p in arrivals)
        assert [len(b) for b in run.arrivals] == [4, 3, 3]
        # Strangers are never enrolled and never taught.
        assert stranger not in run.references
        assert all(Path(p).parent.name == child for p in run.references[child])
        assert all(learned.child == child for learned in run.learned)
        assert [b.photos for b in run.batches] == [len(b) for b in run.arrivals]
        assert sum(b.enrolled_faces for b in run.batches) == 4
        assert sum(b.stranger_photos for b in run.batches) == 6
    total = result.total()
    assert total.photos == 6 * 10 and total.enrolled_faces == 6 * 4 and total.stranger_photos == 6 * 6
    assert total.shown + total.asked_right + total.asked_wrong <= total.enrolled_faces
    assert total.wrong == 0 and result.worst_wrong() == 0
    # The product rule shows these faces by itself, and its own matches never teach.
    assert total.shown == total.enrolled_faces and total.questions == 0 and total.learned == 0


def test_learning_comes_only_from_answers_and_counts_from_the_next_batch(children):
    _, photos = children
    setup = TermSetup(roster=2, batches=3, max_age=5, runs=4, seed=1)
    on = simulate_term(photos, setup, ASK_ALL)
    off = simulate_term(photos, TermSetup(roster=2, batches=3, max_age=5, runs=4, seed=1, learning=False), ASK_ALL)
    t = on.total()
    assert t.shown == 0 and t.asked_right == t.enrolled_faces and t.other_faces_asked == 0
    assert t.stranger_photos_asked == 0                       # not alike enough to anyone to ask
    assert t.learned == t.asked_right and off.total().learned == 0
    for run, same in zip(on.runs, off.runs):
        assert run.arrivals == same.arrivals                  # learning on and off meet the same terms
        # Nothing learned acts in the batch it came from.
        assert replace(run.batches[0], learned=0) == same.batches[0]
        asked = {p for b in run.arrivals for p in b if Path(p).parent.name in run.enrolled}
        assert {learned.photo for learned in run.learned} == asked
        for learned in run.learned:
            assert learned.photo in run.arrivals[learned.batch]
        assert len(same.references[same.enrolled[0]]) == 2    # off: the enrolment photos only


def test_a_child_keeps_the_enrolment_photos_and_the_newest_learned_faces(children):
    _, photos = children
    result = simulate_term(photos, TermSetup(roster=2, batches=4, max_age=5, runs=3, learned_cap=2), ASK_ALL)
    for run in result.runs:
        [child] = run.enrolled
        learned = [learned.photo for learned in run.learned]
        assert len(learned) == 4
        assert run.references[child][2:] == learned[-2:]
        assert len(run.references[child]) == 2 + 2


def test_references_score_by_the_mean_and_drop_the_oldest_learned_face():
    e = np.eye(4)
    refs = References([("a", e[0]), ("b", e[1])], cap=2)
    assert refs.score(e[0]) == pytest.approx(0.5)
    for name, row in (("c", 2), ("d", 3), ("e", 0)):
        refs.learn(name, e[row])
    assert [name for name, _ in refs.kept()] == ["a", "b", "d", "e"]
    assert refs.score(e[0]) == pytest.approx(0.5)          # (1 + 0 + 0 + 1) / 4
    none = References([("a", e[0])], cap=0)
    none.learn("b", e[1])
    assert [name for name, _ in none.kept()] == ["a"]


def test_matching_compares_the_references_of_the_last_year_as_the_product_does():
    e = np.eye(5)
    # Names as FG-NET's: child 001 as a baby (three photos), then at 2 years old.
    refs = References([("001/001A00.JPG", e[0]), ("001/001A00b.JPG", e[1])], cap=4)
    refs.learn("001/001A00c.JPG", e[2])
    assert [name for name, _ in refs.kept()] == ["001/001A00.JPG", "001/001A00b.JPG", "001/001A00c.JPG"]
    refs.learn("001/001A02.JPG", e[3])
    # At 2 her baby photos are more than a year older than her newest: only her two newest are compared.
    assert [name for name, _ in refs.kept()] == ["001/001A00c.JPG", "001/001A02.JPG"]
    assert len(refs.on_file()) == 4
    assert refs.score(e[3]) == pytest.approx(0.5)


def test_a_folder_without_enough_photos_in_the_range_says_so(children):
    _, photos = children
    with pytest.raises(TermError, match="no child has 3 photos"):
        simulate_term(photos, TermSetup(roster=2, max_age=1, runs=1), PRODUCT)
    with pytest.raises(TermError):
        TermSetup(min_age=7, max_age=6)


def test_the_report_shows_every_batch_and_the_whole_term(children):
    _, photos = children
    result = simulate_term(photos, TermSetup(roster=2, max_age=5, runs=2), ASK_ALL)
    text = "\n".join(format_term(result))
    assert "| batch |" in text and "| all |" in text and "learning on" in text
    assert "| 1 | 4.0 | " in text and "LEAKS, must be 0): 0" in text
    data = term_to_dict(result)
    assert len(data["batches"]) == 3 and data["total"]["asked_right_pct"] == 100.0
    assert data["total"]["worst_run_wrong"] == 0


def test_term_command(children):
    folder, _ = children
    args = ["evaluate", "term", str(folder), "--max-age", "5", "--roster", "2", "--runs", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| batch | photos /run |" in result.stdout and "| all |" in result.stdout
    assert "001A03.JPG" in result.stderr                    # progress while encoding
    data = json.loads(CliRunner().invoke(main, args + ["--no-learning", "--json"]).stdout)
    assert data["setup"]["learning"] is False and data["total"]["wrong"] == 0
    assert data["setup"]["roster"] == 2 and len(data["runs"]) == 3
    bad = CliRunner().invoke(main, args + ["--min-age", "9"])
    assert bad.exit_code == 1 and "not a range" in bad.output
