"""Simulated nursery rosters: how many enrolled children stay visible, and does anyone leak?

From a folder of ``<child>/`` photo folders (age in the file name, like FG-NET's ``001A05.JPG``), each
run picks ``size`` children, keeps a third of them never enrolled (strangers), and enrols each other
child from 2-3 photos taken within ``window`` years of each other; that child's other photos from
the same years are the test faces. Every face of a stranger, and every face that is not the main
face of its photo, must come out unknown. A folder without ages (adults) is one window per person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoguard.engine.identify import Template, look_alike_pairs, match_faces
from photoguard.evaluate.faces import EncodedPhoto

AGE = re.compile(r"^\d+A(\d{1,2})[a-z]?$", re.IGNORECASE)


def photo_age(path: Path) -> int | None:
    """Age in years from a name like ``012A04`` or ``012A04a``; None when the name has none."""
    m = AGE.search(Path(path).stem)
    return int(m.group(1)) if m else None


@dataclass
class RosterResult:
    size: int
    runs: int
    enrolled_children: int = 0
    enrolled_faces: int = 0          # test faces of enrolled children >= min_face_px
    kept: int = 0                    # ... shown as themselves
    unknown: int = 0                 # ... obscured
    wrong: int = 0                   # any face shown as someone it is not (LEAK)
    stranger_faces: int = 0          # faces of never-enrolled children and bystanders
    strangers_shown: int = 0
    small_faces: int = 0             # enrolled children's test faces < min_face_px (never kept)
    look_alike_pairs: int = 0
    # With match.ask_from: faces put to the manager ("is this <child>?") instead of shown or obscured.
    asked_right: int = 0             # enrolled children's test faces asked about as themselves
    asked_other: int = 0             # enrolled children's test faces asked about as another child
    strangers_asked: int = 0         # strangers' faces asked about (the manager says no)
    leaks: list[str] = field(default_factory=list)

    @property
    def keep_rate(self) -> float:
        return self.kept / self.enrolled_faces if self.enrolled_faces else float("nan")

    @property
    def asked_rate(self) -> float:
        return self.asked_right / self.enrolled_faces if self.enrolled_faces else float("nan")


def _enrol_choice(photos: list[EncodedPhoto], rng: np.random.Generator, window: int,
                  min_face_px: int) -> tuple[list[EncodedPhoto], list[EncodedPhoto]] | None:
    """(enrol 2-3, test the rest) from one window of years; None if the child cannot be enrolled."""
    ages = [photo_age(p.path) for p in photos]
    if any(a is None for a in ages):
        ages = [0] * len(photos)

    def usable(p: EncodedPhoto) -> bool:
        i = p.main
        return i is not None and p.encodings[i] is not None and p.faces[i].width >= min_face_px

    windows = []
    for start in sorted(set(ages)):
        inside = [p for p, a in zip(photos, ages) if start <= a <= start + window]
        if sum(usable(p) for p in inside) >= 2:
            windows.append(inside)
    if not windows:
        return None
    with_tests = [w for w in windows if len(w) >= 3]
    chosen = (with_tests or windows)[rng.integers(len(with_tests or windows))]
    good = [p for p in chosen if usable(p)]
    k = 3 if len(chosen) >= 4 and len(good) >= 3 else 2
    picks = set(rng.choice(len(good), size=k, replace=False).tolist())
    enrol = [p for i, p in enumerate(good) if i in picks]
    return enrol, [p for p in chosen if p not in enrol]


def simulate(photos: Sequence[EncodedPhoto], size: int, runs: int, *, threshold: float, margin: float,
             min_face_px: int, window: int = 2, seed: int = 0, look_alikes: bool = True,
             ask_from: float = 1.0, ask_standout: float = 0.0) -> RosterResult:
    """``ask_from``: also count the faces the pipeline would ask the manager about (every enrolled child
    has consent for the one channel here, as the question needs)."""
    from datetime import date

    from photoguard.rules.consent import ChildConsent
    from photoguard.rules.decide import questions_to_ask

    today = date.today()
    by_child: dict[str, list[EncodedPhoto]] = {}
    for p in photos:
        by_child.setdefault(p.person, []).append(p)
    names = sorted(by_child)
    size = min(size, len(names))
    out = RosterResult(size, runs)
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        group = [names[i] for i in rng.choice(len(names), size=size, replace=False)]
        n_out = max(1, round(size / 3))
        held = set(group[:n_out])
        templates: list[Template] = []
        tests: list[tuple[EncodedPhoto, bool]] = []
        for child in group[n_out:]:
            choice = _enrol_choice(by_child[child], rng, window, min_face_px)
            if choice is None:
                held.add(child)   # cannot be enrolled: a stranger in this run
                continue
            enrol, test = choice
            templates += [Template(child, p.encodings[p.main]) for p in enrol]
            tests += [(p, True) for p in test]
            out.enrolled_children += 1
        tests += [(p, False) for child in held for p in by_child[child]]
        pairs = look_alike_pairs(templates, threshold) if look_alikes else set()
        out.look_alike_pairs += len(pairs)
        consents = {t.child_id: ChildConsent(t.child_id, t.child_id, True, {"photos": True}) for t in templates}
        for photo, enrolled in tests:
            widths = [b.width for b in photo.faces]
            ids = match_faces(photo.encodings, widths, templates, threshold=threshold,
                              margin=margin, min_face_px=min_face_px, confusable=pairs)
            for q in questions_to_ask(ids, widths, consents, ("photos",), today, ask_from=ask_from,
                                      min_face_px=min_face_px, ask_standout=ask_standout):
                if not (enrolled and q.face == photo.main):
                    out.strangers_asked += 1
                elif q.child_id == photo.person:
                    out.asked_right += 1
                else:
                    out.asked_other += 1
            for i, (box, ident) in enumerate(zip(photo.faces, ids)):
                own = enrolled and i == photo.main
                if own and box.width >= min_face_px:
                    out.enrolled_faces += 1
                    if ident.child_id == photo.person:
                        out.kept += 1
                    elif ident.child_id is None:
                        out.unknown += 1
                elif own:
                    out.small_faces += 1
                else:
                    out.stranger_faces += 1
                    out.strangers_shown += ident.child_id is not None
                if ident.child_id is not None and not (own and ident.child_id == photo.person):
                    out.wrong += 1
                    who = photo.person if i == photo.main else "a bystander"
                    out.leaks.append(f"{photo.path}: {who} shown as {ident.child_id} "
                                     f"(similarity {ident.similarity:.3f})")
    return out


def format_rosters(results: Sequence[RosterResult], threshold: float, margin: float, min_face_px: int,
                   ask_from: float = 1.0) -> list[str]:
    lines = [f"rule: similarity >= {threshold:.2f}, {margin:.2f} ahead of the next child, faces >= {min_face_px} px",
             "",
             f"{'roster':>6} {'runs':>5} {'enrolled':>9} {'test faces':>11} {'kept':>6} {'keep %':>7} "
             f"{'unknown':>8} {'WRONG':>6} {'strangers':>10} {'look-alike pairs':>17}"]
    for r in results:
        lines.append(f"{r.size:>6} {r.runs:>5} {r.enrolled_children:>9} {r.enrolled_faces:>11} {r.kept:>6} "
                     f"{100 * r.keep_rate:>6.1f}% {r.unknown:>8} {r.wrong:>6} "
                     f"{r.stranger_faces - r.strangers_shown:>4}/{r.stranger_faces:<5} {r.look_alike_pairs:>17}")
    lines += ["", "enrolled = children enrolled over all runs; test faces = their other photos from the same "
              f"years, >= {min_face_px} px; strangers = unknown/all faces of never-enrolled children and bystanders;",
              "WRONG = faces shown as someone they are not (leaks, must be 0)."]
    if ask_from < 1:
        lines += ["", f"asked (match.ask_from {ask_from:.2f}): faces held for the manager's answer instead of obscured",
                  f"{'roster':>6} {'test faces asked':>17} {'as themselves':>14} {'as another child':>17} "
                  f"{'strangers asked':>16}"]
        for r in results:
            lines.append(f"{r.size:>6} {r.asked_right + r.asked_other:>17} {100 * r.asked_rate:>13.1f}% "
                         f"{r.asked_other:>17} {r.strangers_asked:>5}/{r.stranger_faces:<5} "
                         f"({100 * r.strangers_asked / max(r.stranger_faces, 1):.1f}%)")
    for r in results:
        lines += [f"  LEAK (roster {r.size}): {leak}" for leak in r.leaks[:20]]
    return lines


def curve(photos: Sequence[EncodedPhoto], sizes: Sequence[tuple[int, int]], thresholds: Sequence[float], *,
          margin: float, min_face_px: int, window: int = 2) -> list[tuple[float, list[RosterResult]]]:
    """The same rosters (same seeds) at each similarity threshold: how keep trades against wrong shows.
    ``sizes`` holds (roster size, runs) pairs."""
    return [(t, [simulate(photos, size, runs, threshold=t, margin=margin, min_face_px=min_face_px,
                          window=window, seed=size) for size, runs in sizes])
            for t in sorted(thresholds)]


def format_curve(rows: Sequence[tuple[float, Sequence[RosterResult]]]) -> list[str]:
    if not rows:
        return []
    sizes = [r.size for r in rows[0][1]]
    lines = ["", "keep % / WRONG shows at other similarity thresholds (same rosters):",
             f"{'similarity':>10} " + " ".join(f"{f'roster {s}':>16}" for s in sizes)]
    for t, results in rows:
        lines.append(f"{t:>10.2f} " + " ".join(f"{100 * r.keep_rate:>9.1f}% {r.wrong:>5}" for r in results))
    return lines
