"""Calibration on made-up encodings, templates read from a real database, and the command."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from click.testing import CliRunner

from photoguard import db
from photoguard.calibrate import CEILING, calibrate, pair_distances
from photoguard.roster import load_templates
from photoguard.cli import main
from photoguard.config import load_settings
from photoguard.identify import Template


def at(*xs: float) -> np.ndarray:
    v = np.zeros(128)
    v[: len(xs)] = xs
    return v


def roster(**children: list[np.ndarray]) -> list[Template]:
    return [Template(c, e) for c, encs in children.items() for e in encs]


def test_well_separated_children_keep_the_default():
    cal = calibrate(roster(amy=[at(0), at(0.2)], ben=[at(1), at(1.25)], cal=[at(0, 1), at(0, 1.3)]), margin=0.08)
    assert cal.threshold == CEILING
    assert cal.look_alikes == []
    assert cal.leave_one_out == {"correct": 6, "wrong": 0, "unknown": 0}
    assert cal.same_child == pytest.approx([0.2, 0.2, 0.25, 0.25, 0.3, 0.3])
    assert cal.cross_child_min == pytest.approx(0.8)


def test_close_children_lower_the_threshold_with_a_safety_margin():
    cal = calibrate(roster(amy=[at(0), at(0.3)], ben=[at(0.8), at(1.0)]), margin=0.08)
    # closest cross-child templates: 0.3 and 0.8 -> 0.5; minus safety 0.10
    assert cal.threshold == pytest.approx(0.40)
    assert cal.threshold < cal.cross_child_min
    assert cal.look_alikes == []
    assert any("lowered" in n for n in cal.notes)
    assert cal.leave_one_out["wrong"] == 0


def test_twins_are_listed_not_allowed_to_drag_the_threshold_down():
    cal = calibrate(roster(amy=[at(0)], zoe=[at(0, 0.25)], ben=[at(1)]), margin=0.08)
    assert cal.threshold == CEILING
    assert [(p.a, p.b) for p in cal.look_alikes] == [("amy", "zoe")]
    assert any("look too alike" in n for n in cal.notes)
    assert cal.leave_one_out["wrong"] == 0


def test_pair_inside_threshold_plus_margin_is_a_look_alike():
    # 0.50 apart: threshold becomes 0.40, and 0.40 + 0.12 > 0.50 -> never told apart.
    cal = calibrate(roster(amy=[at(0)], ben=[at(0.5)]), margin=0.12)
    assert cal.threshold == pytest.approx(0.40)
    assert [(p.a, p.b) for p in cal.look_alikes] == [("amy", "ben")]


def test_pair_distances_use_the_closest_templates():
    pairs = pair_distances(roster(amy=[at(0), at(0.9)], ben=[at(1.0)], cal=[at(5)]))
    assert [(p.a, p.b, round(p.distance, 3)) for p in pairs] == [
        ("amy", "ben", 0.1), ("ben", "cal", 4.0), ("amy", "cal", 4.1)]


def test_single_child_notes():
    cal = calibrate(roster(amy=[at(0)]), margin=0.08)
    assert cal.threshold == CEILING and cal.closest_pairs == []
    assert len(cal.notes) == 2


def _store(conn, child: str, enc: np.ndarray) -> None:
    conn.execute("INSERT OR IGNORE INTO children (id, updated_at) VALUES (?, ?)", (child, dt.datetime.now().isoformat()))
    conn.execute("INSERT INTO templates (child_id, photo_sha256, encoding, created_at) VALUES (?, ?, ?, ?)",
                 (child, "0" * 64, enc.astype("<f8").tobytes(), dt.datetime.now().isoformat()))


def test_load_templates_round_trip(tmp_path):
    conn = db.connect(tmp_path / "pg.db")
    enc = np.random.default_rng(1).normal(size=128)
    _store(conn, "amy", enc)
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
    for child, encs in {"amy": [at(0), at(0.3)], "ben": [at(0.8), at(1.0)]}.items():
        for e in encs:
            _store(conn, child, e)
    conn.close()
    result = runner.invoke(main, ["calibrate", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "suggested match.threshold = 0.40" in result.output
    assert load_settings(home).match_threshold == 0.45   # not applied yet
    result = runner.invoke(main, ["calibrate", "--home", str(home), "--apply"])
    assert result.exit_code == 0, result.output
    settings = load_settings(home)
    assert settings.match_threshold == pytest.approx(0.40)
    assert settings.sources["match.threshold"].endswith("photoguard.toml")
    result = runner.invoke(main, ["calibrate", "--home", str(home), "--json"])
    assert '"threshold": 0.4' in result.output
