"""`photoguard service`: the systemd unit rendered into a temp folder, validated by systemd-analyze,
and the home's ownership set as the unit expects (when the tests run as root)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from photoguard.cli import main
from photoguard.flow.service import ServiceSpec, program_files, read_unit_home, render_unit
from photoguard.store.starter import init_home

# A program outside temporary folders and root's home stands in for the installed photoguard:
# systemd-analyze verify checks that ExecStart names an existing executable.
PROGRAM = shutil.which("true") or "/bin/true"
USER = "nobody"   # present on every Debian; a real install uses its own account
GROUP = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name
STAFF = "staff" if any(g.gr_name == "staff" for g in grp.getgrall()) else GROUP
ANALYZE = shutil.which("systemd-analyze")


def verify(unit: Path) -> list[str]:
    """systemd-analyze verify's complaints, apart from the one about using 'nobody' in a test."""
    if ANALYZE is None:
        pytest.skip("systemd-analyze is not installed here")
    done = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and "Special user nobody configured" not in line]
    assert done.returncode == 0, lines
    return lines


def install(home: Path, unit_dir: Path, *extra: str):
    return CliRunner().invoke(main, ["service", "install", "--home", str(home), "--user", USER,
                                     "--executable", PROGRAM, "--unit-dir", str(unit_dir), *extra])


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_install_writes_a_unit_that_systemd_accepts(tmp_path):
    home = init_home(tmp_path / "home").home
    units = tmp_path / "units"
    out = install(home.root, units, "--staff-group", STAFF)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0] == f"PhotoGuard home: {home.root}"
    unit = units / "photoguard.service"
    assert verify(unit) == []
    text = unit.read_text()
    kv = settings(text)
    assert kv["ExecStart"] == [f"{Path(PROGRAM).resolve()} watch --home {home.root}"]
    assert kv["User"] == [USER] and kv["Group"] == [GROUP] and kv["WorkingDirectory"] == [str(home.root)]
    if STAFF != GROUP:
        assert kv["SupplementaryGroups"] == [STAFF]
    assert kv["Restart"] == ["on-failure"] and kv["WantedBy"] == ["multi-user.target"]
    assert kv["ProtectSystem"] == ["strict"] and kv["ReadWritePaths"] == [str(home.root)]
    assert kv["NoNewPrivileges"] == ["yes"] and kv["PrivateTmp"] == ["yes"] and kv["UMask"] == ["0027"]
    assert kv["RestrictAddressFamilies"] == ["AF_UNIX"]  # on device: no network
    assert "RestrictSUIDSGID" not in kv  # the inbox is a setgid folder
    assert "--poll" not in text and "remote-fs" not in text
    assert read_unit_home(unit) == str(home.root)
    status = CliRunner().invoke(main, ["service", "status", "--unit-dir", str(units)])
    assert status.exit_code == 0 and f"home: {home.root}" in status.output


@pytest.mark.skipif(os.geteuid() != 0, reason="setting owners needs root")
def test_install_gives_the_home_to_the_account_and_the_inbox_to_staff(tmp_path):
    home = init_home(tmp_path / "home").home
    (home.inbox / "Room 2").mkdir()
    (home.inbox / "Room 2" / "early.jpg").write_bytes(b"dropped before the service")
    out = install(home.root, tmp_path / "units", "--staff-group", STAFF, "--manager-group", GROUP)
    assert out.exit_code == 0, out.output
    uid = pwd.getpwnam(USER).pw_uid
    staff, manager = grp.getgrnam(STAFF).gr_gid, grp.getgrnam(GROUP).gr_gid
    for path in [home.root, home.database, home.roster_csv, home.archive, *home.root.rglob("*")]:
        assert path.stat().st_uid == uid, path
    inbox = home.inbox.stat()
    assert inbox.st_gid == staff and stat.S_IMODE(inbox.st_mode) == 0o2770
    assert (home.inbox / "Room 2").stat().st_gid == staff and (home.inbox / "Room 2" / "early.jpg").stat().st_gid == staff
    for folder in [home.outbox, *(home.outbox_for(c) for c in home.settings.channels)]:
        st = folder.stat()
        assert st.st_gid == manager and stat.S_IMODE(st.st_mode) == 0o750, folder
    assert stat.S_IMODE(home.database.stat().st_mode) == 0o600  # still private


def test_poll_for_a_home_on_a_network_share(tmp_path):
    home = init_home(tmp_path / "home").home
    out = install(home.root, tmp_path / "units", "--poll")
    assert out.exit_code == 0, out.output
    kv = settings((tmp_path / "units" / "photoguard.service").read_text())
    assert kv["ExecStart"][0].endswith(" --poll")
    assert "remote-fs.target" in kv["After"][0] and kv["Wants"] == ["network-online.target"]
    verify(tmp_path / "units" / "photoguard.service")


def test_odd_characters_in_the_home_path_stay_one_word(tmp_path):
    spec = ServiceSpec(home=Path("/srv/Nursery Photos 100%"), executable=Path(PROGRAM), user=USER, group=GROUP)
    kv = settings(render_unit(spec))
    assert kv["ExecStart"] == [f'{PROGRAM} watch --home "/srv/Nursery Photos 100%%"']
    assert kv["ReadWritePaths"] == ['"/srv/Nursery Photos 100%%"']
    (tmp_path / "photoguard.service").write_text(render_unit(spec))
    verify(tmp_path / "photoguard.service")


def test_a_home_under_home_is_reachable_read_only():
    spec = ServiceSpec(home=Path("/home/office/photoguard"), executable=Path(PROGRAM), user=USER, group=GROUP)
    kv = settings(render_unit(spec))
    assert kv["ProtectHome"] == ["read-only"] and kv["ReadWritePaths"] == ["/home/office/photoguard"]
    spec = ServiceSpec(home=Path("/srv/photoguard"), executable=Path(PROGRAM), user=USER, group=GROUP)
    assert settings(render_unit(spec))["ProtectHome"] == ["yes"]


def test_a_program_whose_python_lives_under_home_is_reachable_read_only(tmp_path):
    program = tmp_path / "photoguard"
    program.write_text("#!/home/office/.local/share/uv/tools/photoguard/bin/python\n")
    spec = ServiceSpec(home=Path("/srv/photoguard"), executable=program, user=USER, group=GROUP)
    assert settings(render_unit(spec))["ProtectHome"] == ["read-only"]


def test_dry_run_changes_nothing(tmp_path):
    home = init_home(tmp_path / "home").home
    before = home.root.stat()
    out = install(home.root, tmp_path / "units", "--staff-group", STAFF, "--dry-run")
    assert out.exit_code == 0, out.output
    assert "ExecStart=" in out.output and "would set" in out.output
    assert not (tmp_path / "units").exists()
    after = home.root.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_program_in_a_temporary_folder_or_roots_home_is_refused(tmp_path):
    home = init_home(tmp_path / "home").home
    program = tmp_path / "bin" / "photoguard"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    out = CliRunner().invoke(main, ["service", "install", "--home", str(home.root), "--user", USER,
                                    "--executable", str(program), "--unit-dir", str(tmp_path / "units")])
    assert out.exit_code == 1 and "temporary folder" in out.output and "uv tool install" in out.output
    # A program whose Python lives in root's home (a uv tool installed with root's Python) is refused too.
    program.write_text("#!/root/.pyenv/versions/3.11.7/bin/python3\n")
    assert Path("/root/.pyenv/versions/3.11.7/bin/python3") in program_files(program)
    assert not (tmp_path / "units").exists()


def test_refuses_root_unknown_accounts_and_folders_that_are_not_homes(tmp_path):
    home = init_home(tmp_path / "home").home
    runner = CliRunner()
    base = ["service", "install", "--executable", PROGRAM, "--unit-dir", str(tmp_path / "units")]
    out = runner.invoke(main, [*base, "--home", str(home.root), "--user", "root"])
    assert out.exit_code == 1 and "must not run as root" in out.output
    out = runner.invoke(main, [*base, "--home", str(home.root), "--user", "no-such-account-xyz"])
    assert out.exit_code == 1 and "adduser" in out.output
    out = runner.invoke(main, [*base, "--home", str(home.root), "--user", USER, "--staff-group", "no-such-group-xyz"])
    assert out.exit_code == 1 and "addgroup" in out.output
    out = runner.invoke(main, [*base, "--home", str(tmp_path / "typo"), "--user", USER])
    assert out.exit_code == 1 and "photoguard init" in out.output
    assert not (tmp_path / "units").exists() and not (tmp_path / "typo").exists()


def test_uninstall_removes_only_a_unit_photoguard_wrote(tmp_path):
    home = init_home(tmp_path / "home").home
    units = tmp_path / "units"
    assert install(home.root, units).exit_code == 0
    out = CliRunner().invoke(main, ["service", "uninstall", "--unit-dir", str(units)])
    assert out.exit_code == 0 and not (units / "photoguard.service").exists()
    assert home.inbox.is_dir()  # the home stays
    (units / "photoguard.service").write_text("[Service]\nExecStart=/bin/true\n")
    out = CliRunner().invoke(main, ["service", "uninstall", "--unit-dir", str(units)])
    assert out.exit_code == 1 and (units / "photoguard.service").exists()
    out = install(home.root, units)
    assert out.exit_code == 1 and "not written by PhotoGuard" in out.output
    status = CliRunner().invoke(main, ["service", "status", "--unit-dir", str(tmp_path / "none")])
    assert status.exit_code == 3 and "not installed" in status.output


def test_shipped_example_unit_is_what_the_command_writes():
    example = Path(__file__).resolve().parent.parent / "deploy" / "photoguard.service"
    spec = ServiceSpec(home=Path("/srv/photoguard"), executable=Path("/usr/local/bin/photoguard"), user="photoguard",
                       group="photoguard", staff_group="staff")
    assert example.read_text().endswith(render_unit(spec))
