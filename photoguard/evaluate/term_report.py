"""A simulated term in words: a Markdown table per batch, and JSON for scripts."""

from __future__ import annotations

from dataclasses import asdict

from photoguard.evaluate.term import BatchCounts, TermResult


def _pct(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def batch_rates(counts: BatchCounts) -> dict[str, float | None]:
    """Shares in per cent: of enrolled children's faces, of strangers' photos, answers per 100 photos."""
    return {
        "shown_pct": _pct(counts.shown, counts.enrolled_faces),
        "asked_right_pct": _pct(counts.asked_right, counts.enrolled_faces),
        "asked_wrong_pct": _pct(counts.asked_wrong, counts.enrolled_faces),
        "stranger_photos_asked_pct": _pct(counts.stranger_photos_asked, counts.stranger_photos),
        "answers_per_100_photos": _pct(counts.questions, counts.photos),
    }


def describe_setup(result: TermResult) -> list[str]:
    s, r = result.setup, result.rule
    learning = (f"learning on (answers only; enrolment photos + {s.learned_cap} newest learned faces, those "
                "within a year of the newest compared)" if s.learning else "learning off")
    first = result.runs[0]
    total, n = result.total(), len(result.runs)
    return [
        f"ages {s.min_age}-{s.max_age}, roster {s.roster} (a third never enrolled), {s.batches} batches in age order, "
        f"{n} runs, seed {s.seed}, {learning}",
        f"similarity {r.similarity:.2f}, margin {r.margin:.2f}, ask_from {r.ask_from:.2f}, "
        f"ask_standout {r.ask_standout:.1f}, "
        f"min face {r.min_face_px} px; enrolled from each child's {s.enrol_photos} youngest usable photos",
        f"children in the range: {result.children}, of whom {result.enrolable} can be enrolled; per run: "
        f"{len(first.enrolled)} enrolled, {len(first.strangers)} strangers, {total.photos / n:.1f} photos "
        f"({total.enrolled_faces / n:.1f} enrolled children's faces, "
        f"{total.stranger_photos / n:.1f} strangers' photos)",
    ]


def format_term(result: TermResult) -> list[str]:
    """The per-batch table (counts per run are means; percentages pooled over all runs)."""
    n = len(result.runs)
    lines = describe_setup(result) + [
        "",
        "| batch | photos /run | enrolled faces /run | shown by PhotoGuard % | asked, right suggestion % "
        "| asked, wrong suggestion % | strangers' photos asked % | answers /100 photos | learned /run "
        "| WRONG shows (all runs) | worst run |",
        "|" + "---|" * 11,
    ]
    rows = [(str(i + 1), counts, result.worst_wrong(i)) for i, counts in enumerate(result.per_batch())]
    rows.append(("all", result.total(), result.worst_wrong()))
    for name, counts, worst in rows:
        rates = batch_rates(counts)
        lines.append(
            f"| {name} | {counts.photos / n:.1f} | {counts.enrolled_faces / n:.1f} | {_cell(rates['shown_pct'])} "
            f"| {_cell(rates['asked_right_pct'])} | {_cell(rates['asked_wrong_pct'])} "
            f"| {_cell(rates['stranger_photos_asked_pct'])} | {_cell(rates['answers_per_100_photos'])} "
            f"| {counts.learned / n:.1f} | {counts.wrong} | {worst} |")
    leaks = [leak for run in result.runs for leak in run.wrong_shows]
    lines += ["", f"wrong shows (LEAKS, must be 0): {len(leaks)}"]
    lines += [f"  LEAK: {leak}" for leak in leaks]
    return lines


def term_to_dict(result: TermResult) -> dict:
    per_batch = [asdict(c) | batch_rates(c) | {"worst_run_wrong": result.worst_wrong(i)}
                 for i, c in enumerate(result.per_batch())]
    total = result.total()
    return {
        "setup": asdict(result.setup),
        "rule": asdict(result.rule),
        "children": result.children,
        "enrolable": result.enrolable,
        "batches": per_batch,
        "total": asdict(total) | batch_rates(total) | {"worst_run_wrong": result.worst_wrong()},
        "runs": [{"enrolled": run.enrolled, "strangers": run.strangers, "wrong": run.wrong,
                  "learned": len(run.learned)} for run in result.runs],
        "wrong_shows": [leak for run in result.runs for leak in run.wrong_shows],
    }
