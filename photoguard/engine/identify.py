"""Who is this face? SFace embeddings and a strict, pure matching rule.

A face's score for a child is its mean cosine similarity to that child's reference photos (several
references per child: on children the mean kept more faces than the nearest reference at the same
false-show rate, see README and benchmarks/bench_identity.py). Fail closed: a face is a child only when that score reaches the threshold, the next
child scores at least ``margin`` less, the face is large enough to judge, it is the only face in the
photo claiming that child, and that child is not one of a pair of true look-alikes. Anything else is
unknown, with a reason. A NaN anywhere never counts as a match.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from types import ModuleType

import numpy as np

from photoguard.engine.detect import FaceBox
from photoguard.engine.embed import ENCODE_MIN_FACE_PX, FaceEncoder, default_encoder  # noqa: F401  (re-exported)

# Reasons (short, shown in reports).
MATCHED = "matched"
NO_ENCODING = "face could not be measured"
NO_CHILDREN = "no enrolled child to compare with"
NOT_CLOSE = "no enrolled child close enough"
TOO_SMALL = "too small to identify"

# A face's scores for the other children on the roster say how alike it is to children in general: a
# baby's face scores fairly high for every baby. Fewer than this many other children are too few to say.
STANDOUT_COHORT = 5


@dataclass(frozen=True)
class Template:
    child_id: str
    encoding: np.ndarray   # (128,) float64, unit length
    taken: date | None = None   # when the reference photo was taken (or added, when the photo does not say)


# A child's face changes a lot in a year at nursery ages: references taken more than this before her
# newest one are kept on file but no longer compared (a baby photo drags a toddler's mean towards every
# baby). Never fewer than RECENT_AT_LEAST, the newest, so a child is never left with nothing to match.
RECENT_DAYS = 365
RECENT_AT_LEAST = 2


def recent_references(templates: Sequence[Template], days: int = RECENT_DAYS,
                      at_least: int = RECENT_AT_LEAST) -> list[Template]:
    """Each child's references taken within ``days`` of her newest dated one (at least her ``at_least``
    newest), in the order given. A reference with no date counts as new."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(templates):
        groups.setdefault(t.child_id, []).append(i)
    keep: set[int] = set()
    for members in groups.values():
        dated = sorted(members, key=lambda i: templates[i].taken or date.max)
        days_taken = [templates[i].taken for i in members if templates[i].taken is not None]
        if not days_taken:
            keep.update(members)
            continue
        since = max(days_taken) - timedelta(days=days)
        recent = [i for i in members if (templates[i].taken or date.max) >= since]
        keep.update(recent if len(recent) >= at_least else dated[-at_least:])
    return [t for i, t in enumerate(templates) if i in keep]


@dataclass(frozen=True)
class Identity:
    child_id: str | None       # None = unknown (obscured everywhere)
    similarity: float | None   # the nearest child's score: mean cosine similarity to its references (1 = same picture)
    runner_up: float | None    # the same for the next child
    reason: str                # "matched", "too small to identify", "no enrolled child close enough", ...
    nearest: str | None = None  # the nearest child, even when not identified (for reports and evaluation)
    # How far the nearest child's score stands out from the face's scores for the rest of the roster, in
    # standard deviations (None with fewer than STANDOUT_COHORT other children to compare with).
    standout: float | None = None

    @property
    def distance(self) -> float | None:
        """1 - similarity (cosine distance), for records that sort "closer first"."""
        return None if self.similarity is None else 1.0 - self.similarity


@cache
def face_recognition() -> ModuleType:
    """Import face_recognition (dlib's models; the tests use it as an independent check) without
    face_recognition_models' pkg_resources warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition as fr
    return fr


def encode_faces(rgb: np.ndarray, boxes: Sequence[FaceBox], min_width: int = 0,
                 encoder: FaceEncoder | None = None) -> list[np.ndarray | None]:
    """One unit-length SFace embedding per box (None where none is possible, or narrower than
    ``min_width``: pass the matching rule's ``min_face_px`` to skip faces never identified anyway).
    All faces of a photo go through the network in one batch."""
    return (encoder or default_encoder()).encode(np.asarray(rgb), boxes, min_width)


_PAIR = "too close to call between {} and {}"


def _pair_reason(a: str, b: str) -> str:
    return _PAIR.format(*sorted((a, b)))


def pair_in(reason: str | None) -> tuple[str, str] | None:
    """The two children of a "too close to call between a and b" reason, else None."""
    head = _PAIR.partition("{}")[0]
    if not reason or not reason.startswith(head):
        return None
    first, sep, second = reason[len(head):].partition(" and ")
    return (first, second) if sep and first and second else None


def by_child(templates: Sequence[Template]) -> dict[str, np.ndarray]:
    """Each child's templates as one (n, 128) array, children in name order."""
    groups: dict[str, list[np.ndarray]] = {}
    for t in templates:
        groups.setdefault(t.child_id, []).append(np.asarray(t.encoding, dtype=np.float64))
    return {c: np.stack(v) for c, v in sorted(groups.items())}


AGGREGATE = "mean"


def scores(encoding: np.ndarray, groups: dict[str, np.ndarray], aggregate: str = AGGREGATE) -> np.ndarray:
    """A face's score for each child (in ``groups`` order): mean cosine similarity to the child's
    references ("mean") or to the nearest one ("nearest"). NaN stays NaN."""
    enc = np.asarray(encoding, dtype=np.float64)
    out = []
    for refs in groups.values():
        sims = refs @ enc
        out.append(sims.max() if aggregate == "nearest" else sims.mean())
    return np.array(out, dtype=np.float64)


def closest_pairs(templates: Sequence[Template]) -> list[tuple[str, str, float]]:
    """For every pair of children, the similarity of their most alike references, most alike first."""
    groups = by_child(templates)
    names = list(groups)
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out.append((names[i], names[j], float((groups[names[i]] @ groups[names[j]].T).max())))
    return sorted(out, key=lambda p: -p[2])


def own_similarity(refs: np.ndarray) -> float | None:
    """How alike one child's own references are: the median similarity between them (None with one)."""
    if len(refs) < 2:
        return None
    sims = refs @ refs.T
    return float(np.median(sims[np.triu_indices(len(refs), 1)]))


def standout(sims: np.ndarray, child: int) -> float | None:
    """How many standard deviations ``sims[child]`` lies above the mean of the other children's scores;
    None when fewer than ``STANDOUT_COHORT`` others are there to compare with."""
    others = np.delete(np.asarray(sims, dtype=np.float64), child)
    if len(others) < STANDOUT_COHORT:
        return None
    return float((sims[child] - others.mean()) / max(float(others.std()), 1e-6))


def match_faces(
    encodings: Sequence[np.ndarray | None],
    widths: Sequence[int],
    templates: Sequence[Template],
    *,
    threshold: float,
    margin: float,
    min_face_px: int,
    confusable: Collection[frozenset[str]] = (),
) -> list[Identity]:
    """Pure rule: similarity threshold, margin to the next child, minimum width, one face per child per
    photo. ``confusable`` holds pairs of true look-alikes (see ``look_alike_pairs``): a face whose
    nearest child is in such a pair is never identified."""
    if len(encodings) != len(widths):
        raise ValueError("one width per encoding is needed")
    groups = by_child(templates)
    children = list(groups)
    look_alikes: dict[str, list[str]] = {}
    for pair in confusable:
        members = sorted(pair)
        for c in members:
            look_alikes.setdefault(c, []).extend(o for o in members if o != c)

    result: list[Identity] = []
    for enc, width in zip(encodings, widths):
        if width < min_face_px:
            result.append(Identity(None, None, None, TOO_SMALL))
            continue
        if not children:
            result.append(Identity(None, None, None, NO_CHILDREN))
            continue
        if enc is None:
            result.append(Identity(None, None, None, NO_ENCODING))
            continue
        sims = scores(enc, groups)
        if np.isnan(sims).any():
            result.append(Identity(None, float("nan"), None, NO_ENCODING))
            continue
        order = np.argsort(-sims, kind="stable")
        nearest, s1 = children[order[0]], float(sims[order[0]])
        lift = standout(sims, int(order[0]))
        runner = children[order[1]] if len(order) > 1 else None
        s2 = float(sims[order[1]]) if len(order) > 1 else None
        # Written as "not (ok)" so that a NaN (a broken encoding) never counts as a match.
        if not s1 >= threshold:
            reason = NOT_CLOSE
        elif s2 is not None and not s1 - s2 >= margin:
            reason = _pair_reason(nearest, runner)
        elif nearest in look_alikes:
            reason = _pair_reason(nearest, look_alikes[nearest][0])
        else:
            reason = MATCHED
        result.append(Identity(nearest if reason == MATCHED else None, s1, s2, reason, nearest, lift))

    # One face per child per photo: the most alike keeps the match.
    best: dict[str, int] = {}
    for i, ident in enumerate(result):
        if ident.child_id is None:
            continue
        j = best.get(ident.child_id)
        if j is None or ident.similarity > result[j].similarity:
            best[ident.child_id] = i
    for i, ident in enumerate(result):
        if ident.child_id is not None and best[ident.child_id] != i:
            result[i] = Identity(None, ident.similarity, ident.runner_up,
                                 f"another face in this photo is more like {ident.child_id}", ident.nearest,
                                 ident.standout)
    return result


def look_alike_pairs(templates: Sequence[Template], threshold: float) -> set[frozenset[str]]:
    """True look-alikes (twins, siblings): two children whose most alike references are as alike as
    a child's own references are to each other, and alike enough to pass for each other.

    For children A and B: their cross similarity (most alike pair of references) is compared with how
    alike each one's own references are (median over their own pairs). When the cross similarity
    reaches the lower of the two own levels, a face of either could as well be the other: neither is
    ever identified. Ordinary classmates are far below their own levels and are not caught. A child
    whose own photos differ a lot (own level under the threshold) would otherwise make classmates
    look-alikes whose photos could never pass for that child, so the cross similarity must also reach
    the threshold: one child's reference photo would be taken for the other. A child with one
    reference photo has no own level; the threshold stands in for it.
    """
    groups = by_child(templates)
    own = {c: own_similarity(refs) for c, refs in groups.items()}
    out = set()
    for a, b, cross in closest_pairs(templates):
        levels = [own[c] if own[c] is not None else threshold for c in (a, b)]
        # Written as "not (apart)" so that a NaN counts as look-alike: fail closed.
        if not (cross < min(levels) or cross < threshold):
            out.add(frozenset((a, b)))
    return out
