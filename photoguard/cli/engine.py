"""Measuring and tuning the face engine: `photoguard calibrate` and `photoguard evaluate` (for tuning; not part
of a day's work).
"""

from __future__ import annotations

from pathlib import Path

import click

from photoguard.cli.common import get_home, home_option, main
from photoguard.store.config import ConfigError
from photoguard.store.home import HomeError
from photoguard.store.starter import require_home


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
    results = [simulate(photos, size, n, window=window, seed=size, ask_from=settings.match_ask_from,
                        ask_standout=settings.match_ask_standout, **rule)
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


@evaluate.command("term")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--max-age", type=int, default=6, show_default=True,
              help="Oldest age in the term (years, from the file names).")
@click.option("--min-age", type=int, default=0, show_default=True, help="Youngest age in the term.")
@click.option("--roster", type=int, default=30, show_default=True, help="Children per roster (a third never enrolled).")
@click.option("--batches", type=int, default=3, show_default=True, help="Batches the photos arrive in, in age order.")
@click.option("--runs", type=int, default=40, show_default=True, help="Random terms.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run i draws from (seed, i).")
@click.option("--learning/--no-learning", default=True, show_default=True,
              help="Confirmed answers become references (enrolment photos + the 4 newest learned faces).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), envvar="PHOTOGUARD_HOME", default=None,
              help="Take settings from this home (default: built-in defaults).")
def evaluate_term_cmd(folder, max_age, min_age, roster, batches, runs, seed, learning, as_json, home_dir) -> None:
    """A simulated nursery term: shown, asked and wrong shows batch by batch on <child>/ photo folders."""
    import json

    from photoguard.engine.detect import FaceDetector
    from photoguard.evaluate.faces import EvaluationError, encode_folder
    from photoguard.evaluate.term import MatchRule, TermError, TermSetup, simulate_term
    from photoguard.evaluate.term_report import format_term, term_to_dict

    settings = _engine_settings(home_dir)
    try:
        setup = TermSetup(roster=roster, batches=batches, min_age=min_age, max_age=max_age, runs=runs, seed=seed,
                          learning=learning)
        photos = encode_folder(FaceDetector(settings.detect_threshold), Path(folder), _progress)
        result = simulate_term(photos, setup, MatchRule.from_settings(settings))
    except (EvaluationError, TermError) as exc:
        raise click.ClickException(str(exc))
    if as_json:
        click.echo(json.dumps(term_to_dict(result), indent=2))
    else:
        for line in format_term(result):
            click.echo(line)
    if result.total().wrong:
        raise SystemExit(1)
