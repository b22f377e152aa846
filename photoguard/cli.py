"""The ``photoguard`` command: a thin layer over the library; every command takes ``--home``."""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from pathlib import Path  # noqa: E402

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


def _face_summary(result) -> str:
    shown = sum(1 for f in result.faces if "shown" in f.actions.values())
    return f"{len(result.faces)} face(s), {shown} shown somewhere, {len(result.faces) - shown} obscured everywhere"


def _print_result(result, index: int, total: int, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
        return
    detail = result.reason if result.status != "cleared" else _face_summary(result)
    click.echo(f"[{index}/{total}] {result.source}: {result.status} — {detail} ({result.seconds:.1f}s)")


@main.command()
@home_option
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON line per photo on stdout.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: the 'workers' setting, 0 = cores).")
def process(home_dir: str | None, paths: tuple[str, ...], as_json: bool, workers: int | None) -> None:
    """Process every photo in inbox/ (or the PATHS given) once, then exit with a summary.

    Example: photoguard process --home /srv/photoguard
    """
    from .lock import HomeBusy, hold_lock
    from .pipeline import DiskFull, collect, open_processor, run_batch

    home = get_home(home_dir)
    note = lambda msg: click.echo(msg, err=as_json)  # noqa: E731
    try:
        with hold_lock(home, "photoguard process"):
            processor = open_processor(home, note)
            files = collect([Path(p) for p in paths] or [home.inbox])
            if not files:
                note(f"nothing to process in {home.inbox}")
                return
            count = {"n": 0}

            def show(result) -> None:
                count["n"] += 1
                _print_result(result, count["n"], len(files), as_json)

            results = run_batch(processor, files, workers=workers if workers is not None else home.settings.worker_count,
                                on_result=show)
    except HomeBusy as exc:
        raise click.ClickException(str(exc))
    except DiskFull as exc:
        raise click.ClickException(str(exc))
    totals: dict[str, int] = {}
    for r in results:
        totals[r.status] = totals.get(r.status, 0) + 1
    note("done: " + ", ".join(f"{n} {status}" for status, n in sorted(totals.items())))


@main.group()
def review() -> None:
    """Photos held for a person to look at."""


@review.command("list")
@home_option
def review_list(home_dir: str | None) -> None:
    """List photos waiting for review, with the reason."""
    from .review import list_review

    home = get_home(home_dir)
    items = list_review(home)
    if not items:
        click.echo("nothing waiting for review")
    for item in items:
        click.echo(f"{item.name}\t{item.source}\t{item.created}\t{item.reason}")


@review.command("release")
@home_option
@click.argument("name")
@click.option("--channel", "channels", multiple=True, help="Only this channel (repeatable; default: every channel).")
def review_release(home_dir: str | None, name: str, channels: tuple[str, ...]) -> None:
    """The manager has looked at NAME: move it to the outbox (audited)."""
    from .db import connect
    from .review import ReviewError, release

    home = get_home(home_dir)
    try:
        placed = release(home, connect(home.database), name, channels or None)
    except ReviewError as exc:
        raise click.ClickException(str(exc))
    for channel, path in placed.items():
        click.echo(f"{channel}: {path}")


@review.command("reject")
@home_option
@click.argument("name")
def review_reject(home_dir: str | None, name: str) -> None:
    """NAME is not to be shared: remove it from review (the original stays archived)."""
    from .db import connect
    from .review import ReviewError, reject

    home = get_home(home_dir)
    try:
        item = reject(home, connect(home.database), name)
    except ReviewError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"rejected {item.name} ({item.source})")


@main.command()
@home_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only from this day (YYYY-MM-DD).")
@click.option("--csv", "as_csv", is_flag=True, default=True, help="CSV on stdout (the only format for now).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None, help="Write to a file.")
def audit(home_dir: str | None, since, as_csv: bool, output: str | None) -> None:
    """Export the audit trail: per photo, per face, per channel what was done and why.

    Example: photoguard audit --since 2026-11-01 --csv > audit.csv
    """
    import sys

    from .audit import export_audit
    from .db import connect

    home = get_home(home_dir)
    conn = connect(home.database)
    day = since.date() if since else None
    if output:
        with open(output, "w", newline="", encoding="utf-8") as fh:
            n = export_audit(conn, fh, day)
        click.echo(f"{n} rows written to {output}", err=True)
    else:
        export_audit(conn, sys.stdout, day)


@main.command()
@home_option
@click.option("--days", type=int, default=None, help="Keep this many days (default: archive.retention_days).")
def purge(home_dir: str | None, days: int | None) -> None:
    """Delete archived originals older than the retention period."""
    from .audit import purge_archive
    from .db import connect

    home = get_home(home_dir)
    purged = purge_archive(home, connect(home.database), days)
    for item in purged:
        click.echo(f"deleted {item.path}")
    click.echo(f"{len(purged)} archived original(s) deleted")


# --- watcher commands (watch, status) ---

# --- manager commands (report, demo) ---
