"""Faces found by the detector's passes, before and after merging: the candidates, one box per face, and the
float model's look that describes each face.

The detector searches the quarter turns with the int8 CenterFace (about half the float model's time, every
face still found; the upright passes are float themselves), but int8's boxes and landmarks are a little off the
float model's, and SFace aligns each face by its landmarks: int8's changed who was recognised
(docs/measurements.md). So every face big enough to be described gets its boxes, scores and landmarks from the
float model, which repeats each pass that could have found it (the same
input, scale and turn) on a crop of that input with ``CONTEXT`` pixels around the face: what the float model
sees of a face depends on that much of its surroundings, so the crop gives what a float pass over the whole
input would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from photoguard.engine.boxes import turn_matrix

# Faces narrower than this get no float look: there is nothing to measure (embed.ENCODE_MIN_FACE_PX is this).
DESCRIBE_MIN_PX = 8

# Pixels of the pass's input around a face that the float crop keeps. Measured on the group, annotated and
# sample photos' 1280 px main pass (69 faces): the largest difference between float-on-crop and float on the
# whole input, in boxes and landmarks, as a share of the face's width, was 0.35 with no margin, 1.3e-2 at
# 128 px, 2.8e-3 at 192 px and 6e-7 at 256 px (the network's reach).
CONTEXT = 256


@dataclass(frozen=True)
class FaceBox:
    """A face in pixels of the oriented photo; right/bottom exclusive."""
    left: int
    top: int
    right: int
    bottom: int
    score: float
    source: str = "centerface"   # 'centerface', 'hog' or 'both'
    # Five CenterFace landmarks (x, y) in photo pixels: eyes, nose, mouth corners. None for HOG-only boxes.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(eq=False)
class Searched:
    """One network input of a search pass, kept (not copied) until the faces are described, and how the pass
    used it: what the float model's look at a part of it repeats."""
    image: np.ndarray       # (H, W, 3) uint8, as CenterFace got it (before its zero padding)
    to_turned: np.ndarray   # 3x3: the input's pixels -> the photo turned by the pass's quarter turns
    # The pass's weak small peaks were looked at again in zoomed crops of ``photo`` (the photo, or its easier
    # copy) at this scale; None: the input was searched at the threshold and no more.
    confirm: tuple[np.ndarray, float] | None = None
    described: bool = False          # searched by the float model: its finds need no look


def scaled(image: np.ndarray, scale: float, confirm: tuple[np.ndarray, float] | None = None) -> Searched:
    """An input that is the turned photo scaled by ``scale``."""
    return Searched(image, np.array([[1 / scale, 0, 0], [0, 1 / scale, 0], [0, 0, 1]]), confirm)


def float_search() -> Searched:
    """A pass of the float model's: its finds are already what ``describe`` would make of them, so nothing of
    its input is kept for a look."""
    return Searched(np.zeros((0, 0, 3), np.uint8), np.eye(3), described=True)


def mapped(boxes: np.ndarray, marks: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and landmarks (N, 10) through the affine map ``m`` (2x3 or 3x3)."""
    m = np.asarray(m)[:2]
    a = np.c_[boxes[:, :2], np.ones(len(boxes))] @ m.T
    b = np.c_[boxes[:, 2:], np.ones(len(boxes))] @ m.T
    points = np.c_[marks.reshape(-1, 2), np.ones(len(marks) * 5)] @ m.T
    return np.c_[np.minimum(a, b), np.maximum(a, b)], points.reshape(-1, 10)


@dataclass
class _Found:
    """Candidate boxes in photo pixels (float), before merging."""
    boxes: np.ndarray       # (N, 4) left, top, right, bottom
    scores: np.ndarray      # (N,)
    landmarks: np.ndarray   # (N, 10) x0, y0, ... or NaN
    source: np.ndarray      # (N,) 0 = centerface, 1 = hog
    turns: np.ndarray | None = None   # (N,) quarter turns of the photo it was found in; None = all 0
    seen: np.ndarray | None = None    # (N,) object: the Searched input each was found in (None: HOG, a zoomed crop)

    @staticmethod
    def empty() -> "_Found":
        return _Found(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10)), np.zeros(0, dtype=np.int8))

    @staticmethod
    def of(boxes: np.ndarray, scores: np.ndarray, marks: np.ndarray, seen: Searched | None) -> "_Found":
        """CenterFace's finds in one input (already in the turned photo's pixels)."""
        where = np.empty(len(scores), object)
        where[:] = [seen] * len(scores)
        return _Found(boxes, scores, marks, np.zeros(len(scores), dtype=np.int8), None, where)

    def turn_of(self) -> np.ndarray:
        return self.turns if self.turns is not None else np.zeros(len(self.scores), dtype=np.int8)

    def seen_of(self) -> np.ndarray:
        return self.seen if self.seen is not None else np.full(len(self.scores), None, object)

    def take(self, keep: np.ndarray) -> "_Found":
        return _Found(self.boxes[keep], self.scores[keep], self.landmarks[keep], self.source[keep],
                      self.turn_of()[keep], self.seen_of()[keep])

    @staticmethod
    def concat(parts: list["_Found"]) -> "_Found":
        if not parts:
            return _Found.empty()
        return _Found(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.source for p in parts]),
            np.concatenate([p.turn_of() for p in parts]),
            np.concatenate([p.seen_of() for p in parts]),
        )


def _unturn(found: _Found, turns: int, width: int, height: int) -> _Found:
    """Boxes and landmarks found in the photo turned by ``turns`` quarter turns, back in the photo."""
    if turns % 4 == 0 or len(found.scores) == 0:
        return found
    boxes, marks = mapped(found.boxes, found.landmarks, np.linalg.inv(turn_matrix(turns, width, height)))
    return _Found(boxes, found.scores, marks, found.source, np.full(len(found.scores), turns % 4, dtype=np.int8),
                  found.seen)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _same_face(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boxes that overlap enough to be one face: IoU >= 0.3, or the smaller's centre inside the larger
    while the smaller is at least a third of the larger's width (a face inside a face is rare)."""
    iou = _iou_matrix(a, b)
    ca = (a[:, :2] + a[:, 2:]) / 2
    inside = (ca[:, None, 0] >= b[None, :, 0]) & (ca[:, None, 0] < b[None, :, 2]) & \
             (ca[:, None, 1] >= b[None, :, 1]) & (ca[:, None, 1] < b[None, :, 3])
    wa = a[:, 2] - a[:, 0]
    wb = b[:, 2] - b[:, 0]
    ratio = np.minimum(wa[:, None], wb[None, :]) / np.maximum(np.maximum(wa[:, None], wb[None, :]), 1e-9)
    return (iou >= 0.3) | (inside & (ratio >= 0.33))


def _meets(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): box a[i] and box b[j] are one face, whichever is the smaller (``_same_face`` both ways)."""
    return _same_face(a, b) | _same_face(b, a).T


# One find stands for another only if the other lies within its box grown by this share of its size on each side
# (a 1.3x obscured area reaches 0.15 beyond): a second face half behind the first, which ``_same_face`` also calls
# one face, reaches farther, and must keep a box of its own to be covered.
REACH = 0.15


def _stands_for(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): box b[j] stands for box a[i]: one face, and a[i] lies within b[j]'s REACH."""
    grow = np.tile(b[:, 2:] - b[:, :2], 2) * REACH
    lo, hi = b[:, :2] - grow[:, :2], b[:, 2:] + grow[:, 2:]
    within = (a[:, None, :2] >= lo[None]).all(axis=2) & (a[:, None, 2:] <= hi[None]).all(axis=2)
    return _meets(a, b) & within


def _clusters(found: _Found) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Greedy clustering by score: (the best candidate, every candidate of its cluster, the ones that describe
    the face), as indices into ``found``; see ``_merge``."""
    n = len(found.scores)
    order = np.argsort(-found.scores, kind="stable")
    boxes = found.boxes[order]
    turns = found.turn_of()[order]
    bw = boxes[:, 2] - boxes[:, 0]
    same = _meets(boxes, boxes)
    taken = np.zeros(n, bool)
    out = []
    for i in range(n):
        if taken[i]:
            continue
        members = np.union1d(np.nonzero(same[i] & ~taken & (bw <= 2 * bw[i]))[0], [i])
        taken[members] = True
        # Describe the face as the photo stands when it was found so; the turned passes are for faces
        # the upright one does not see (and a face CenterFace finds upside down has its eyes swapped).
        seen = turns[members]
        chosen = members[seen == (0 if (seen == 0).any() else turns[i])]
        out.append((int(order[i]), order[members], order[chosen]))
    return out


def _merge(found: _Found, width: int, height: int) -> list[FaceBox]:
    """Greedy clustering by score. A cluster's box is the union of its boxes (over-covering is the
    safe error: a zoomed-in pass sometimes boxes only part of a face), except that a box more than
    twice as wide as the cluster's best is left to form its own cluster, and only boxes found with
    the photo turned one way count (as it stands if any was, else as for the best one): a face seen
    sideways gets a box of another shape, which would make the union too loose to identify the face by.
    The landmarks are the best CenterFace box's that has any."""
    faces: list[FaceBox] = []
    for best, _, chosen in _clusters(found):
        box = np.concatenate([found.boxes[chosen, :2].min(axis=0), found.boxes[chosen, 2:].max(axis=0)])
        kinds = set(found.source[chosen].tolist())
        source = "both" if len(kinds) == 2 else ("hog" if 1 in kinds else "centerface")
        left = int(np.clip(np.floor(box[0]), 0, width))
        top = int(np.clip(np.floor(box[1]), 0, height))
        right = int(np.clip(np.ceil(box[2]), 0, width))
        bottom = int(np.clip(np.ceil(box[3]), 0, height))
        if right <= left or bottom <= top:
            continue
        cf = chosen[(found.source[chosen] == 0) & np.isfinite(found.landmarks[chosen]).all(axis=1)]
        lm = None
        if len(cf):
            m = found.landmarks[cf[0]]
            lm = tuple((float(m[k]), float(m[k + 1])) for k in range(0, 10, 2))
        faces.append(FaceBox(left, top, right, bottom, float(found.scores[best]), source, lm))
    return faces


def _grid_rect(box: np.ndarray, image: np.ndarray) -> tuple[int, int, int, int]:
    """The part of ``image`` the float model looks at for a face boxed ``box`` there: CONTEXT pixels around it,
    out to multiples of 32 (where the network's own grid falls on the whole input), within the input."""
    h, w = image.shape[:2]
    x0 = max(0, int((box[0] - CONTEXT) // 32) * 32)
    y0 = max(0, int((box[1] - CONTEXT) // 32) * 32)
    x1 = min(w, int(-(-(box[2] + CONTEXT) // 32)) * 32)
    y1 = min(h, int(-(-(box[3] + CONTEXT) // 32)) * 32)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _join(rects: list[tuple[int, int, int, int]]) -> list[tuple[list[int], tuple[int, int, int, int]]]:
    """Rectangles (with the indices they serve) joined while one rectangle around two costs no more pixels."""
    groups = [([i], r) for i, r in enumerate(rects)]
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])   # noqa: E731
    joined = True
    while joined:
        joined = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                ra, rb = groups[a][1], groups[b][1]
                both = (min(ra[0], rb[0]), min(ra[1], rb[1]), max(ra[2], rb[2]), max(ra[3], rb[3]))
                if area(both) <= area(ra) + area(rb):
                    groups[a] = (groups[a][0] + groups[b][0], both)
                    del groups[b]
                    joined = True
                    break
            if joined:
                break
    return groups


Look = Callable[[Searched, tuple[int, int, int, int], int, np.ndarray], "_Found"]


def describe(found: _Found, searched: list[tuple[Searched, int]], look: Look, width: int, height: int,
             threshold: float) -> _Found:
    """``found`` with the CenterFace candidates of every face at least DESCRIBE_MIN_PX wide replaced by the float
    model's finds there. ``look(input, rectangle, turns, boxes)`` repeats a pass with the float model on that
    rectangle of its input, ``CONTEXT`` pixels around the faces (``boxes``, in the photo; the pass's threshold,
    its zoomed re-check of the weak peaks whose crops reach them) and gives its finds in the photo's pixels.
    Each face is looked at in every input of ``searched`` (the int8 passes' inputs and their quarter turns) that
    holds it, with the photo upright and turned as the face was described (``_merge``), so that the float
    finds are those a float search makes there, and the turn chosen for the face is the one it would choose.

    An int8 find the float model does not see is left out where its face has other finds, as a float search
    would not have had it; a face only the int8 model found stays (recall first) with its box and score, but no
    landmarks: the encoder then looks again itself. Finds of a float search (their input ``described``) are
    kept as they are, and so are HOG's. A proposal (an int8 score below ``threshold``) stays only where the float
    model sees it. The float model sees an int8 find where one of its finds stands for it (``_stands_for``): a find
    reaching well beyond the float box of the same face is part of another face, and is kept as unseen."""
    floated = np.array([s is not None and s.described for s in found.seen_of()], bool)
    searched_int8 = (found.source == 0) & ~floated   # HOG's finds and the float searches' are no proposals
    proposal = (found.scores < threshold) & searched_int8
    refine = np.zeros(len(found.scores), bool)
    turns = found.turn_of()
    faces: list[tuple[np.ndarray, set[int]]] = []   # the faces to describe: union box, turns to look at
    clusters = _clusters(found)
    for _, members, chosen in clusters:
        box = np.concatenate([found.boxes[chosen, :2].min(axis=0), found.boxes[chosen, 2:].max(axis=0)])
        if min(box[2] - box[0], box[3] - box[1]) < DESCRIBE_MIN_PX - 1:
            continue
        # Upright (where a float search may see the face though int8 did not) and as the face is described.
        # Not the other turns' finds of an upright face (a quarter turn finds big faces as well): the merge
        # leaves them out.
        looks = {0, int(turns[chosen[0]])}
        refine[members[np.isin(turns[members], list(looks))]] = True
        faces.append((box, looks))
    refine &= searched_int8
    if not faces:
        return found.take(~proposal)
    floats: list[_Found] = []
    for s, turn in searched:
        to_photo = np.linalg.inv(turn_matrix(turn, width, height)) @ s.to_turned
        back = np.linalg.inv(to_photo)[:2]
        h, w = s.image.shape[:2]
        mine, rects = [], []
        for box, looks in faces:
            if turn not in looks:
                continue
            a, b = back @ [box[0], box[1], 1], back @ [box[2], box[3], 1]
            there = np.r_[np.minimum(a, b), np.maximum(a, b)]
            if there[2] <= 0 or there[3] <= 0 or there[0] >= w or there[1] >= h:
                continue
            mine.append(box)
            rects.append(_grid_rect(there, s.image))
        groups = _join(rects)
        if sum((r[2] - r[0]) * (r[3] - r[1]) for _, r in groups) >= 0.8 * w * h:   # as dear as the whole input
            groups = [(list(range(len(rects))), (0, 0, w, h))]
        for which, rect in groups:
            near = np.array([mine[i] for i in which])
            part = look(s, rect, turn, near)
            floats.append(part.take(_meets(near, part.boxes).any(axis=0)))
    described = _Found.concat(floats)
    # The int8 finds the float model saw are replaced; one it did not see goes where its face has other finds,
    # stays (without landmarks) where it has none; a proposal it did not see goes.
    unseen = refine.copy()
    if len(described.scores):
        unseen &= ~_stands_for(found.boxes, described.boxes).any(axis=1)
    keep = ~refine & ~proposal
    for _, members, _ in clusters:
        alone = unseen[members] & ~proposal[members]
        if alone.any() and not (~unseen[members] & (refine[members] | ~proposal[members])).any():
            keep[members[alone]] = True
    kept = found.take(keep)
    kept.landmarks = np.where(unseen[keep][:, None], np.nan, kept.landmarks)
    return _dedupe(_Found.concat([kept, described]))


def _dedupe(found: _Found) -> _Found:
    """Without the second of two finds with the very same box from the same input (two looks at one input
    may both hold a face)."""
    keys = [(id(s), *np.round(b, 3).tolist()) for s, b in zip(found.seen_of(), found.boxes)]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return found.take(np.isin(np.arange(len(keys)), list(first.values())))
