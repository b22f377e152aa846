"""What every command shares: the `photoguard` group itself, --home, opening the home and the database, tables."""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


import click  # noqa: E402

from photoguard.store.config import ConfigError  # noqa: E402
from photoguard.store.home import Home, HomeError, open_home  # noqa: E402
from photoguard.store.starter import require_home  # noqa: E402

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
        # Only a folder made by `photoguard init` (or an earlier version): a mistyped --home, or a
        # command run in the wrong folder, must not quietly become a new, empty home.
        return open_home(require_home(home_dir))
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc))


@click.group()
@click.version_option(package_name="photoguard")
def main() -> None:
    """PhotoGuard: obscure every child without consent before nursery photos are shared."""


def _say_home(home: Home, err: bool = False) -> None:
    click.echo(f"PhotoGuard home: {home.root}", err=err)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [headers, *rows]]


def _standing_cells(standing, channels) -> list[str]:
    """matching, one cell per channel, expires, status: the same words in `enrol` and `children`."""
    return ["yes" if standing.face_matching else "no", *("yes" if standing.channels[ch] else "no" for ch in channels),
            standing.expires, standing.status]


def _open_roster_db(home: Home):
    from photoguard.store import db

    return db.connect(home.database)
