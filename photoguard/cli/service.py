"""``photoguard service install|status|uninstall``: the watcher as a systemd service."""

from __future__ import annotations

import time
from pathlib import Path

import click

from photoguard.flow.service import (SYSTEM_UNIT_DIR, ServiceError, apply_ownership, find_executable, make_spec,
                                     ownership_plan, read_unit_home, remove_unit, render_unit, systemctl,
                                     systemd_running, unit_path, verify_unit, write_unit)
from photoguard.store.config import ConfigError
from photoguard.store.home import HomeError, open_home
from photoguard.store.starter import require_home

name_option = click.option("--name", default="photoguard", show_default=True,
                           help="The service's name (one per home if a computer serves several).")
unit_dir_option = click.option("--unit-dir", type=click.Path(file_okay=False), default=None,
                               help=f"Write the unit here instead of {SYSTEM_UNIT_DIR} (systemd is then not told).")


@click.group()
def service() -> None:
    """Run the watcher at boot as a systemd service (install, status, uninstall)."""


@service.command("install")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), envvar="PHOTOGUARD_HOME", required=True,
              help="The PhotoGuard home to watch (made with `photoguard init`).")
@click.option("--user", default=None, help="The account the service runs as (default: the home's owner; never root).")
@click.option("--staff-group", default=None, help="The group whose members drop photos in inbox/ (it gets write access).")
@click.option("--manager-group", default=None,
              help="The group that may read the outbox (default: the account's own group).")
@click.option("--poll", is_flag=True, help="Poll inbox/ (the home is on a network file system).")
@click.option("--executable", type=click.Path(dir_okay=False), default=None,
              help="The installed photoguard program (default: the one running now).")
@name_option
@unit_dir_option
@click.option("--dry-run", is_flag=True, help="Print the unit and what would change; change nothing.")
def install(home_dir: str, user: str | None, staff_group: str | None, manager_group: str | None, poll: bool,
            executable: str | None, name: str, unit_dir: str | None, dry_run: bool) -> None:
    """Write and start a systemd unit running `photoguard watch` for the home, at every boot.

    Example: sudo photoguard service install --home /srv/photoguard --user photoguard --staff-group staff
    """
    import os

    try:
        home = open_home(require_home(home_dir))
        exe = find_executable(executable)
        spec = make_spec(home.root, user, staff_group, manager_group, poll, exe, name)
    except (ServiceError, HomeError, ConfigError) as exc:
        raise click.ClickException(str(exc))
    steps = ownership_plan(spec, home.settings.channels)
    target = Path(unit_dir) if unit_dir else SYSTEM_UNIT_DIR
    click.echo(f"PhotoGuard home: {home.root}")
    if dry_run:
        click.echo(f"would write {target / spec.unit_name}:")
        click.echo(render_unit(spec))
        for step in steps:
            click.echo(f"would set {step.describe()}")
        if unit_dir is None:
            click.echo(f"would run: systemctl daemon-reload && systemctl enable --now {spec.unit_name}")
        return
    if unit_dir is None and os.geteuid() != 0:
        raise click.ClickException(f"installing a service needs root: sudo {exe} service install --home {home.root} ...")
    try:
        if os.geteuid() == 0:
            apply_ownership(steps)
            for step in steps:
                click.echo(f"set {step.describe()}")
        else:
            click.echo("not root: the home's owner and groups were left as they are")
        path = write_unit(spec, target)
    except ServiceError as exc:
        raise click.ClickException(str(exc))
    except OSError as exc:
        raise click.ClickException(f"cannot change {exc.filename}: {exc.strerror}")
    click.echo(f"wrote {path}")
    problem = verify_unit(path)
    if problem:
        click.secho(f"warning: systemd-analyze verify says:\n{problem}", fg="yellow", err=True)
    if unit_dir is not None:
        click.echo(f"not started (written outside {SYSTEM_UNIT_DIR}); to use it: copy it there, then "
                   f"systemctl daemon-reload && systemctl enable --now {spec.unit_name}")
        return
    if not systemd_running():
        raise click.ClickException(f"systemd is not running on this computer, so {spec.unit_name} was written but not "
                                   f"started. Run `photoguard watch --home {home.root}` another way.")
    for args in (("daemon-reload",), ("enable", "--now", spec.unit_name)):
        done = systemctl(*args)
        if done.returncode != 0:
            raise click.ClickException(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
    time.sleep(3)
    state = systemctl("is-active", spec.unit_name).stdout.strip()
    if state != "active":
        raise click.ClickException(f"{spec.unit_name} did not stay running ({state}). "
                                   f"See why: journalctl -u {spec.unit_name} -n 30")
    click.echo(f"{spec.unit_name} is running and starts at every boot. Check it: photoguard status --home {home.root}")


@service.command("status")
@name_option
@unit_dir_option
def status(name: str, unit_dir: str | None) -> None:
    """Is the service installed, enabled and running, and which home does it watch."""
    path = unit_path(name, unit_dir)
    if not path.exists():
        click.echo(f"not installed ({path} does not exist). Install it: sudo photoguard service install --home DIR")
        raise SystemExit(3)
    click.echo(f"unit: {path}")
    click.echo(f"home: {read_unit_home(path) or '?'}")
    if unit_dir is not None or not systemd_running():
        click.echo("systemd: not running here (or the unit is outside its folder), so it cannot say more")
        return
    enabled = systemctl("is-enabled", path.name).stdout.strip()
    active = systemctl("is-active", path.name).stdout.strip()
    click.echo(f"starts at boot: {'yes' if enabled == 'enabled' else 'no (' + enabled + ')'}")
    click.echo(f"running: {'yes' if active == 'active' else 'no (' + active + ')'}")
    if active != "active":
        click.echo(f"why: journalctl -u {path.name} -n 30")
        raise SystemExit(3)


@service.command("uninstall")
@name_option
@unit_dir_option
def uninstall(name: str, unit_dir: str | None) -> None:
    """Stop the service and remove its unit. The home and its photos are left as they are."""
    import os

    path = unit_path(name, unit_dir)
    if not path.exists():
        click.echo(f"nothing to remove: {path} does not exist")
        return
    if unit_dir is None and os.geteuid() != 0:
        raise click.ClickException("removing a service needs root: sudo photoguard service uninstall")
    if unit_dir is None and systemd_running():
        systemctl("disable", "--now", path.name)
    try:
        remove_unit(path)
    except ServiceError as exc:
        raise click.ClickException(str(exc))
    if unit_dir is None and systemd_running():
        systemctl("daemon-reload")
    click.echo(f"removed {path}; the home and its photos are left as they are")
