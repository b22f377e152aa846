"""Fit the match threshold to a false-show target from the roster's own reference photos.

Pure on templates (``calibrate``); ``roster.load_templates`` reads them from the database.

The question a threshold answers: a child who is NOT enrolled walks into a photo; how likely is it that
PhotoGuard shows them as one of the N enrolled children? Each reference photo of one child, scored
against every other child exactly as a face is (``identify.scores``), gives the roster's own "different
children" scores. A 0.1 % target on a roster of 30 needs a per-child rate (about target / N) far below
what a few thousand scores show directly, so the tail is extrapolated: above the 99th percentile ``u``
the scores are modelled as exponential (peaks over threshold; for the bounded, light tails of cosine
scores this over-states the risk, never under-states it): P(score > t) = 0.01 * exp(-(t - u) / beta),
beta the mean excess over ``u``. The threshold is the lowest t with 1 - (1 - P) ** N <= target, never
below ``FLOOR`` (the default, calibrated the same way on a roster of 30 real children, so a roster of
unusually different children cannot talk it down), rounded up to 0.01.

The expected keep rate of each child comes from how alike the child's own references are (leave one
out), with a normal of the roster's pooled spread of own scores; the weakest children are named, with
what to do: add a recent photo.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from photoguard.engine.identify import Template, by_child, closest_pairs, look_alike_pairs, scores
from photoguard.store.config import Settings

FLOOR = Settings.match_similarity
# Above this the threshold would refuse most of a child's own photos: say so instead of using it.
CEILING = 0.80
# Fewer "different children" scores than this cannot show a tail: the default stands.
MIN_CROSS_SCORES = 1000
TAIL_QUANTILE = 0.99
# Spread assumed for a child's own scores when the roster has too few own pairs to measure it.
OWN_SPREAD_DEFAULT = 0.10
WEAK_KEEP = 0.8


@dataclass(frozen=True)
class PairScore:
    a: str
    b: str
    similarity: float


@dataclass(frozen=True)
class ChildKeep:
    child_id: str
    references: int
    own_similarity: float | None     # mean leave-one-out similarity to the child's own other references
    expected_keep: float | None      # share of this child's faces expected to be shown (None: one reference)


@dataclass
class Calibration:
    children: int
    templates: int
    threshold: float                         # suggested match.similarity
    margin: float
    max_false_show: float
    expected_false_show: float               # at the suggested threshold, by the fitted tail
    cross_mean: float | None                 # different children's reference scores: mean and spread
    cross_sd: float | None
    closest_pairs: list[PairScore]           # different children, most alike first
    look_alikes: list[PairScore]             # never identified
    keep: list[ChildKeep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def cross_scores(templates: Sequence[Template], skip: Collection[frozenset[str]] = ()) -> np.ndarray:
    """Every reference photo scored against every other child, as a face would be (except pairs in ``skip``)."""
    groups = by_child(templates)
    out = []
    for a, refs in groups.items():
        for b, other in groups.items():
            if a != b and frozenset((a, b)) not in skip:
                out.append(scores_against(refs, other))
    return np.concatenate(out) if out else np.zeros(0)


def scores_against(faces: np.ndarray, refs: np.ndarray) -> np.ndarray:
    return np.array([scores(f, {"c": refs})[0] for f in faces])


@dataclass(frozen=True)
class Tail:
    """P(score > t) = rate * exp(-(t - u) / beta) for t >= u."""
    u: float
    beta: float
    rate: float = 1 - TAIL_QUANTILE

    @staticmethod
    def fit(values: np.ndarray) -> "Tail":
        u = float(np.quantile(values, TAIL_QUANTILE))
        excess = values[values > u] - u
        return Tail(u, max(float(excess.mean()) if len(excess) else 0.0, 1e-3))

    def false_show(self, threshold: float, children: int) -> float:
        """Chance that a stranger passes ``threshold`` for at least one of ``children`` children."""
        p = min(1.0, self.rate * math.exp(-(threshold - self.u) / self.beta))
        return 1.0 - (1.0 - p) ** max(children, 1)

    def threshold_for(self, target: float, children: int) -> float:
        """Lowest threshold whose ``false_show`` is at most ``target``."""
        p = 1.0 - (1.0 - target) ** (1.0 / max(children, 1))
        return self.u + self.beta * math.log(self.rate / p)


def own_scores(refs: np.ndarray) -> np.ndarray:
    """Each reference scored against the child's other references, as a face would be (leave one out)."""
    return np.array([scores(refs[i], {"c": np.delete(refs, i, axis=0)})[0] for i in range(len(refs))])


def calibrate(
    templates: Sequence[Template],
    *,
    margin: float,
    max_false_show: float,
    floor: float = FLOOR,
    ceiling: float = CEILING,
    min_cross_scores: int = MIN_CROSS_SCORES,
) -> Calibration:
    """Suggest match.similarity for this roster, expected keep per child, and its look-alikes."""
    groups = by_child(templates)
    children, total = len(groups), sum(len(v) for v in groups.values())
    notes: list[str] = []
    # Twins say nothing about how alike a stranger is to the roster (and are never identified): their
    # scores would raise everyone's threshold. Pairs that are look-alikes at the lowest threshold this
    # can suggest are left out of the fit.
    cross = cross_scores(templates, skip=look_alike_pairs(templates, floor))
    cross = cross[np.isfinite(cross)]
    tail: Tail | None = None
    if len(cross) >= min_cross_scores:
        tail = Tail.fit(cross)
        fitted = tail.threshold_for(max_false_show, children)
        threshold = max(floor, math.ceil(fitted * 100 - 1e-9) / 100)
        if threshold > floor:
            notes.append(f"threshold raised from {floor:.2f}: on this roster the reference photos of different "
                         f"children are unusually alike")
    else:
        threshold = floor
        notes.append(f"too few children and reference photos to measure how alike different children are "
                     f"({len(cross)} comparisons, {min_cross_scores} needed): the default threshold stands")
    if threshold > ceiling:
        notes.append(f"to reach a {max_false_show:.2%} false-show chance the threshold would be {threshold:.2f}, "
                     f"which would hide most enrolled children too; used {ceiling:.2f} instead. Replace unclear "
                     "reference photos with sharp, recent, front-facing ones")
        threshold = ceiling
    expected = tail.false_show(threshold, children) if tail is not None else float("nan")
    mean = float(cross.mean()) if len(cross) else None
    sd = float(cross.std()) if len(cross) else None

    pairs = [PairScore(a, b, s) for a, b, s in closest_pairs(templates)]
    look = look_alike_pairs(templates, threshold)
    look_alikes = [p for p in pairs if frozenset((p.a, p.b)) in look]

    own = {c: own_scores(r) for c, r in groups.items() if len(r) >= 2}
    spread_values = np.concatenate([v - v.mean() for v in own.values()]) if own else np.zeros(0)
    spread = float(spread_values.std(ddof=1)) if len(spread_values) >= 6 else OWN_SPREAD_DEFAULT
    spread = max(spread, 0.05)
    keep: list[ChildKeep] = []
    for c, refs in groups.items():
        if c in own:
            m = float(own[c].mean())
            rate = 1.0 - NormalDist(m, spread).cdf(threshold + margin / 2)
            if any(c in pair for pair in look):
                rate = 0.0
            keep.append(ChildKeep(c, len(refs), m, rate))
        else:
            keep.append(ChildKeep(c, len(refs), None, None))
    keep.sort(key=lambda k: (k.expected_keep is not None, k.expected_keep or 0.0, k.child_id))

    if children < 2:
        notes.append("fewer than two children enrolled: nothing to tell apart yet")
    for k in keep:
        if k.expected_keep is None:
            notes.append(f"{k.child_id} has only one good reference photo: add a second, recent one so "
                         f"PhotoGuard can tell how reliably {k.child_id} is recognised")
        elif k.expected_keep < WEAK_KEEP:
            notes.append(f"{k.child_id} is expected to be shown in only {k.expected_keep:.0%} of photos: "
                         f"add a recent photo of {k.child_id} (sharp, facing the camera)")
    for p in look_alikes:
        notes.append(f"{p.a} and {p.b} look as alike as their own photos do (twins or siblings?): neither is ever "
                     "identified, both stay obscured. Recent, clear reference photos of both may separate them.")
    return Calibration(children, total, threshold, margin, max_false_show, expected, mean, sd, pairs,
                       look_alikes, keep, notes)


def format_calibration(cal: Calibration, current: float | None = None) -> list[str]:
    lines = [f"children with reference photos: {cal.children}, reference photos: {cal.templates}"]
    if cal.cross_mean is not None:
        lines.append(f"different children (each reference photo scored against the other children): mean "
                     f"{cal.cross_mean:.3f}, spread {cal.cross_sd:.3f}; most alike pair {cal.closest_pairs[0].a} - "
                     f"{cal.closest_pairs[0].b} {cal.closest_pairs[0].similarity:.3f}")
    lines.append(f"suggested match.similarity = {cal.threshold:.2f} (margin {cal.margin:.2f})"
                 + (f"; current {current:.2f}" if current is not None else ""))
    if math.isfinite(cal.expected_false_show):
        lines.append(f"chance a child who is not enrolled is shown as one of these children: "
                     f"{cal.expected_false_show:.3%} (target {cal.max_false_show:.3%})")
    lines.append("expected share of each child's photos where the child is shown (weakest first):")
    for k in cal.keep:
        rate = "unknown (one reference photo)" if k.expected_keep is None else f"{k.expected_keep:.0%}"
        lines.append(f"  {k.child_id}: {rate}")
    if cal.look_alikes:
        lines.append("LOOK-ALIKES (never identified, always obscured):")
        lines += [f"  {p.a} - {p.b}: {p.similarity:.3f}" for p in cal.look_alikes]
    lines += [f"note: {n}" for n in cal.notes]
    return lines
