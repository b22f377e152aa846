"""The children: `photoguard enrol` (children.csv and the reference photos into the database) and `photoguard
children`.
"""

from __future__ import annotations

import click

from photoguard.cli.common import _open_roster_db, _say_home, _standing_cells, _table, get_home, home_option, main
from photoguard.cli.home import _takedowns_now


@main.command()
@home_option
@click.option("--accept-largest", is_flag=True,
              help="Reference photos with another face behind the child (a poster, a picture): use the largest face.")
def enrol(home_dir: str | None, accept_largest: bool) -> None:
    """Read enrol/children.csv and enrol/<id>/ photos: store consents, build templates, erase withdrawn ones."""
    from datetime import date

    from photoguard.flow.enrol import enrol as enrol_home
    from photoguard.store.children import child_standing
    from photoguard.store.roster_file import RosterFileError

    home = get_home(home_dir)
    _say_home(home, err=True)
    conn = _open_roster_db(home)

    def progress(i: int, total: int, rel: str) -> None:
        click.echo(f"checking reference photo {i}/{total}: {rel}", err=True)

    from photoguard.engine.sface import ModelFileError

    try:
        enrolled = enrol_home(home, conn, progress=progress, accept_largest=accept_largest)   # the same sync + outbox re-check as the web pages
    except RosterFileError as exc:
        raise click.ClickException(str(exc))
    except ModelFileError as exc:
        raise click.ClickException(f"{exc}\nConsents were updated; reference photos were not checked.")
    result = enrolled.sync
    today = date.today()
    for p in result.problems:
        click.secho(f"problem: {p}", fg="red", err=True)
    for w in result.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    channels = list(home.settings.channels)
    rows, problems = [], []
    bad_lines = {p.line for p in result.problems}
    for s in result.children:
        c = s.consent
        standing = child_standing(c, s.templates, channels, today)
        photos = f"{len(s.accepted)} ok, {len(s.rejected)} rejected" if s.not_matched is None else f"{s.photo_files} not used"
        rows.append([c.child_id, c.name, *_standing_cells(standing, channels), photos, str(s.templates)])
        problems += [(c.child_id, p) for p in standing.problems]
        if standing.problems:
            bad_lines.add(s.line)
    for line in _table(["child", "name", "matching", *channels, "expires", "status", "photos", "templates"], rows):
        click.echo(line)
    for s in result.children:
        for p in s.rejected:
            click.echo(f"  rejected {p.path}: {p.reason}")
        if s.not_matched is not None and s.photo_files:
            click.echo(f"  {s.child_id}: photos not used, no templates kept ({s.not_matched})")
        if s.warning and s.templates:
            click.secho(f"  warning {s.child_id}: {s.warning}", fg="yellow")
    for child_id, problem in problems:
        click.secho(f"  problem {child_id}: {problem}", fg="red")
    click.echo(f"{len(result.children)} children, {result.photos_checked} photos checked, "
               f"{result.photos_unchanged} unchanged, {result.templates_erased} templates erased, "
               f"{len(result.changes)} consent changes recorded ({result.seconds:.1f} s)")
    if result.scrub_pending:
        click.secho("warning: another PhotoGuard process is reading the database, so erased templates may stay in "
                    "its journal file until it finishes. Run `photoguard enrol` again later.", fg="yellow", err=True)
    if result.reduced:
        click.echo(f"consent reduced for: {', '.join(sorted(result.reduced))}")
    for change in enrolled.outbox:
        click.echo(change.describe())
    for line in _takedowns_now(home):
        click.echo(line)
    # Every good line was enrolled; the exit code tells a script (or the service) that some need fixing.
    need_fixing = len(bad_lines)
    if need_fixing:
        click.secho(f"{need_fixing} line(s) of the roster need fixing, or that child's reference photos do "
                    "(see 'problem' above); every other child was enrolled.", fg="red", err=True)
        raise SystemExit(1)


@main.group(invoke_without_command=True)
@home_option
@click.option("--expiring", "within", type=int, default=None, metavar="DAYS",
              help="Only consents that end within DAYS days (expired ones included).")
@click.pass_context
def children(ctx: click.Context, home_dir: str | None, within: int | None) -> None:
    """The roster as last enrolled: consent per channel and templates. `children show ID` for one child."""
    ctx.obj = home_dir
    if ctx.invoked_subcommand is not None:
        return
    from datetime import date

    from photoguard.store.children import child_standing, expiring, list_children

    home = get_home(home_dir)
    conn = _open_roster_db(home)
    today = date.today()
    channels = list(home.settings.channels)
    if within is not None:
        found = expiring(conn, within, today)
        if not found:
            click.echo(f"no consent ends within {within} days")
        for consent, days in found:
            when = (f"EXPIRED {-days} day{'s' if days != -1 else ''} ago" if days < 0
                    else "last valid day is today" if days == 0 else f"ends in {days} day{'s' if days != 1 else ''}")
            click.echo(f"{consent.child_id}  {consent.name}  expires {consent.expires.isoformat()}  {when}")
        return
    rows, problems = [], []
    for r in list_children(conn):
        standing = child_standing(r.consent, r.templates, channels, today)
        rows.append([r.consent.child_id, r.consent.name, *_standing_cells(standing, channels), str(r.templates)])
        problems += [f"problem {r.consent.child_id}: {p}" for p in standing.problems]
    if not rows:
        click.echo("no children enrolled: fill in enrol/children.csv and run `photoguard enrol`")
        return
    for line in _table(["child", "name", "matching", *channels, "expires", "status", "templates"], rows):
        click.echo(line)
    for line in problems:
        click.secho(line, fg="red")


@children.command("show")
@home_option
@click.argument("child_id")
@click.pass_context
def children_show(ctx: click.Context, home_dir: str | None, child_id: str) -> None:
    """One child: consent, reference photos and the history of consent changes."""
    from datetime import date

    from photoguard.rules.consent import may_show
    from photoguard.store.children import child_history, child_standing, history_words, near_ids
    from photoguard.store.localtime import when_words
    from photoguard.store.roster import compared_photos, load_consents
    from photoguard.store.roster_csv import MAX_ID_CHARS, id_problem

    wrong = id_problem(child_id)
    if wrong and len(child_id) > MAX_ID_CHARS:
        raise click.ClickException(f"{wrong}: no child has such an id. `photoguard children` lists them.")
    home = get_home(home_dir or ctx.obj)
    conn = _open_roster_db(home)
    consents = load_consents(conn)
    consent = consents.get(child_id)
    history = child_history(conn, child_id)
    if consent is None and not history:
        near = near_ids(conn, child_id)
        hint = f" Did you mean {' or '.join(near)}?" if near else ""
        raise click.ClickException(f"no child '{child_id}' on the roster.{hint} `photoguard children` lists them.")
    today = date.today()
    if consent is None:
        click.echo(f"{child_id}: not on the roster any more (no consent, no templates)")
    else:
        n = len(compared_photos(conn, child_id))
        standing = child_standing(consent, n, home.settings.channels, today)
        click.echo(f"{consent.child_id}  {consent.name}")
        click.echo(f"  face matching: {'yes' if standing.face_matching else 'no'}")
        expires = {"-": "no end date"}.get(standing.expires, standing.expires)
        click.echo(f"  consent ends: {expires}")
        for problem in standing.problems:
            click.echo(f"  PROBLEM: {problem}")
        for ch in home.settings.channels:
            verdict = may_show(consent, ch, today)
            click.echo(f"  {ch}: {'shown' if verdict.allowed else 'obscured'} ({verdict.reason})")
        for r in conn.execute("SELECT path, status, reason FROM reference_photos WHERE child_id = ? ORDER BY path",
                              (child_id,)):
            click.echo(f"  photo {r['path']}: {r['status']}{': ' + r['reason'] if r['reason'] else ''}")
        click.echo(f"  templates: {n}")
    click.echo("history:")
    for h in history:
        click.echo(f"  {when_words(h.changed_at)}  {history_words(h)}")
