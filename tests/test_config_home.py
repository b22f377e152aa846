"""Settings file, home layout and permissions, and the command line as a whole."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from photoguard.cli import main
from photoguard.store.config import ConfigError, Settings, load_settings, write_setting
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.starter import init_home


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_layout_and_private_folders(tmp_path):
    home = open_home(tmp_path / "home")
    for folder in ("inbox", "review", "failed", "archive", "enrol", ".photoguard",
                   "outbox/facebook", "outbox/instagram", "outbox/twitter"):
        assert (home.root / folder).is_dir(), folder
    for private in (home.archive, home.enrol, home.state):
        assert mode(private) == 0o700, private
    conn = connect(home.database)
    conn.execute("INSERT INTO events (at, kind) VALUES ('now', 'test')")
    assert mode(home.database) == 0o600
    for side in home.state.glob("photoguard.db-*"):
        assert mode(side) == 0o600, side


def test_defaults_without_a_settings_file(tmp_path):
    settings = load_settings(tmp_path)
    assert settings == Settings()
    assert settings.channels == ("facebook", "instagram", "twitter")
    assert set(settings.sources.values()) == {"default"}


def test_settings_file_overrides_and_says_where(tmp_path):
    (tmp_path / "photoguard.toml").write_text(
        'channels = ["facebook", "parents-app"]\n[match]\nsimilarity = 0.7\n[obscure]\nmethod = "fill"\n')
    settings = load_settings(tmp_path)
    assert settings.channels == ("facebook", "parents-app")
    assert settings.match_similarity == 0.7 and settings.obscure_method == "fill"
    assert settings.sources["match.similarity"].endswith("photoguard.toml")
    assert settings.sources["match.margin"] == "default"
    home = open_home(tmp_path)
    assert home.outbox_for("parents-app").is_dir()


@pytest.mark.parametrize("text, key", [
    ("[match]\nthreshhold = 0.4\n", "match.threshhold"),      # unknown key
    ("[match]\nsimilarity = 1.5\n", "match.similarity"),      # out of range
    ("[match]\nsimilarity = \"low\"\n", "match.similarity"),  # wrong type
    ("[match]\nmax_false_show = 0\n", "match.max_false_show"),
    ("[match]\nmax_false_show = 0.5\n", "match.max_false_show"),
    ("[match]\nask_standout = 11\n", "match.ask_standout"),
    ("[match]\nask_standout = \"high\"\n", "match.ask_standout"),
    ("channels = []\n", "channels"),
    ("channels = [\"face book\"]\n", "channels"),
    ("[obscure]\nmethod = \"blur\"\n", "obscure.method"),     # never plain blur
    ("[archive]\nretention_days = -1\n", "archive.retention_days"),
    ("workers = true\n", "workers"),
])
def test_bad_settings_name_the_key_and_the_file(tmp_path, text, key):
    (tmp_path / "photoguard.toml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path)
    assert key in str(exc.value) and "photoguard.toml" in str(exc.value)


def test_ask_standout_is_read_and_zero_switches_it_off(tmp_path):
    assert load_settings(tmp_path).match_ask_standout == 2.5
    (tmp_path / "photoguard.toml").write_text("[match]\nask_standout = 0\n")
    assert load_settings(tmp_path).match_ask_standout == 0.0


def test_broken_toml_is_reported(tmp_path):
    (tmp_path / "photoguard.toml").write_text("[match\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path)


def test_write_setting_keeps_other_lines(tmp_path):
    (tmp_path / "photoguard.toml").write_text("# our nursery\nworkers = 1\n\n[match]\nmargin = 0.1\n")
    write_setting(tmp_path, "match.similarity", 0.62)
    write_setting(tmp_path, "match.margin", 0.12)
    text = (tmp_path / "photoguard.toml").read_text()
    assert "# our nursery" in text
    settings = load_settings(tmp_path)
    assert (settings.match_similarity, settings.match_margin, settings.workers) == (0.62, 0.12, 1)


def test_old_dlib_threshold_is_ignored_not_used_as_a_similarity(tmp_path):
    # A home calibrated by an older version has a dlib distance there; as a similarity it would be loose.
    init_home(tmp_path)
    (tmp_path / "photoguard.toml").write_text("[match]\nthreshold = 0.4\n")
    settings = load_settings(tmp_path)
    assert settings.match_similarity == 0.60 and settings.match_max_false_show == 0.001
    assert settings.sources["match.threshold"].startswith("ignored")
    out = CliRunner().invoke(main, ["config", "--home", str(tmp_path)])
    assert out.exit_code == 0 and "match.threshold in photoguard.toml is ignored" in out.output
    assert "calibrate --apply" in out.output


def test_config_command_prints_sources(tmp_path):
    init_home(tmp_path)
    (tmp_path / "photoguard.toml").write_text("[match]\nsimilarity = 0.65\n")
    out = CliRunner().invoke(main, ["config", "--home", str(tmp_path)])
    assert out.exit_code == 0
    assert "match.similarity = 0.65" in out.output and "photoguard.toml" in out.output
    assert "match.margin = 0.05    # default" in out.output
    assert "match.max_false_show = 0.001    # default" in out.output


def test_bad_settings_file_is_a_clean_error(tmp_path):
    init_home(tmp_path)
    (tmp_path / "photoguard.toml").write_text("colour = 3\n")
    out = CliRunner().invoke(main, ["config", "--home", str(tmp_path)])
    assert out.exit_code == 1 and "unknown setting 'colour'" in out.output
    assert "Traceback" not in out.output


def test_home_from_environment(tmp_path, monkeypatch):
    init_home(tmp_path / "envhome")
    monkeypatch.setenv("PHOTOGUARD_HOME", str(tmp_path / "envhome"))
    out = CliRunner().invoke(main, ["config"])
    assert out.exit_code == 0 and str(tmp_path / "envhome") in out.output


def test_python_dash_m_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "photoguard", "--help"], capture_output=True, text=True, check=True)
    for command in ("enrol", "children", "process", "watch", "status", "review", "report", "audit", "purge",
                    "calibrate", "evaluate", "config", "demo"):
        assert f"  {command}" in out.stdout, command
    assert "pkg_resources" not in out.stderr
