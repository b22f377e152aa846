"""The home and the day: `photoguard init`, `config`, `status`, `report`, `demo` and `serve`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from photoguard.cli.common import _say_home, get_home, home_option, main
from photoguard.cli.outbox import _takedown_lines
from photoguard.store.config import ConfigError, effective_settings
from photoguard.store.home import Home, HomeError, open_home
from photoguard.store.starter import require_home


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
def init(folder: str) -> None:
    """Make FOLDER a PhotoGuard home: the folders, a starter photoguard.toml and enrol/children.csv.

    Example: photoguard init /srv/photoguard
    """
    from photoguard.store.starter import init_home

    try:
        done = init_home(Path(folder))
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc))
    home = done.home
    click.echo(f"{home.root} {'was already' if done.already else 'is now'} a PhotoGuard home")
    for path in done.written:
        click.echo(f"  wrote {path}")
    where, cmd = str(home.root), _command()
    # The README's first day, in the same order.
    click.echo("next:")
    click.echo(f"  1. open your pages: {cmd} serve --home {where}   then http://127.0.0.1:8470/ in the web browser "
               "(choose a PIN the first time)")
    click.echo("  2. add the children on the Children page, with 3 or more clear photos of each child's face")
    click.echo(f"     (or fill in {home.roster_csv}, put the photos in {home.enrol}/<id>/ and run "
               f"{cmd} enrol --home {where})")
    click.echo(f"  3. start watching the inbox: {cmd} watch --home {where}    "
               f"(at every start of the computer: sudo photoguard service install --home {where})")
    click.echo(f"  staff drop photos in {home.inbox}/ and cleared copies appear in {home.outbox}/<channel>/")


@main.command()
@home_option
def config(home_dir: str | None) -> None:
    """Print the effective settings and where each came from."""
    home = get_home(home_dir)
    click.echo(f"home: {home.root}")
    for key, value, source in effective_settings(home.settings):
        click.echo(f"{key} = {value!r}    # {source}")
    for key, source in sorted(home.settings.sources.items()):
        if source.startswith("ignored"):
            click.echo(f"# {key} in photoguard.toml is {source}")


@main.command()
@home_option
@click.option("--recent", type=click.IntRange(min=0), default=10, show_default=True, help="How many recent photos to list.")
def status(home_dir: str | None, recent: int) -> None:
    """Is a watcher running, what is waiting, what happened today (safe while the watcher runs)."""
    from photoguard.flow.watch_status import watch_status

    try:
        home = open_home(require_home(home_dir))
        settings_problem = None
    except ConfigError as exc:
        # The watcher keeps running with the settings it had: say what is wrong, and still show the rest.
        from photoguard.store.config import Settings

        home, settings_problem = Home(require_home(home_dir), Settings()), str(exc)
    except HomeError as exc:
        raise click.ClickException(str(exc))
    _say_home(home)
    if settings_problem:
        click.secho(f"settings: photoguard.toml cannot be used: {settings_problem} A running watcher carries on "
                    "with the settings it had; other commands refuse to start until the file is fixed.", fg="red")
    st = watch_status(home, recent)
    for line in _takedowns_now(home):
        click.secho(line, fg="red") if line.startswith("take down") else click.echo(line)
    early, unfinished = _to_reprocess(home)
    for line in status_lines(st, settings_problem=settings_problem, early=early, unfinished=unfinished):
        click.echo(line)


# What each result is called where the manager reads it (the folder it went to, in her words).
_RESULT_WORDS = {"cleared": "cleared", "released": "released", "review": "to review", "failed": "in failed/",
                 "duplicate": "duplicate"}


def status_lines(st, *, settings_problem: str | None = None, early: int = 0,
                 unfinished: Sequence[str] = ()) -> list[str]:
    """``photoguard status`` in words: calm for every normal state (nothing that reads like a crash)."""
    from photoguard.flow.watch_status import not_taken_words
    from photoguard.store.localtime import when_words

    lines = []
    if st.disk_full:
        lines.append("disk: full — PhotoGuard cannot take photos in or change anything until there is room. Free "
                     "some space (e.g. posted photos in the outbox); photos wait in the inbox")
    if st.watcher_pid is None:
        lines.append("watcher: not running (start it with `photoguard watch`, or at boot with `photoguard service install`)")
    elif st.watcher is not None:
        w = st.watcher
        busy = w.get("in_flight", 0)
        waiting = w.get("waiting", 0)
        doing = (f"{busy} photo(s) in hand, {waiting} waiting" if busy or waiting else "nothing to do right now")
        lines.append(f"watcher: running since {when_words(w.get('started'))} with {w.get('workers')} worker(s), "
                     f"{w.get('state')}; {doing}")
        if w.get("settings_problem") and not settings_problem:
            lines.append("watcher: still on its earlier settings — photoguard.toml could not be used "
                         f"({w['settings_problem']}); it reads the file again when it changes")
    else:
        lines.append("watcher: another PhotoGuard command is using this home just now (it finishes by itself)")
    lines.append(f"inbox: {st.inbox_waiting} file(s) waiting")
    if st.inbox_not_taken:
        lines.append(f"inbox: {not_taken_words(st.inbox_not_taken)}")
    if early:
        lines.append(f"{early} photo(s) were processed before any child was enrolled, so every face in them is "
                     "obscured: run `photoguard reprocess --before-enrolment` to process them again with today's roster")
    if unfinished:
        lines.append(f"{len(unfinished)} photo(s) were taken out of the outbox to be made again but not finished: "
                     f"{', '.join(unfinished[:5])} — run `photoguard reprocess {unfinished[0]}` to finish them")
    if st.unfinished:
        names = ", ".join(name for name, _ in st.unfinished[:10]) + (" ..." if len(st.unfinished) > 10 else "")
        if st.watcher_pid is not None:
            lines.append(f"being processed now: {len(st.unfinished)} photo(s): {names}")
        else:
            lines.append(f"{len(st.unfinished)} photo(s) were stopped half way; PhotoGuard finishes them when it "
                         f"next starts (nothing is lost): {names}")
    counts = dict(st.today)
    words = [f"{counts.pop('cleared', 0)} cleared", f"{counts.pop('review', 0)} held for review",
             f"{counts.pop('failed', 0)} not usable (in failed/)", f"{counts.pop('duplicate', 0)} duplicate(s)"]
    words += [f"{n} {_RESULT_WORDS.get(k, k)}" for k, n in counts.items()]
    lines.append("today: " + ", ".join(words))
    if st.recent:
        lines.append("last photos:")
        for item in st.recent:
            lines.append(f"  {when_words(item.at)}  {_RESULT_WORDS.get(item.status, item.status):<10} {item.name}"
                         + (f" — {item.detail}" if item.detail else ""))
    return lines


def _to_reprocess(home: Home) -> tuple[int, list[str]]:
    """(photos processed before any child was enrolled, names of photos whose reprocess did not finish)."""
    from photoguard.flow.reprocess import before_enrolment_count, interrupted
    from photoguard.store import db

    conn = db.connect(home.database, snapshot_when_full=True)
    try:
        return before_enrolment_count(conn), [r["source"] for r in interrupted(conn)]
    finally:
        conn.close()


def _takedowns_now(home: Home) -> list[str]:
    """The take-down list as lines (empty when there is nothing to take down)."""
    from photoguard.flow.outbox import takedown_list
    from photoguard.store import db

    conn = db.connect(home.database, snapshot_when_full=True)
    try:
        items = takedown_list(conn, home=home)
    finally:
        conn.close()
    return _takedown_lines(items) if items else []


@main.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Report on photos processed from this day on (YYYY-MM-DD). Default: today only.")
@click.option("--open", "open_report", is_flag=True, help="Open the report in the web browser when it is written.")
@home_option
def report(since, open_report: bool, home_dir: str | None) -> None:
    """Write an HTML report of the day's photos: what was cleared, held for review or failed, and why.

    The report shows children unobscured, so it is kept private in .photoguard/reports/.
    Example: photoguard report --since 2026-11-01 --open
    """
    from datetime import date

    from photoguard.flow.report import gather_report
    from photoguard.flow.report_page import write_report
    from photoguard.store import db

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        data = gather_report(home, conn, since.date() if since else date.today())
        path = write_report(home, data)
    finally:
        conn.close()
    click.echo(f"{data.count('cleared', 'released')} cleared, {data.count('review')} waiting for review, "
               f"{len(data.failed)} failed", err=True)
    click.echo(str(path))
    click.echo("This report shows children's faces unobscured: keep it private.", err=True)
    if open_report:
        click.launch(str(path))


@main.command()
@click.option("--home", "home_dir", type=click.Path(file_okay=False), default="photoguard-demo", show_default=True,
              help="A new, empty folder for the demo home.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: number of cores).")
def demo(home_dir: str, workers: int | None) -> None:
    """Try PhotoGuard in a minute: a demo home from the bundled samples and roster, processed, with a report.

    Example: uv run photoguard demo
    """
    from datetime import date

    from photoguard.flow.batch import open_processor, run_batch
    from photoguard.flow.demo import DemoError, build_demo_home, demo_data_root
    from photoguard.flow.report_page import build_report
    from photoguard.photos.inbox import collect
    from photoguard.store.lock import hold_lock

    try:
        home = build_demo_home(Path(home_dir), demo_data_root())
    except (DemoError, ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc))
    click.echo(f"demo home: {home.root}")
    click.echo("enrolling the demo roster (ada: every channel, grace: facebook only, sam: no consent) ...")
    with hold_lock(home, "photoguard demo"):
        processor = open_processor(home, click.echo)
        files = collect([home.inbox])
        click.echo(f"processing {len(files)} sample photos ...")
        results = run_batch(processor, files, workers=workers or home.settings.worker_count)
    channels = home.settings.channels
    rows = [["photo", "result", *channels]]
    for r in sorted(results, key=lambda r: r.source):
        cells = [r.source, r.status]
        for c in channels:
            shown = sorted(f.child or "?" for f in r.faces if f.actions.get(c) == "shown")
            hidden = sum(1 for f in r.faces if f.actions.get(c) == "obscured")
            cells.append(f"shown {','.join(shown) or '-'}; {hidden} obscured" if r.status == "cleared" else "")
        if r.status != "cleared":
            cells.append(r.reason or "")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(channels) + 2)]
    click.echo("")
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                   + (f"  {row[-1]}" if len(row) > len(widths) else ""))
    report_path = build_report(home, processor.conn, date.today())
    click.echo("")
    click.echo(f"outbox:  {home.outbox}/<channel>/")
    click.echo(f"report:  {report_path}   (shows children unobscured: private)")
    click.echo("")
    click.echo("See it in the web browser (choose a PIN the first time):")
    click.echo(f"  {_command()} serve --home {home.root}")


def _command() -> str:
    """How to run photoguard again the way this one was run: `uv run photoguard` when started by `uv run`
    (from a checkout, where `photoguard` alone is not on the PATH), else the installed command."""
    import os

    return "uv run photoguard" if os.environ.get("UV") else "photoguard"


@main.command()
@home_option
@click.option("--port", type=click.IntRange(1, 65535), default=8470, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this computer itself (127.0.0.1) lets others on the network "
                   "reach the manager's pages: only with a reason.")
def serve(home_dir: str | None, port: int, host: str) -> None:
    """The manager's pages in the web browser: photos to check, children, ready to post.

    Example: photoguard serve --home /srv/photoguard   (then open http://127.0.0.1:8470/)
    """
    from photoguard.web.serve import ServeError, serve as run

    home = get_home(home_dir)
    _say_home(home, err=True)
    try:
        run(home, host=host, port=port, echo=lambda m: click.echo(m, err=True))
    except ServeError as exc:
        raise click.ClickException(str(exc))
