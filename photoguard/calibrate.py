"""Fit the match threshold to the enrolled children: no child may match another child's templates.

Pure on encodings (``calibrate``); ``roster.load_templates`` reads them from the database. The suggested
threshold is never looser than ``CEILING`` (the shipped default) and stays ``safety`` below the
closest pair of different children. Pairs of children too alike for that (siblings, twins) are
listed as look-alikes instead of dragging everyone's threshold down: the matching rule never
identifies a face whose nearest child is one of them (see ``identify.confusable_pairs``), and
calibration never clears them; only new, better reference photos can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .config import Settings
from .identify import Template, by_child, closest_pairs, confusable_pairs, match_faces

CEILING = Settings.match_threshold
# Below this the threshold would refuse too many of a child's own photos to be useful;
# children that close to someone else are marked look-alikes instead.
FLOOR = 0.35
SAFETY = 0.10


@dataclass(frozen=True)
class PairDistance:
    a: str
    b: str
    distance: float


@dataclass
class Calibration:
    children: int
    templates: int
    threshold: float                         # suggested match.threshold
    margin: float
    safety: float
    closest_pairs: list[PairDistance]        # different children, closest first
    look_alikes: list[PairDistance]          # never identified (threshold + margin > their distance)
    same_child: list[float]                  # leave-one-out: each template to its child's nearest other one
    leave_one_out: dict[str, int] = field(default_factory=dict)  # correct / wrong / unknown at the threshold
    notes: list[str] = field(default_factory=list)

    @property
    def cross_child_min(self) -> float | None:
        return self.closest_pairs[0].distance if self.closest_pairs else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cross_child_min"] = self.cross_child_min
        return out


def pair_distances(templates: Sequence[Template]) -> list[PairDistance]:
    """For every pair of children, the distance between their closest templates, closest first."""
    return [PairDistance(a, b, d) for a, b, d in closest_pairs(templates)]


def leave_one_out_same(templates: Sequence[Template]) -> list[float]:
    """Each template's distance to the nearest *other* template of the same child."""
    out = []
    for child, enc in by_child(templates).items():
        if len(enc) < 2:
            continue
        d = np.linalg.norm(enc[:, None, :] - enc[None, :, :], axis=2)
        np.fill_diagonal(d, np.inf)
        out += d.min(axis=1).tolist()
    return sorted(out)


def calibrate(
    templates: Sequence[Template],
    *,
    margin: float,
    min_face_px: int = 80,
    ceiling: float = CEILING,
    floor: float = FLOOR,
    safety: float = SAFETY,
) -> Calibration:
    """Suggest a threshold for this roster and list the look-alike children."""
    pairs = pair_distances(templates)
    children = len(by_child(templates))
    notes: list[str] = []
    threshold = ceiling
    too_close = set()
    for p in pairs:
        if p.distance - safety >= floor:
            threshold = min(threshold, p.distance - safety)
        else:
            too_close.add(frozenset((p.a, p.b)))
    threshold = float(np.floor(threshold * 100 + 1e-9) / 100)  # a round number, never rounded up
    look = confusable_pairs(templates, threshold, margin) | too_close
    look_alikes = [p for p in pairs if frozenset((p.a, p.b)) in look]
    same = leave_one_out_same(templates)
    if children < 2:
        notes.append("fewer than two children enrolled: nothing to tell apart yet")
    if not same:
        notes.append("no child has two reference photos: add a second photo per child to measure how well "
                     "a child matches their own photos")
    if threshold < ceiling:
        notes.append(f"threshold lowered from {ceiling:.2f} so that no child comes within {safety:.2f} of "
                     f"another child's reference photos")
    for p in look_alikes:
        notes.append(f"{p.a} and {p.b} look too alike ({p.distance:.2f}): neither is ever identified from a face "
                     f"that is nearest to one of them; they stay obscured. Better reference photos may help.")

    # Leave-one-out identification at the suggested threshold: each template as a face.
    counts = {"correct": 0, "wrong": 0, "unknown": 0}
    for i, t in enumerate(templates):
        rest = [u for j, u in enumerate(templates) if j != i]
        if not any(u.child_id == t.child_id for u in rest):
            continue
        [ident] = match_faces([t.encoding], [min_face_px], rest, threshold=threshold, margin=margin,
                              min_face_px=min_face_px, confusable=look)
        if ident.child_id is None:
            counts["unknown"] += 1
        elif ident.child_id == t.child_id:
            counts["correct"] += 1
        else:
            counts["wrong"] += 1
    return Calibration(children, len(templates), threshold, margin, safety, pairs, look_alikes, same, counts, notes)


def format_calibration(cal: Calibration, current: float | None = None) -> list[str]:
    lines = [f"children with templates: {cal.children}, templates: {cal.templates}"]
    if cal.same_child:
        same = np.array(cal.same_child)
        lines.append(f"same child (each photo vs the child's other photos): median {np.median(same):.3f}, "
                     f"max {same.max():.3f}, within the threshold: {(same <= cal.threshold).sum()}/{len(same)}")
    if cal.closest_pairs:
        lines.append(f"different children: closest {cal.closest_pairs[0].distance:.3f}")
        lines.append("closest pairs of children:")
        lines += [f"  {p.a} - {p.b}: {p.distance:.3f}" for p in cal.closest_pairs[:5]]
    lines.append(f"suggested match.threshold = {cal.threshold:.2f} (margin {cal.margin:.2f}, safety {cal.safety:.2f})"
                 + (f"; current {current:.2f}" if current is not None else ""))
    loo = cal.leave_one_out
    if sum(loo.values()):
        lines.append(f"each reference photo against the others at {cal.threshold:.2f}: {loo['correct']} identified, "
                     f"{loo['unknown']} unknown, {loo['wrong']} wrong")
    if cal.look_alikes:
        lines.append("LOOK-ALIKES (never identified, always obscured):")
        lines += [f"  {p.a} - {p.b}: {p.distance:.3f}" for p in cal.look_alikes]
    lines += [f"note: {n}" for n in cal.notes]
    return lines
