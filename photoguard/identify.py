"""Who is this face? 128-d encodings and a strict, pure matching rule.

Fail closed: a face is a child only when it is close to that child's templates, clearly closer
than to any other child, large enough to judge, the only face in the photo claiming that child,
and that child is not one of a pair of look-alikes. Anything else is unknown, with a reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import cv2
import numpy as np

from .detect import FaceBox

# Reasons (short, shown in reports).
MATCHED = "matched"
NO_ENCODING = "face could not be measured"
NO_CHILDREN = "no enrolled child to compare with"
NOT_CLOSE = "no enrolled child close enough"
TOO_SMALL = "too small to identify"

# Faces are measured at most this wide; the landmark model gains nothing from more pixels.
ENCODE_MAX_FACE_PX = 240
# Below this the landmark model has nothing to work with.
ENCODE_MIN_FACE_PX = 8


@dataclass(frozen=True)
class Template:
    child_id: str
    encoding: np.ndarray   # (128,) float64


@dataclass(frozen=True)
class Identity:
    child_id: str | None       # None = unknown (obscured everywhere)
    distance: float | None     # to the nearest template of the nearest child
    runner_up: float | None    # nearest template of the next child
    reason: str                # "matched", "too small to identify", "no enrolled child close enough", ...
    nearest: str | None = None  # the nearest child, even when not identified (for reports and evaluation)


@cache
def face_recognition() -> ModuleType:
    """Import face_recognition without face_recognition_models' pkg_resources warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition as fr
    return fr


class FaceEncoder:
    """dlib's 5-point landmarks and face descriptor (the models face_recognition uses), loaded once.

    The descriptor network runs in numpy (``facenet.FaceNet``: same numbers, ~4x faster than the
    dlib wheel); if its model file cannot be read that way, dlib itself is used.
    """

    def __init__(self) -> None:
        import dlib

        from .facenet import FaceNet, FaceNetError, model_paths

        landmarks, network = model_paths()
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(landmarks))
        self._net: FaceNet | None
        try:
            self._net = FaceNet(network)
            self._dlib_net = None
        except FaceNetError:
            self._net = None
            self._dlib_net = dlib.face_recognition_model_v1(str(network))

    def encode(self, rgb: np.ndarray, boxes: Sequence[FaceBox], min_width: int = 0) -> list[np.ndarray | None]:
        h, w = rgb.shape[:2]
        chips: list[np.ndarray] = []
        where: list[int] = []
        for i, box in enumerate(boxes):
            bw, bh = box.right - box.left, box.bottom - box.top
            if min(bw, bh) < ENCODE_MIN_FACE_PX or bw < min_width:
                continue
            pad = int(max(bw, bh) * 0.5)
            x0, y0 = max(0, box.left - pad), max(0, box.top - pad)
            x1, y1 = min(w, box.right + pad), min(h, box.bottom + pad)
            crop = rgb[y0:y1, x0:x1]
            scale = min(1.0, ENCODE_MAX_FACE_PX / max(bw, bh))
            if scale < 1.0:
                size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            crop = np.ascontiguousarray(crop)
            rect = self._dlib.rectangle(round((box.left - x0) * scale), round((box.top - y0) * scale),
                                        round((box.right - x0) * scale), round((box.bottom - y0) * scale))
            shape = self._landmarks(crop, rect)
            chips.append(np.asarray(self._dlib.get_face_chip(crop, shape, 150, 0.25)))
            where.append(i)
        out: list[np.ndarray | None] = [None] * len(boxes)
        if not chips:
            return out
        if self._net is not None:
            encodings = self._net.describe(np.stack(chips))
        else:
            encodings = np.array([self._dlib_net.compute_face_descriptor(c) for c in chips], dtype=np.float64)
        for i, enc in zip(where, encodings):
            out[i] = np.asarray(enc, dtype=np.float64)
        return out


@cache
def default_encoder() -> FaceEncoder:
    """One shared encoder per process, created on first use (not at import)."""
    return FaceEncoder()


def encode_faces(rgb: np.ndarray, boxes: Sequence[FaceBox], min_width: int = 0,
                 encoder: FaceEncoder | None = None) -> list[np.ndarray | None]:
    """One encoding per box (None where no encoding is possible, or narrower than ``min_width``:
    pass the matching rule's ``min_face_px`` to skip faces that will never be identified anyway).

    Each face is cut out of the full-resolution photo with a margin, and very large faces are
    scaled down first so a 1000 px close-up costs the same as a 200 px face. The numbers are
    face_recognition's ``face_encodings`` (5-point landmarks, no jitter).
    """
    return (encoder or default_encoder()).encode(np.asarray(rgb), boxes, min_width)


def _pair_reason(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"too close to call between {first} and {second}"


def by_child(templates: Sequence[Template]) -> dict[str, np.ndarray]:
    """Each child's templates as one (n, 128) array, children in name order."""
    groups: dict[str, list[np.ndarray]] = {}
    for t in templates:
        groups.setdefault(t.child_id, []).append(np.asarray(t.encoding, dtype=np.float64))
    return {c: np.stack(v) for c, v in sorted(groups.items())}


def closest_pairs(templates: Sequence[Template]) -> list[tuple[str, str, float]]:
    """For every pair of children, the distance between their closest templates, closest first."""
    groups = by_child(templates)
    names = list(groups)
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = groups[names[i]], groups[names[j]]
            out.append((names[i], names[j], float(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).min())))
    return sorted(out, key=lambda p: p[2])


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
    """Pure rule: threshold, margin to the next child, minimum width, one face per child per photo.

    ``confusable`` holds pairs of children too alike to tell apart (see ``confusable_pairs``): a
    face whose nearest child is in such a pair is never identified.
    """
    if len(encodings) != len(widths):
        raise ValueError("one width per encoding is needed")
    groups = by_child(templates)
    children, stacks = list(groups), list(groups.values())
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
        enc = np.asarray(enc, dtype=np.float64)
        dists = np.array([np.linalg.norm(s - enc, axis=1).min() for s in stacks])
        order = np.argsort(dists, kind="stable")
        nearest, d1 = children[order[0]], float(dists[order[0]])
        runner = children[order[1]] if len(order) > 1 else None
        d2 = float(dists[order[1]]) if len(order) > 1 else None
        if width < min_face_px:
            reason = TOO_SMALL
        # Written as "not (ok)" so that a NaN distance (a broken encoding) never counts as a match.
        elif not d1 <= threshold:
            reason = NOT_CLOSE
        elif d2 is not None and not d2 - d1 >= margin:
            reason = _pair_reason(nearest, runner)
        elif nearest in look_alikes:
            reason = _pair_reason(nearest, look_alikes[nearest][0])
        else:
            reason = MATCHED
        result.append(Identity(nearest if reason == MATCHED else None, d1, d2, reason, nearest))

    # One face per child per photo: the closest keeps the match.
    best: dict[str, int] = {}
    for i, ident in enumerate(result):
        if ident.child_id is None:
            continue
        j = best.get(ident.child_id)
        if j is None or ident.distance < result[j].distance:
            best[ident.child_id] = i
    for i, ident in enumerate(result):
        if ident.child_id is not None and best[ident.child_id] != i:
            result[i] = Identity(None, ident.distance, ident.runner_up,
                                 f"another face in this photo is closer to {ident.child_id}", ident.nearest)
    return result


def confusable_pairs(templates: Sequence[Template], threshold: float, margin: float) -> set[frozenset[str]]:
    """Pairs of children whose closest templates are nearer than ``threshold + margin``.

    A face between two such children could be either, so neither is identified from it.
    """
    return {frozenset((a, b)) for a, b, d in closest_pairs(templates) if d < threshold + margin}
