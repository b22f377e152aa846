"""Calibration on synthetic embeddings, templates read from a real database, and the command."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from click.testing import CliRunner

from photoguard.cli import main
from photoguard.engine.identify import Template, match_faces
from photoguard.evaluate.calibrate import FLOOR, Tail, calibrate, cross_scores
from photoguard.store import db
from photoguard.store.config import load_settings
from photoguard.store.roster import load_templates
from photoguard.store.reference_photos import current_model


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Population:
    """Synthetic children: a shared "child look", a per-child identity, per-photo variation."""

    def __init__(self, seed: int, shared: float = 0.35, identity: float = 0.85, photo: float = 0.55) -> None:
        self.rng = np.random.default_rng(seed)
        self.common = _unit(self.rng.normal(size=128))
        self.shared, self.identity, self.photo = shared, identity, photo

    def child(self) -> np.ndarray:
        return _unit(self.rng.normal(size=128))

    def photos_of_new_children(self, n: int) -> np.ndarray:
        return self.photos(_unit(self.rng.normal(size=(n, 128))), n)

    def photos(self, child: np.ndarray, n: int) -> np.ndarray:
        noise = _unit(self.rng.normal(size=(n, 128)))
        return _unit(self.shared * self.common + self.identity * child + self.photo * noise)


def _roster(pop: Population, children: int, refs: int = 3) -> tuple[list[Template], dict[str, np.ndarray]]:
    ids = {f"c{k:03d}": pop.child() for k in range(children)}
    return [Template(c, e) for c, v in ids.items() for e in pop.photos(v, refs)], ids


@pytest.mark.parametrize("target", [0.01, 0.002])
def test_threshold_hits_its_false_show_target_on_strangers(target):
    pop = Population(seed=7)
    templates, ids = _roster(pop, 40)
    cal = calibrate(templates, margin=0.05, max_false_show=target, floor=0.0)
    assert cal.threshold > 0 and cal.expected_false_show <= target

    def shown(face: np.ndarray) -> bool:   # one face per photo
        [ident] = match_faces([face], [200], templates, threshold=cal.threshold, margin=0.05, min_face_px=80)
        return ident.child_id is not None

    # 10,000 children who are not enrolled, one photo each, against the roster with the rule in use.
    strangers = pop.photos_of_new_children(10000)
    assert sum(map(shown, strangers)) / len(strangers) <= target
    # ... and the threshold is not absurdly strict: most photos of enrolled children are still shown.
    own = [pop.photos(v, 1)[0] for v in ids.values() for _ in range(5)]
    assert sum(map(shown, own)) / len(own) > 0.8


def test_tail_threshold_and_false_show_agree():
    values = np.random.default_rng(3).normal(0.2, 0.1, 5000)
    tail = Tail.fit(values)
    for children in (10, 30, 56):
        t = tail.threshold_for(0.001, children)
        assert tail.false_show(t, children) == pytest.approx(0.001, rel=1e-6)
    assert tail.threshold_for(0.001, 56) > tail.threshold_for(0.001, 10)   # a larger roster needs more


def test_never_below_the_floor_and_too_few_children_keep_the_default():
    pop = Population(seed=2, shared=0.0)
    templates, _ = _roster(pop, 40)
    assert calibrate(templates, margin=0.05, max_false_show=0.001).threshold == FLOOR
    cal = calibrate(templates[:6], margin=0.05, max_false_show=0.001)
    assert cal.threshold == FLOOR and any("too few" in n for n in cal.notes)


def test_alike_roster_raises_the_threshold():
    pop = Population(seed=5, shared=0.9, identity=0.5, photo=0.25)
    templates, _ = _roster(pop, 40)
    cal = calibrate(templates, margin=0.05, max_false_show=0.001)
    assert cal.threshold > FLOOR and any("raised" in n for n in cal.notes)


def test_weakest_child_is_named_with_what_to_do():
    pop = Population(seed=9)
    templates, ids = _roster(pop, 30)
    # One child whose reference photos hardly agree with each other, one with a single photo.
    weak = _unit(np.stack([pop.photos(ids["c000"], 1)[0], pop.child(), pop.child()]))
    templates = [t for t in templates if t.child_id not in ("c000", "c001")]
    templates += [Template("c000", e) for e in weak] + [Template("c001", pop.photos(ids["c001"], 1)[0])]
    cal = calibrate(templates, margin=0.05, max_false_show=0.001)
    assert cal.keep[0].child_id == "c001" and cal.keep[0].expected_keep is None
    assert cal.keep[1].child_id == "c000" and cal.keep[1].expected_keep < 0.5
    assert any("add a recent photo of c000" in n for n in cal.notes)
    assert any(n.startswith("c001 has only one") for n in cal.notes)


def test_twins_are_listed_as_look_alikes():
    pop = Population(seed=11)
    templates, ids = _roster(pop, 30)
    twin = [Template("twin", e) for e in pop.photos(ids["c005"], 3)]
    cal = calibrate(templates + twin, margin=0.05, max_false_show=0.001)
    assert [(p.a, p.b) for p in cal.look_alikes] == [("c005", "twin")]
    assert any("c005 and twin look as alike" in n for n in cal.notes)
    assert {k.child_id: k.expected_keep for k in cal.keep}["twin"] == 0.0


def test_cross_scores_score_each_reference_against_the_other_children():
    e = np.eye(128)
    templates = [Template("a", e[0]), Template("a", e[1]), Template("b", e[0])]
    # a's references against b: 1.0 and 0.0; b's reference against a (mean of 1.0 and 0.0): 0.5.
    assert sorted(cross_scores(templates).tolist()) == [0.0, 0.5, 1.0]


def _store(conn, child: str, enc: np.ndarray, model: str | None = None) -> None:
    conn.execute("INSERT OR IGNORE INTO children (id, updated_at) VALUES (?, ?)", (child, dt.datetime.now().isoformat()))
    conn.execute("INSERT INTO templates (child_id, photo_sha256, encoding, created_at, model) VALUES (?, ?, ?, ?, ?)",
                 (child, "0" * 64, enc.astype("<f8").tobytes(), dt.datetime.now().isoformat(),
                  current_model() if model is None else model))


def test_load_templates_round_trip_and_only_of_the_current_model(tmp_path):
    conn = db.connect(tmp_path / "pg.db")
    enc = _unit(np.random.default_rng(1).normal(size=128))
    _store(conn, "amy", enc)
    _store(conn, "amy", enc * 0.5, model="")              # a dlib template of an older version
    _store(conn, "ben", enc, model="sface-2021dec:" + "f" * 64)   # another model file
    [t] = load_templates(conn)
    assert t.child_id == "amy" and t.encoding.dtype == np.float64
    np.testing.assert_array_equal(t.encoding, enc)


def test_calibrate_command_apply(tmp_path):
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(home)]).exit_code == 0
    result = runner.invoke(main, ["calibrate", "--home", str(home)])
    assert result.exit_code != 0 and "enrol" in result.output
    conn = db.connect(home / ".photoguard" / "photoguard.db")
    pop = Population(seed=5, shared=0.9, identity=0.5, photo=0.25)   # children alike: threshold goes up
    templates, _ = _roster(pop, 30)
    for t in templates:
        _store(conn, t.child_id, t.encoding)
    conn.close()
    result = runner.invoke(main, ["calibrate", "--home", str(home)])
    assert result.exit_code == 0, result.output
    suggested = calibrate(templates, margin=0.05, max_false_show=0.001).threshold
    assert f"suggested match.similarity = {suggested:.2f}" in result.output
    assert "expected share of each child's photos" in result.output
    assert load_settings(home).match_similarity == FLOOR   # not applied yet
    result = runner.invoke(main, ["calibrate", "--home", str(home), "--apply"])
    assert result.exit_code == 0, result.output
    settings = load_settings(home)
    assert settings.match_similarity == pytest.approx(suggested)
    assert settings.sources["match.similarity"].endswith("photoguard.toml")
    result = runner.invoke(main, ["calibrate", "--home", str(home), "--json"])
    assert f'"threshold": {suggested}' in result.output
