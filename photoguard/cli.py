"""The ``photoguard`` command: a thin layer over the library; every command takes ``--home``."""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

import click  # noqa: E402

from .config import ConfigError, effective_settings  # noqa: E402
from .home import Home, HomeError, open_home  # noqa: E402

home_option = click.option(
    "--home",
    "home_dir",
    type=click.Path(file_okay=False),
    envvar="PHOTOGUARD_HOME",
    default=None,
    help="PhotoGuard home folder (default: $PHOTOGUARD_HOME, else the current folder).",
)


def get_home(home_dir: str | None) -> Home:
    try:
        return open_home(home_dir)
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc))


@click.group()
@click.version_option(package_name="photoguard")
def main() -> None:
    """PhotoGuard: obscure every child without consent before nursery photos are shared."""


@main.command()
@home_option
def config(home_dir: str | None) -> None:
    """Print the effective settings and where each came from."""
    home = get_home(home_dir)
    click.echo(f"home: {home.root}")
    for key, value, source in effective_settings(home.settings):
        click.echo(f"{key} = {value!r}    # {source}")


# --- roster commands (enrol, children) ---

# --- engine commands (calibrate, evaluate) ---

# --- processing commands (process, review, audit, purge) ---

# --- watcher commands (watch, status) ---

# --- manager commands (report, demo) ---
