"""Homes are made on purpose: `photoguard init`, and every other command refusing a folder that is not a home."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from photoguard.cli import main
from photoguard.store import db
from photoguard.store.config import _KEYS, Settings, load_settings
from photoguard.store.home import HomeError
from photoguard.store.roster import sync_roster
from photoguard.store.roster_csv import parse_roster
from photoguard.store.starter import init_home, is_home, starter_settings

REPO = Path(__file__).resolve().parent.parent


def test_init_makes_a_home_with_starter_files(tmp_path):
    target = tmp_path / "nursery"
    out = CliRunner().invoke(main, ["init", str(target)])
    assert out.exit_code == 0, out.output
    assert "is now a PhotoGuard home" in out.output and "photoguard enrol --home" in out.output
    # The README's first day, in its order: the pages, the Children page, then watching.
    steps = [out.output.index(s) for s in ("serve --home", "Children page", "watch --home")]
    assert steps == sorted(steps)
    assert is_home(target) and (target / ".photoguard" / "photoguard.db").is_file()
    for folder in ("inbox", "review", "failed", "outbox/facebook", "outbox/instagram", "outbox/twitter"):
        assert (target / folder).is_dir(), folder
    for private in ("archive", "enrol", ".photoguard"):
        assert stat.S_IMODE((target / private).stat().st_mode) & 0o077 == 0, private
    assert stat.S_IMODE((target / ".photoguard" / "photoguard.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "enrol" / "children.csv").stat().st_mode) == 0o600
    # The starter settings change nothing.
    assert load_settings(target) == Settings()
    # The starter roster: a header, no child, no problem.
    parsed = parse_roster(target / "enrol" / "children.csv", Settings().channels)
    assert parsed.problems == [] and parsed.warnings == [] and not parsed.rows
    # Every other command now accepts it.
    status = CliRunner().invoke(main, ["status", "--home", str(target)])
    assert status.exit_code == 0, status.output
    assert status.output.splitlines()[0] == f"PhotoGuard home: {target}"


def test_starter_settings_name_every_setting_at_its_default():
    text = starter_settings()
    setting = re.compile(r"^# [a-z_]+ = ")
    uncommented = "\n".join(line[2:] if setting.match(line) else line for line in text.splitlines())
    data = tomllib.loads(uncommented)
    flat = {f"{section}.{key}" if isinstance(values, dict) else section: value
            for section, values in data.items()
            for key, value in (values.items() if isinstance(values, dict) else [(None, values)])}
    assert set(flat) == set(_KEYS)
    defaults = Settings()
    for key, value in flat.items():
        expected = getattr(defaults, _KEYS[key])
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key
    # Each setting is explained on the line above it.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if setting.match(line):
            assert lines[i - 1].startswith("# ") and not setting.match(lines[i - 1]), line
    # As written (all commented) it is a valid settings file with the defaults.
    assert tomllib.loads(text) == {"archive": {}, "detect": {}, "inbox": {}, "match": {}, "obscure": {},
                                 "outbox": {}}


def test_one_uncommented_line_changes_one_setting(tmp_path):
    init_home(tmp_path)
    path = tmp_path / "photoguard.toml"
    path.write_text(path.read_text().replace("# margin = 0.05", "margin = 0.1"))
    settings = load_settings(tmp_path)
    assert settings.match_margin == 0.1 and settings.match_similarity == 0.6


def test_starter_roster_example_row_once_uncommented_is_a_child(tmp_path):
    home = init_home(tmp_path).home
    conn = db.connect(home.database)
    assert sync_roster(home, conn).children == []
    text = home.roster_csv.read_text()
    home.roster_csv.write_text(text.replace("# ada,", "ada,"))
    parsed = parse_roster(home.roster_csv, home.settings.channels)
    assert parsed.problems == [] and [c.child_id for c in parsed.rows] == ["ada"]


def test_roster_comment_lines_are_ignored_and_line_numbers_kept(tmp_path):
    csv = tmp_path / "children.csv"
    csv.write_text("# the roster\nid,name,face_matching,facebook,instagram,twitter,expires\n"
                   "# sam,Sam,yes,yes,yes,yes,\n  # indented note\n\"# saved by a spreadsheet; quoted\"\n"
                   "ada,Ada,yes,yes,no,no,\nbad id,X,yes,yes,yes,yes,\n")
    parsed = parse_roster(csv, ("facebook", "instagram", "twitter"))
    assert [c.child_id for c in parsed.rows] == ["ada"]
    assert [p.line for p in parsed.problems] == [7]


def test_init_is_repeatable_and_never_overwrites(tmp_path):
    init_home(tmp_path)
    (tmp_path / "photoguard.toml").write_text("workers = 1\n")
    (tmp_path / "enrol" / "children.csv").write_text("id,name\n")
    (tmp_path / "review").rmdir()
    out = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert out.exit_code == 0 and "was already a PhotoGuard home" in out.output and "wrote" not in out.output
    assert (tmp_path / "photoguard.toml").read_text() == "workers = 1\n"
    assert (tmp_path / "enrol" / "children.csv").read_text() == "id,name\n"
    assert (tmp_path / "review").is_dir()


def test_init_refuses_a_folder_with_other_things_in_it(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"mine")
    out = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert out.exit_code == 1 and "not empty" in out.output and "holiday.jpg" in out.output
    assert not is_home(tmp_path) and sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg"]
    with pytest.raises(HomeError):
        init_home(REPO)  # the source checkout never becomes a home


def test_init_accepts_a_folder_the_manager_started(tmp_path):
    (tmp_path / "enrol").mkdir()
    (tmp_path / "enrol" / "children.csv").write_text("id,name,face_matching\n")
    out = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "enrol" / "children.csv").read_text() == "id,name,face_matching\n"


COMMANDS = [
    ["status"], ["process"], ["watch"], ["enrol"], ["config"], ["children"], ["children", "show", "ada"],
    ["review", "list"], ["posted", "--list"], ["takedown"], ["report"], ["audit"], ["purge"], ["calibrate"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_commands_refuse_a_folder_that_is_not_a_home(tmp_path, args):
    typo = tmp_path / "nursry"
    out = CliRunner().invoke(main, [*args, "--home", str(typo)])
    assert out.exit_code == 1, out.output
    assert f"{typo} does not exist" in out.output and f"photoguard init {typo}" in out.output
    assert not typo.exists()  # a typo makes nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    out = CliRunner().invoke(main, [*args, "--home", str(empty)])
    assert out.exit_code == 1 and "is not a PhotoGuard home" in out.output and "Traceback" not in out.output
    assert list(empty.iterdir()) == []


def test_command_in_the_source_checkout_does_not_make_it_a_home(monkeypatch):
    if (REPO / ".photoguard").exists():
        pytest.skip("this checkout was made a home by an earlier version")
    monkeypatch.delenv("PHOTOGUARD_HOME", raising=False)
    monkeypatch.chdir(REPO)
    out = CliRunner().invoke(main, ["process"])
    assert out.exit_code == 1 and f"{REPO} is not a PhotoGuard home" in out.output
    assert "photoguard init DIR" in out.output
    assert not (REPO / ".photoguard").exists() and not (REPO / "inbox").exists()


def test_evaluate_with_a_home_that_is_not_one_is_refused(tmp_path):
    out = CliRunner().invoke(main, ["evaluate", "identity", str(tmp_path), "--home", str(tmp_path / "nope")])
    assert out.exit_code == 1 and "does not exist" in out.output


def test_a_home_made_by_the_previous_version_keeps_working(tmp_path):
    # What earlier versions left: the layout and .photoguard/photoguard.db, no starter files.
    for folder in ("inbox", "review", "failed", "archive", "enrol", ".photoguard/logs"):
        (tmp_path / folder).mkdir(parents=True)
    db.connect(tmp_path / ".photoguard" / "photoguard.db").close()
    (tmp_path / "enrol" / "children.csv").write_text("id,name,face_matching,facebook,instagram,twitter,expires\n")
    for args in (["status"], ["config"], ["enrol"], ["children"]):
        out = CliRunner().invoke(main, [*args, "--home", str(tmp_path)])
        assert out.exit_code == 0, (args, out.output)
    assert not (tmp_path / "photoguard.toml").exists()  # nothing to do by hand, nothing added


def test_long_commands_say_which_home_first(tmp_path):
    home = init_home(tmp_path).home
    out = CliRunner().invoke(main, ["process", "--home", str(home.root)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0] == f"PhotoGuard home: {home.root}"
    out = CliRunner().invoke(main, ["process", "--json", "--home", str(home.root)])
    assert out.stderr.splitlines()[0] == f"PhotoGuard home: {home.root}" and out.stdout == ""
    out = CliRunner().invoke(main, ["enrol", "--home", str(home.root)])
    assert out.exit_code == 0 and out.stderr.splitlines()[0] == f"PhotoGuard home: {home.root}"


def test_library_open_home_still_creates_for_callers_that_mean_it(tmp_path):
    from photoguard.store.home import open_home

    home = open_home(tmp_path / "made-by-a-test")
    assert is_home(home.root) and os.path.isdir(home.inbox)
