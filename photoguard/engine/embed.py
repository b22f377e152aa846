"""Faces in a photo -> SFace embeddings, aligned from five landmarks, many faces per network call.

CenterFace gives every box it finds five landmarks. A box only dlib's HOG found has none: CenterFace
then looks again at a crop around that box (scaled so the face is ~``LOOK_AGAIN_FACE`` px), and the
face is measured only if that close look finds it; otherwise it has no embedding and stays unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from photoguard.engine.candidates import DESCRIBE_MIN_PX
from photoguard.engine.centerface import CenterFace
from photoguard.engine.detect import FaceBox
from photoguard.engine.sface import SFace

# Faces are scaled down to at most this width before alignment: the 112 px chip gains nothing from
# more pixels, and shrinking with area averaging avoids the aliasing of one big warp.
ENCODE_MAX_FACE_PX = 160
# Below this there is nothing to measure (and the detector gives such a face no float look).
ENCODE_MIN_FACE_PX = DESCRIBE_MIN_PX
LOOK_AGAIN_FACE = 96
LOOK_AGAIN_THRESHOLD = 0.3

Landmarks = tuple[tuple[float, float], ...]


def plausible(landmarks: Landmarks | None, box: tuple[int, int, int, int]) -> bool:
    """Five finite points, inside (a margin around) the box, the two eyes apart."""
    if landmarks is None:
        return False
    pts = np.asarray(landmarks, float)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        return False
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    inside = ((pts[:, 0] >= left - w / 2) & (pts[:, 0] <= right + w / 2)
              & (pts[:, 1] >= top - h / 2) & (pts[:, 1] <= bottom + h / 2))
    return bool(inside.all()) and float(np.linalg.norm(pts[0] - pts[1])) >= 0.1 * max(w, h)


def upright_turns(landmarks: Landmarks) -> int:
    """The quarter turns (as ``np.rot90``) that make the face upright: 0 while the eyes are above the mouth
    within 45°, 1 when the top of the head points right, 2 upside down, 3 pointing left."""
    pts = np.asarray(landmarks, float)
    up_x, up_y = (pts[0] + pts[1]) / 2 - (pts[3] + pts[4]) / 2   # mouth -> eyes
    if -up_y >= abs(up_x):
        return 0
    if up_y >= abs(up_x):
        return 2
    return 1 if up_x > 0 else 3


class FaceEncoder:
    """SFace (checked model file) and, for HOG-only boxes, a CenterFace for the landmarks; loaded once."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.sface = SFace(model_path)
        self.model = self.sface.model
        self._centerface: CenterFace | None = None

    @property
    def centerface(self) -> CenterFace:
        """The CenterFace that finds landmarks for a face without usable ones, made the first time it is needed
        (it shares the detector's network sessions)."""
        if self._centerface is None:
            self._centerface = CenterFace()
        return self._centerface

    @centerface.setter
    def centerface(self, centerface: CenterFace) -> None:
        self._centerface = centerface

    def _look_again(self, rgb: np.ndarray, box: tuple[int, int, int, int], turns: int = 0) -> Landmarks | None:
        """Landmarks of the best face CenterFace finds, centred in ``box``, on a close look around it,
        turned by ``turns`` quarter turns."""
        boxes, scores, marks = self.centerface.near(rgb, box, LOOK_AGAIN_THRESHOLD, face_px=LOOK_AGAIN_FACE, span=2,
                                                    turns=turns)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = np.nonzero((cx >= box[0]) & (cx < box[2]) & (cy >= box[1]) & (cy < box[3]))[0]
        if len(inside) == 0:
            return None
        mk = marks[inside[np.argmax(scores[inside])]]
        return tuple((float(mk[k]), float(mk[k + 1])) for k in range(0, 10, 2))

    def landmarks(self, rgb: np.ndarray, face: FaceBox) -> Landmarks | None:
        marks = face.landmarks if plausible(face.landmarks, face.box) else None
        turns = upright_turns(marks) if marks is not None else 0
        if marks is not None and turns == 0:
            return marks
        # No landmarks, or those of a face lying on its side or upside down (a photo turned without an
        # orientation tag, a child lying on the mat): the upright search describes such a face poorly,
        # so look again with the face turned upright.
        found = self._look_again(rgb, face.box, turns)
        if plausible(found, face.box):
            return found
        return marks

    def chip(self, rgb: np.ndarray, face: FaceBox, landmarks: Landmarks) -> np.ndarray:
        """The aligned 112x112 RGB chip; big faces are first shrunk with area averaging."""
        size = max(face.width, face.height)
        scale = min(1.0, ENCODE_MAX_FACE_PX / max(size, 1))
        pts = np.asarray(landmarks, np.float64)
        if scale >= 1.0:
            return self.sface.align(rgb, pts)
        h, w = rgb.shape[:2]
        pad = size
        x0, y0 = max(0, face.left - pad), max(0, face.top - pad)
        x1, y1 = min(w, face.right + pad), min(h, face.bottom + pad)
        crop = rgb[y0:y1, x0:x1]
        small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        return self.sface.align(small, (pts - [x0, y0]) * scale)

    def encode(self, rgb: np.ndarray, boxes: Sequence[FaceBox], min_width: int = 0) -> list[np.ndarray | None]:
        rgb = np.ascontiguousarray(rgb)
        chips: list[np.ndarray] = []
        where: list[int] = []
        for i, face in enumerate(boxes):
            if min(face.width, face.height) < ENCODE_MIN_FACE_PX or face.width < min_width:
                continue
            marks = self.landmarks(rgb, face)
            if marks is None:
                continue
            chips.append(self.chip(rgb, face, marks))
            where.append(i)
        out: list[np.ndarray | None] = [None] * len(boxes)
        if chips:
            for i, enc in zip(where, self.sface.embed(np.stack(chips))):
                out[i] = enc
        return out


@cache
def default_encoder() -> FaceEncoder:
    """One shared encoder per process, created on first use (not at import)."""
    return FaceEncoder()
