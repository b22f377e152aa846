"""Processing photos: `photoguard process`, `reprocess`, `watch`, `purge` and `audit`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from photoguard.cli.common import _say_home, get_home, home_option, main
from photoguard.cli.home import _takedowns_now


def _print_result(result, index: int, total: int, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
        return
    detail = result.reason if result.status != "cleared" else result.face_summary()
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
    from photoguard.flow.batch import run_batch
    from photoguard.flow.recheck import recheck_outbox
    from photoguard.flow.results import DiskFull
    from photoguard.photos.inbox import collect

    with _processing(home_dir, "process", as_json, DiskFull) as (home, note, processor):
        files = collect([Path(p) for p in paths] or [home.inbox])
        if files and not processor.templates:
            note("warning: no child is enrolled (no reference photos on file): every face in these photos will "
                 "be obscured. Once children are enrolled, `photoguard reprocess --before-enrolment` processes "
                 "them again")
        if not files:
            note(f"nothing to process in {home.inbox}")
            for line in _takedowns_now(home):
                note(line)
            return
        count = {"n": 0}

        def show(result) -> None:
            count["n"] += 1
            _print_result(result, count["n"], len(files), as_json)

        results = run_batch(processor, files, workers=workers if workers is not None else home.settings.worker_count,
                            on_result=show)
        # `enrol` may have changed a consent while photos decided before it were being published.
        for change in recheck_outbox(processor):
            note(change.describe())
        for line in _takedowns_now(home):
            note(line)
    note(_done_line(r.status for r in results))


@contextmanager
def _processing(home_dir: str | None, command: str, as_json: bool, *errors: type[Exception]):
    """The home, a ``note`` for messages (stderr with --json) and a processor, under the home's lock;
    the errors a manager can act on (home busy, roster, model file, ``errors``) become plain messages."""
    from photoguard.engine.sface import ModelFileError
    from photoguard.flow.batch import open_processor
    from photoguard.store.lock import HomeBusy, hold_lock
    from photoguard.store.roster_csv import RosterError

    home = get_home(home_dir)
    note = lambda msg: click.echo(msg, err=as_json)  # noqa: E731
    _say_home(home, err=as_json)
    try:
        with hold_lock(home, f"photoguard {command}"):
            yield home, note, open_processor(home, note)
    except (HomeBusy, RosterError, ModelFileError, *errors) as exc:
        raise click.ClickException(str(exc))


def _done_line(outcomes) -> str:
    """'done: 3 cleared, 1 review' — how many photos ended each way."""
    from collections import Counter

    return "done: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(Counter(outcomes).items()))


@main.command()
@home_option
@click.argument("names", nargs=-1)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Every photo processed on or after this day (YYYY-MM-DD).")
@click.option("--child", "child", default=None, metavar="ID",
              help="Photos this child was recognised in, and photos with an unrecognised face processed before "
                   "the child's reference photos were on file.")
@click.option("--before-enrolment", is_flag=True, help="Photos processed while no child was enrolled.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per photo on stdout.")
def reprocess(home_dir: str | None, names: tuple[str, ...], since, child: str | None, before_enrolment: bool,
              as_json: bool) -> None:
    """Process photos again from their archived originals with today's roster and settings.

    For a child enrolled late, a consent given since, a changed setting. NAMES are the photos' names as
    dropped into the inbox. Their copies still in the outbox are replaced; a photo with a copy already
    collected or posted, or one in review, is left as it is (and named). Stop the watcher first.

    Example: photoguard reprocess --before-enrolment
    """
    from photoguard.flow.reprocess import (ReprocessError, interrupted, reprocess as run_reprocess, select_photos,
                                           to_json)
    from photoguard.flow.results import DiskFull

    if not (names or since or child or before_enrolment):
        raise click.UsageError("say which photos: NAME..., --since DATE, --child ID or --before-enrolment")
    with _processing(home_dir, "reprocess", as_json, ReprocessError, DiskFull) as (home, note, processor):
        if not processor.templates:
            note("warning: no child is enrolled, so every face is obscured again; enrol the children first "
                 "(put their reference photos in enrol/ and run `photoguard enrol`)")
        photos = select_photos(processor.conn, names, since.date() if since else None, child, before_enrolment)
        if not photos and not interrupted(processor.conn):
            note("no processed photo matches; nothing to do")
            return
        redone = run_reprocess(processor, photos)
    for item in redone:
        click.echo(to_json(item)) if as_json else click.echo(f"{item.outcome:<8} {item.describe()}")
    note(_done_line(item.outcome for item in redone))


@main.command()
@home_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only from this day (YYYY-MM-DD).")
@click.option("--csv", "as_csv", is_flag=True, default=True, help="CSV on stdout (the only format for now).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None, help="Write to a file.")
def audit(home_dir: str | None, since, as_csv: bool, output: str | None) -> None:
    """Export the audit trail for a spreadsheet: per photo, per face, per channel what was decided and why,
    every file put in an outbox (what it showed, collected / posted / re-made / taken down), and every event.

    Example: photoguard audit --since 2026-11-01 --csv > audit.csv
    """
    import io
    import sys

    from photoguard.flow.audit import export_audit
    from photoguard.store.db import connect

    home = get_home(home_dir)
    conn = connect(home.database)
    day = since.date() if since else None
    if output:
        with open(output, "w", newline="", encoding="utf-8") as fh:
            n = export_audit(conn, fh, day)
        click.echo(f"{n} rows written to {output}", err=True)
    else:
        # UTF-8 whatever the terminal's locale: the file is for a spreadsheet.
        sys.stdout.flush()
        text = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        export_audit(conn, text, day)
        text.flush()
        text.detach()


@main.command()
@home_option
@click.option("--days", type=int, default=None, help="Keep this many days (default: archive.retention_days).")
def purge(home_dir: str | None, days: int | None) -> None:
    """Delete archived originals older than the retention period."""
    from photoguard.flow.audit import purge_archive
    from photoguard.store.db import connect
    from photoguard.store.lock import HomeBusy, hold_lock

    home = get_home(home_dir)
    try:
        # Not while photos are being processed (a running watcher purges by itself once a day).
        with hold_lock(home, "photoguard purge"):
            conn = connect(home.database)
            try:
                purged = purge_archive(home, conn, days)
            finally:
                conn.close()
    except HomeBusy as exc:
        raise click.ClickException(str(exc))
    for item in purged:
        click.echo(f"deleted {item.path}")
    click.echo(f"{len(purged)} archived original(s) deleted")


@main.command()
@home_option
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds a file must stay unchanged (size and time) before it is taken.")
@click.option("--poll", is_flag=True, help="Poll the folders instead of relying on notifications (network shares).")
@click.option("--rescan", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds between full scans of inbox/ and enrol/ (catches anything notifications missed).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the 'workers' setting, 0 = cores).")
@click.option("--decode-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="A file unchanged this long that still does not decode is processed anyway (it goes to failed/).")
@click.option("--clock-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="For rehearsals and tests: take today's date and time from this file (e.g. 2026-12-01T09:00) "
                   "instead of the computer's clock.")
def watch(home_dir: str | None, settle: float, poll: bool, rescan: float, workers: int | None,
          decode_timeout: float, clock_file: Path | None) -> None:
    """Process photos as they arrive in inbox/ until stopped (Ctrl-C or SIGTERM).

    Changes to enrol/ (children.csv, reference photos) and to photoguard.toml take effect before the next
    photo. Once a day it deletes what `photoguard purge` deletes; empty inbox subfolders whose photos
    it took are removed after inbox.remove_empty_after_minutes.
    Log: stderr and .photoguard/logs/watch.log.

    Example: photoguard watch --home /srv/photoguard
    """
    from photoguard.flow.results import DiskFull
    from photoguard.flow.watch import WatchOptions, watch as run_watch
    from photoguard.store.lock import HomeBusy

    home = get_home(home_dir)
    _say_home(home, err=True)
    options = WatchOptions(settle=settle, poll=poll, rescan=rescan, workers=workers, decode_timeout=decode_timeout,
                           clock_file=clock_file)
    try:
        code = run_watch(home, options)
    except (HomeBusy, DiskFull) as exc:
        raise click.ClickException(str(exc))
    raise SystemExit(code)
