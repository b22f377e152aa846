"""The ``photoguard`` command: a thin layer over the library; every command takes ``--home``."""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from pathlib import Path  # noqa: E402

import click  # noqa: E402

from photoguard.store.config import ConfigError, effective_settings  # noqa: E402
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
    where = str(home.root)
    click.echo("next:")
    click.echo(f"  1. fill in {home.roster_csv} (one line per child) and put 3 or more photos of each child "
               f"in {home.enrol}/<id>/")
    click.echo(f"  2. photoguard enrol --home {where}")
    click.echo(f"  3. photoguard watch --home {where}    (at boot: sudo photoguard service install --home {where})")
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


# --- roster commands (enrol, children) ---


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
    from photoguard.store.roster import load_consents
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
        n = conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = ?", (child_id,)).fetchone()[0]
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


# --- engine commands (calibrate, evaluate) ---


@main.command()
@home_option
@click.option("--apply", "apply_", is_flag=True, help="Write the suggested match.similarity to photoguard.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def calibrate(home_dir: str | None, apply_: bool, as_json: bool) -> None:
    """Fit match.similarity to the enrolled children for the match.max_false_show target."""
    import json

    from photoguard.evaluate.calibrate import calibrate as fit, format_calibration
    from photoguard.store import db
    from photoguard.store.config import write_setting
    from photoguard.store.roster import load_templates

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        templates = load_templates(conn)
    finally:
        conn.close()
    if not templates:
        raise click.ClickException("no children are enrolled for face matching yet (or their reference photos were "
                                   "made with an older face model). Run 'photoguard enrol' first.")
    s = home.settings
    cal = fit(templates, margin=s.match_margin, max_false_show=s.match_max_false_show)
    if as_json:
        click.echo(json.dumps(cal.to_dict(), indent=2))
    else:
        for line in format_calibration(cal, s.match_similarity):
            click.echo(line)
    if apply_:
        if cal.threshold == s.match_similarity:
            click.echo(f"match.similarity is already {cal.threshold:.2f}", err=as_json)
        else:
            path = write_setting(home.root, "match.similarity", cal.threshold)
            click.echo(f"wrote match.similarity = {cal.threshold:.2f} to {path}", err=as_json)


@main.group()
def evaluate() -> None:
    """Measure the face engine on labelled photos (for tuning; not part of daily use)."""


def _engine_settings(home_dir: str | None):
    """Settings of the home if one is given, else the defaults (evaluation needs no home)."""
    from photoguard.store.config import Settings, load_settings

    if home_dir is None:
        return Settings()
    try:
        return load_settings(require_home(home_dir))
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc))


def _progress(line: str) -> None:
    click.echo(line, err=True)


@evaluate.command("detection")
@click.argument("xml_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--extra", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A photo with no faces at all (boxes found on it are counted). Repeatable.")
@click.option("--no-hog", is_flag=True, help="CenterFace only.")
@click.option("--threshold", type=float, default=None, help="Detector score threshold (default: detect.threshold).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), envvar="PHOTOGUARD_HOME", default=None,
              help="Take settings from this home (default: built-in defaults).")
def evaluate_detection_cmd(xml_files, extra, no_hog, threshold, as_json, home_dir) -> None:
    """Detection recall and false boxes on dlib imglab XML box files."""
    import json

    from photoguard.engine.detect import FaceDetector
    from photoguard.evaluate.faces import EvaluationError, evaluate_detection, format_detection, read_imglab

    settings = _engine_settings(home_dir)
    try:
        labelled = [item for xml in xml_files for item in read_imglab(Path(xml))]
    except EvaluationError as exc:
        raise click.ClickException(str(exc))
    detector = FaceDetector(threshold if threshold is not None else settings.detect_threshold, use_hog=not no_hog)
    report = evaluate_detection(detector, labelled, [Path(p) for p in extra], progress=_progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in format_detection(report):
            click.echo(line)


@evaluate.command("identity")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--roster-sizes", default="10,30,56", show_default=True,
              help="Simulated nursery rosters of these sizes (a third of each never enrolled).")
@click.option("--runs", type=int, default=None, help="Random rosters per size (default: 20, 10, 5 by size).")
@click.option("--window", type=int, default=2, show_default=True,
              help="Years within which a child's reference and test photos lie (ages from file names).")
@click.option("--k", "k", type=int, default=None,
              help="Instead of rosters: enrol the first K photos of every person and test the rest.")
@click.option("--holdout", multiple=True,
              help="With --k: a person never enrolled (their faces must all come out unknown). Repeatable.")
@click.option("--each-held-out", is_flag=True, help="With --k: also run once with each person held out in turn.")
@click.option("--similarity", "threshold", type=float, default=None, help="Default: match.similarity.")
@click.option("--curve", default="", help="Rosters only: also run them at these similarities, e.g. 0.55,0.58,0.62.")
@click.option("--margin", type=float, default=None, help="Default: match.margin.")
@click.option("--min-face-px", type=int, default=None, help="Default: match.min_face_px.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), envvar="PHOTOGUARD_HOME", default=None,
              help="Take settings from this home (default: built-in defaults).")
def evaluate_identity_cmd(folder, roster_sizes, runs, window, k, holdout, each_held_out, threshold, curve,
                          margin, min_face_px, as_json, home_dir) -> None:
    """Keep %, wrong shows (leaks) and unknowns on a folder of <child>/ photo folders."""
    import json
    from dataclasses import asdict

    from photoguard.engine.detect import FaceDetector
    from photoguard.evaluate.faces import (EvaluationError, encode_folder, format_identity, identity_report,
                                           merge_reports)
    from photoguard.evaluate.rosters import curve as roster_curve, format_curve, format_rosters, simulate

    settings = _engine_settings(home_dir)
    rule = dict(threshold=settings.match_similarity if threshold is None else threshold,
                margin=settings.match_margin if margin is None else margin,
                min_face_px=settings.min_face_px if min_face_px is None else min_face_px)
    try:
        sizes = [int(x) for x in roster_sizes.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter("a list of whole numbers like 10,30,56", param_hint="--roster-sizes")
    try:
        curve_at = [float(x) for x in curve.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter("a list of similarities like 0.55,0.58,0.62", param_hint="--curve")
    if k is not None and k < 1:
        raise click.BadParameter("must be at least 1", param_hint="--k")
    try:
        photos = encode_folder(FaceDetector(settings.detect_threshold), Path(folder), _progress)
        if k is not None or holdout or each_held_out:
            fixed = dict(k=k or 1, **rule)
            report = identity_report(photos, holdout=holdout, **fixed)
            if each_held_out:
                people = sorted({p.person for p in photos})
                report = merge_reports([report] + [identity_report(photos, holdout=[p], **fixed) for p in people])
            if as_json:
                click.echo(json.dumps(report.to_dict(), indent=2))
            else:
                for line in format_identity(report):
                    click.echo(line)
            if report.wrong_keeps:
                raise SystemExit(1)
            return
    except EvaluationError as exc:
        raise click.ClickException(str(exc))
    plan = [(size, runs or (20 if size <= 10 else 10 if size <= 30 else 5)) for size in sizes]
    results = [simulate(photos, size, n, window=window, seed=size, ask_from=settings.match_ask_from, **rule)
               for size, n in plan]
    # The curve is for reading the trade-off; only the rule in force decides the exit status.
    rows = roster_curve(photos, plan, curve_at, margin=rule["margin"], min_face_px=rule["min_face_px"],
                        window=window)
    if as_json:
        click.echo(json.dumps([asdict(r) | {"keep_rate": r.keep_rate, "asked_rate": r.asked_rate,
                                            "similarity": rule["threshold"], "ask_from": settings.match_ask_from}
                               for r in results]
                              + [asdict(r) | {"keep_rate": r.keep_rate, "similarity": t}
                                 for t, rs in rows for r in rs], indent=2))
    else:
        for line in format_rosters(results, rule["threshold"], rule["margin"], rule["min_face_px"],
                                   settings.match_ask_from):
            click.echo(line)
        for line in format_curve(rows):
            click.echo(line)
    if any(r.wrong for r in results):
        raise SystemExit(1)


# --- processing commands (process, review, audit, purge) ---


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


@main.group()
def review() -> None:
    """Photos held for a person to look at."""


def _review_call(home_dir: str | None, call):
    """Run ``call(home, conn)`` with a review error shown as a message, not a traceback."""
    from photoguard.flow.review import ReviewError
    from photoguard.store.db import connect

    home = get_home(home_dir)
    conn = connect(home.database)
    try:
        return call(home, conn)
    except ReviewError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()


@review.command("list")
@home_option
def review_list(home_dir: str | None) -> None:
    """List photos waiting for review, oldest first, with the reason."""
    from photoguard.flow.review import review_queue
    from photoguard.store.localtime import when_words

    items = _review_call(home_dir, review_queue)
    if not items:
        click.echo("nothing waiting for review")
    for item in items:
        click.echo(f"{item.name}\t{item.source}\theld {when_words(item.held_at)}\t{item.reason}")


@review.command("show")
@home_option
@click.argument("name")
def review_show(home_dir: str | None, name: str) -> None:
    """Why NAME is held: each face, who it is, where, and what happens to it on each channel."""
    from photoguard.flow.review import review_detail
    from photoguard.store.localtime import when_words

    detail = _review_call(home_dir, lambda home, conn: review_detail(home, conn, name))
    item = detail.item
    click.echo(f"{item.name} ({item.source}), held {when_words(item.held_at)}: {item.reason}")
    if detail.problem:
        click.echo(f"  cannot be released: {detail.problem}")
    if not detail.faces:
        click.echo("  no faces")
    for face in detail.faces:
        click.echo(f"  face {face.number}: {face.reason}")
        for outcome in face.channels:
            click.echo(f"      {outcome.channel}: {'shown' if outcome.shown else 'obscured'} ({outcome.why})")
        if face.question:
            answer = f"photoguard review confirm {shlex.quote(item.name)} {face.number} {face.asked_about or 'CHILD'}"
            click.echo(f"      PhotoGuard asks: {face.question} To answer: {answer}")
    for edit in detail.edits:
        click.echo(f"  changed: {edit}")


@review.command("obscure")
@home_option
@click.argument("name")
@click.argument("face", type=int)
def review_obscure(home_dir: str | None, name: str, face: int) -> None:
    """Obscure face number FACE of NAME on every channel (numbers as `review show` prints them)."""
    from photoguard.flow.review import obscure_face, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: obscure_face(home, conn, name, face, actor=os_actor())))


@review.command("confirm")
@home_option
@click.argument("name")
@click.argument("face", type=int)
@click.argument("child")
def review_confirm(home_dir: str | None, name: str, face: int, child: str) -> None:
    """Face FACE of NAME is CHILD (an id from children.csv): shown only where CHILD's consent allows today."""
    from photoguard.flow.review import confirm_face, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: confirm_face(home, conn, name, face, child, actor=os_actor())))


@review.command("box")
@home_option
@click.argument("name")
@click.argument("box", nargs=4, type=int, metavar="LEFT TOP RIGHT BOTTOM")
def review_box(home_dir: str | None, name: str, box: tuple[int, int, int, int]) -> None:
    """Obscure an area of NAME the detector missed (pixels of the upright photo) on every channel."""
    from photoguard.flow.review import add_box, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: add_box(home, conn, name, box, actor=os_actor())))


@review.command("undo-edit")
@home_option
@click.argument("name")
def review_undo_edit(home_dir: str | None, name: str) -> None:
    """Take back your last change (obscure, confirm, box) to NAME."""
    from photoguard.flow.review import os_actor, undo_edit

    click.echo(_review_call(home_dir, lambda home, conn: undo_edit(home, conn, name, actor=os_actor())))


@review.command("preview")
@home_option
@click.argument("name")
@click.option("--channel", required=True, help="The channel to preview.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the JPEG.")
def review_preview(home_dir: str | None, name: str, channel: str, output: str) -> None:
    """Write exactly the picture that releasing NAME to CHANNEL today would publish."""
    from photoguard.flow.review import render_preview

    data = _review_call(home_dir, lambda home, conn: render_preview(home, conn, name, channel))
    Path(output).write_bytes(data)
    click.echo(f"{channel} preview of {name}: {output}")


@review.command("release")
@home_option
@click.argument("name")
@click.option("--channel", "channels", multiple=True, help="Only this channel (repeatable; default: every channel).")
def review_release(home_dir: str | None, name: str, channels: tuple[str, ...]) -> None:
    """Publish NAME: each channel gets the photo rendered again from the original, with every face
    obscured whose child has no consent for that channel today (audited)."""
    from photoguard.flow.release import release
    from photoguard.flow.review import os_actor

    done = _review_call(home_dir, lambda home, conn: release(home, conn, name, channels or None, actor=os_actor()))
    for channel, path in done.files.items():
        click.echo(f"{channel}: {path}")


@review.command("reject")
@home_option
@click.argument("name")
def review_reject(home_dir: str | None, name: str) -> None:
    """NAME is not to be shared: remove it from review (the original stays archived)."""
    from photoguard.flow.release import reject
    from photoguard.flow.review import os_actor

    item = _review_call(home_dir, lambda home, conn: reject(home, conn, name, actor=os_actor()))
    click.echo(f"rejected {item.name} ({item.source})")


@review.command("undo")
@home_option
def review_undo(home_dir: str | None) -> None:
    """Take back the last release or rejection while its outbox files are still uncollected."""
    from photoguard.flow.release import undo_last
    from photoguard.flow.review import os_actor

    done = _review_call(home_dir, lambda home, conn: undo_last(home, conn, actor=os_actor()))
    what = "release" if done.kind == "released" else "rejection"
    click.echo(f"{done.item.name} ({done.item.source}) is back in review; its {what} was taken back")
    for path in done.removed:
        click.echo(f"  removed from the outbox: {path}")


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


# --- outbox commands (posted, takedown) ---


def _actor(by: str | None) -> str:
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "manager"


def _takedown_lines(items) -> list[str]:
    lines = [f"take down: {len(items)} photo(s) posted or collected show a child whose consent has gone:"]
    lines += [f"  {item.describe()}" for item in items]
    lines.append("  once a photo is down, mark it: photoguard takedown done NUMBER")
    return lines


@main.command()
@home_option
@click.argument("name", required=False)
@click.option("--channel", default=None, help="The channel it was posted on (facebook, instagram, ...).")
@click.option("--by", "by", default=None, help="Who posted it (default: your login name).")
@click.option("--when", "when", type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]), default=None,
              help="When it was posted, if not just now (YYYY-MM-DD HH:MM).")
@click.option("--list", "list_only", is_flag=True, help="Only list the photos in the outbox, with their numbers.")
def posted(home_dir: str | None, name: str | None, channel: str | None, by: str | None, when, list_only: bool) -> None:
    """Mark photo NAME (its file name in outbox/CHANNEL, or #NUMBER) as posted on CHANNEL.

    If a parent later withdraws consent, posted photos showing their child are on the take-down list.
    Collecting a photo (taking it out of the outbox folder) is noticed by itself.

    Example: photoguard posted picnic.jpg --channel facebook
    """
    from photoguard.flow.outbox import OutboxError, list_outbox, mark_posted, when_words
    from photoguard.store import db

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        if list_only or name is None:
            photos = list_outbox(home, conn, channel)
            if not photos:
                click.echo("the outbox is empty" if channel is None else f"outbox/{channel} is empty")
            for p in photos:
                state = f"posted {when_words(p.posted)} by {p.posted_by}" if p.posted else "not posted yet"
                source = f" (from {p.source})" if Path(p.source).stem != Path(p.name).stem else ""
                click.echo(f"#{p.id}  {p.channel}  {p.shown_name}{source}  in the outbox since {when_words(p.created)}  "
                           f"{state}")
            return
        if channel is None:
            raise click.ClickException(f"say where it was posted: photoguard posted {name} --channel "
                                       f"{home.settings.channels[0]} (channels: {', '.join(home.settings.channels)})")
        photo: int | str = int(name[1:]) if name.startswith("#") and name[1:].isdigit() else name
        item = mark_posted(home, conn, photo, channel, _actor(by), when)
    except OutboxError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()
    click.echo(f"#{item.id} {item.channel}: {item.shown_name} marked posted {when_words(item.posted)} by {item.posted_by}")


@main.group(invoke_without_command=True)
@home_option
@click.option("--child", "child_id", default=None, help="Only photos showing this child (roster id).")
@click.pass_context
def takedown(ctx: click.Context, home_dir: str | None, child_id: str | None) -> None:
    """Photos already posted or collected that show a child whose consent has gone: take them down.

    Each stays on the list until marked: photoguard takedown done NUMBER
    """
    ctx.obj = home_dir
    if ctx.invoked_subcommand is not None:
        return
    from photoguard.flow.outbox import takedown_list
    from photoguard.store import db

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        items = takedown_list(conn, child_id, home=home)
    finally:
        conn.close()
    if not items:
        click.echo("nothing to take down" + (f" for {child_id}" if child_id else ""))
        return
    for line in _takedown_lines(items):
        click.echo(line)


@takedown.command("done")
@home_option
@click.argument("numbers", nargs=-1, required=True)
@click.option("--by", "by", default=None, help="Who took it down (default: your login name).")
@click.pass_context
def takedown_done(ctx: click.Context, home_dir: str | None, numbers: tuple[str, ...], by: str | None) -> None:
    """Mark photos NUMBER... (from `photoguard takedown`) as taken down."""
    from photoguard.flow.outbox import OutboxError, mark_taken_down, takedown_list
    from photoguard.store import db

    home = get_home(home_dir or ctx.obj)
    conn = db.connect(home.database)
    try:
        listed = {item.file_id: item for item in takedown_list(conn)}
        for number in numbers:
            text = number.lstrip("#")
            if not text.isdigit() or int(text) not in listed:
                raise click.ClickException(f"{number} is not on the take-down list; `photoguard takedown` shows "
                                           "the numbers (it may be marked already).")
        for number in numbers:
            item = listed[int(number.lstrip("#"))]
            mark_taken_down(conn, item, _actor(by))
            click.echo(f"#{item.file_id} {item.channel}: {item.name} marked taken down")
    except OutboxError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()


# --- watcher commands (watch, status) ---


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


# --- manager commands (report, demo) ---


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

    from photoguard.flow.report import gather_report, write_report
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
    from photoguard.flow.report import build_report
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
    click.echo(f"  photoguard serve --home {home.root}")


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


from photoguard.cli.service import service  # noqa: E402

main.add_command(service)
