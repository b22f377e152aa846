"""Find every face: CenterFace (OpenCV DNN) at several scales and zoomed-in crops, plus HOG, merged.

Recall comes first: a face the detector misses is never obscured. So the photo is searched at
several scales (CenterFace misses faces that fill the frame at full resolution and faces of a few
pixels at low resolution), every faint trace of a small face is looked at again at higher
resolution, and dlib's HOG detector gives a second opinion. All of it is done on the photo turned
a quarter, a half and three quarters too: both detectors only see faces within about 45° of
upright, and a tablet held sideways or upside down writes no orientation tag. Everything found is
kept; overlapping boxes are merged into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from photoguard.engine.around import Crop, crops_around
from photoguard.engine.boxes import turn_matrix
from photoguard.engine.centerface import CenterFace

# A face at most this wide in a published copy cannot be recognised: no detail of eyes, nose or mouth
# survives. The bar: "in every published copy no untouched face is wider than 12 px".
UNRECOGNISABLE_PX = 12


def published_scale(long_side: int, max_side: int) -> float:
    """How much a photo with this long side is shrunk to be published (outbox.max_side); 1 = not at all."""
    return min(1.0, max_side / max(long_side, 1))


def floor_px(long_side: int, min_face_px: int, max_side: int) -> float:
    """The narrowest face, in the photo's own pixels, that the search must find.

    ``detect.min_face_px``, except where the photo is published at nearly full size: there a face
    narrower than the floor would still be more than UNRECOGNISABLE_PX wide in the published copy, so
    the floor drops to what is UNRECOGNISABLE_PX once published (12 px in a photo of at most
    ``max_side``, 20 px from a long side of 2048 * 20 / 12 = 3413 px up)."""
    return min(float(min_face_px), UNRECOGNISABLE_PX / published_scale(long_side, max_side))


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
    turns: np.ndarray | None = None   # (N,) quarter turns of the photo it was found in; None = all 0

    @staticmethod
    def empty() -> "_Found":
        return _Found(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10)), np.zeros(0, dtype=np.int8))

    def turn_of(self) -> np.ndarray:
        return self.turns if self.turns is not None else np.zeros(len(self.scores), dtype=np.int8)

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
        )


@dataclass
class _Copies:
    """Smaller upright copies of the photo, made once for all the quarter turns: (picture, its scale)."""
    frames: list[tuple[np.ndarray, float]]   # for the frame-filling passes (``small_sides``)
    hog: tuple[np.ndarray | None, float]      # for HOG (None without HOG)


def _unturn(found: "_Found", turns: int, width: int, height: int) -> "_Found":
    """Boxes and landmarks found in the photo turned by ``turns`` quarter turns, back in the photo."""
    if turns % 4 == 0 or len(found.scores) == 0:
        return found
    back = np.linalg.inv(turn_matrix(turns, width, height))[:2]
    a = np.c_[found.boxes[:, :2], np.ones(len(found.scores))] @ back.T
    b = np.c_[found.boxes[:, 2:], np.ones(len(found.scores))] @ back.T
    boxes = np.c_[np.minimum(a, b), np.maximum(a, b)]
    points = found.landmarks.reshape(-1, 2)
    marks = (np.c_[points, np.ones(len(points))] @ back.T).reshape(-1, 10)
    return _Found(boxes, found.scores, marks, found.source, np.full(len(found.scores), turns % 4, dtype=np.int8))


# A photo whose darkest and brightest 1 % are closer than this (out of 255) is searched a second time
# stretched to the full range: CenterFace, trained on ordinary exposures, misses faces in a near-black
# photo. A photo of at most BINARY_LEVELS grey levels (a 1-bit or posterised scan) is searched a
# second time smoothed, so that dots and hard edges read as shading again.
DARK_RANGE = 96
BINARY_LEVELS = 4


def _hard_to_see(rgb: np.ndarray) -> list[np.ndarray]:
    """Copies of ``rgb`` that are easier to search than the photo itself (usually none)."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2GRAY)
    copies = []
    if len(np.unique(grey)) <= BINARY_LEVELS:
        sigma = max(1.0, max(rgb.shape[:2]) / 1600)
        copies.append(cv2.GaussianBlur(rgb, (0, 0), sigma))
    else:
        low, high = np.percentile(grey, (1, 99))
        if high - low < DARK_RANGE:
            lut = np.clip((np.arange(256) - low) * 255.0 / max(high - low, 1.0), 0, 255).astype(np.uint8)
            copies.append(cv2.LUT(rgb, lut))
    return copies


def _resize(rgb: np.ndarray, scale: float, bilinear_from: float = 1.0) -> np.ndarray:
    """``rgb`` scaled: by area averaging when shrinking, bilinear when enlarging or shrinking by no less than
    ``bilinear_from`` (where it loses nothing a face detector sees, and costs an eighth)."""
    if scale == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < bilinear_from else cv2.INTER_LINEAR)


class FaceDetector:
    """Load the models once; ``detect`` many photos.

    Passes, all in one merged union:

    * the whole photo scaled to ``base_side`` (long side) finds faces from ~1/90 of the photo's
      width up to about half its height;
    * the whole photo at each of ``small_sides`` finds faces that fill the frame (CenterFace
      misses faces much larger than ~500 px in its input);
    * weak peaks of the main pass that would be small faces are looked at again in crops at
      higher resolution (up to ``max_zoom`` times the photo), batched in one network call.
      This replaces full-resolution tiles, which cost ten times more on a 12 MP photo, while
      still finding 24 px faces;
    * dlib's HOG detector on a copy scaled to ``hog_side`` as a second opinion;
    * the CenterFace passes again for each of ``quarter_turns`` (the photo turned 90°, 180°, 270°),
      HOG only for ``hog_turns``;
    * for a photo where ``base_side`` loses faces at the floor (``floor_px``: ``min_face_px`` in the
      photo's own pixels, less where the copy published at ``max_side`` would show them larger than
      UNRECOGNISABLE_PX), the upright photo again in tiles, scaled so a face at the floor is
      FLOOR_FACE px wide, its weak peaks re-checked like the main pass's.
    """

    def __init__(
        self,
        threshold: float = 0.3,
        use_hog: bool = True,
        *,
        base_side: int = 1280,
        small_sides: tuple[int, ...] = (320,),
        proposal_threshold: float = 0.015,
        max_zoom: float = 2.0,
        hog_side: int = 640,
        hog_upsample: int = 1,
        hog_threshold: float = 0.0,
        quarter_turns: tuple[int, ...] = (0, 1, 2, 3),
        hog_turns: tuple[int, ...] = (0,),
        turned_side: int | None = None,
        threads: int | None = None,
        min_face_px: int = 20,
        max_side: int = 2048,
    ) -> None:
        if threads is not None:
            # OpenCV's thread count is per process: a pool of one-photo-at-a-time workers should
            # pass 1 so that the workers do not fight over the cores.
            cv2.setNumThreads(threads)
        self.threshold = threshold
        self.use_hog = use_hog
        self.base_side = base_side
        self.small_sides = small_sides
        self.proposal_threshold = min(proposal_threshold, threshold)
        self.max_zoom = max_zoom
        self.hog_side = hog_side
        self.hog_upsample = hog_upsample
        # face_recognition's default; lower finds no more faces on the labelled set, only dogs.
        self.hog_threshold = hog_threshold
        self.quarter_turns = quarter_turns
        # HOG turned sideways or upside down finds no face CenterFace misses on the benchmark scenes,
        # but boxes knees and folds of cloth (benchmarks/bench_engine.py --rotations).
        self.hog_turns = hog_turns
        # The long side the turned photo is searched at (None: ``base_side``, as upright).
        self.turned_side = turned_side or base_side
        self.min_face_px = min_face_px
        self.max_side = max_side
        self.centerface = CenterFace()
        self._hog = None
        if use_hog:
            import dlib

            self._hog = dlib.get_frontal_face_detector()

    # Weak peaks narrower than this in the main pass's input are re-checked at a higher zoom,
    # sized so the face is about VERIFY_FACE px wide in a VERIFY_SIDE px crop.
    PROPOSAL_MAX_PX = 24
    VERIFY_FACE = 36
    VERIFY_SIDE = 96
    VERIFY_EDGE = 6   # crop pixels: boxes this close to a crop edge are cut faces
    VERIFY_BATCH = 64

    def _cf(self, rgb: np.ndarray, scale: float, threshold: float) -> _Found:
        boxes, scores, marks = self.centerface.run(rgb, threshold)
        return _Found(boxes / scale, scores, marks / scale, np.zeros(len(scores), dtype=np.int8))

    def _verify(self, rgb: np.ndarray, weak: _Found, base: float, turns: int = 0) -> _Found:
        """Look again at weak small candidates in crops where the face would be ~36 px wide.

        ``weak`` and the result are in the coordinates of the photo turned by ``turns``; the crops are
        cut (and turned) straight from the full-size ``rgb``, which is never turned as a whole."""
        widths = weak.boxes[:, 2] - weak.boxes[:, 0]
        zoom = np.minimum(self.VERIFY_FACE / np.maximum(widths, 1.0), self.max_zoom)
        keep = zoom >= base * 1.5
        if not keep.any():
            return _Found.empty()
        centres = (weak.boxes[keep, :2] + weak.boxes[keep, 2:]) / 2
        zooms = zoom[keep]
        parts = []
        for start in range(0, len(zooms), self.VERIFY_BATCH):
            parts += self._verify_batch(rgb, centres[start:start + self.VERIFY_BATCH],
                                        zooms[start:start + self.VERIFY_BATCH], turns)
        return _Found.concat(parts)

    def _verify_batch(self, rgb: np.ndarray, centres: np.ndarray, zooms: np.ndarray, turns: int) -> list[_Found]:
        h0, w0 = rgb.shape[:2]
        turn = turn_matrix(turns, w0, h0)
        w, h = (h0, w0) if turns % 2 else (w0, h0)   # the turned photo's size
        side = self.VERIFY_SIDE
        blob = np.zeros((len(zooms), 3, side, side), np.float32)
        origins = []
        for i, ((cx, cy), z) in enumerate(zip(centres, zooms)):
            span = side / z
            x0, y0 = cx - span / 2, cy - span / 2
            # Affine map photo -> turned photo -> crop; outside the photo stays black.
            m = (np.array([[z, 0, -x0 * z], [0, z, -y0 * z]]) @ turn).astype(np.float32)
            crop = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            blob[i] = crop.transpose(2, 0, 1)
            origins.append((x0, y0, z))
        parts = []
        for (boxes, scores, marks), (x0, y0, z) in zip(self.centerface.run_blob(blob, self.threshold), origins):
            # A face cut by the crop's edge gives a truncated box; that face is some other crop's
            # (or the main pass's) business. The photo's own edges are not crop edges. ...
            e = self.VERIFY_EDGE
            lo = np.array([-e if x0 <= 0 else e, -e if y0 <= 0 else e]) * 1.0
            hi_x = side + e if x0 + side / z >= w else side - e
            hi_y = side + e if y0 + side / z >= h else side - e
            inside = (boxes[:, 0] >= lo[0]) & (boxes[:, 1] >= lo[1]) & (boxes[:, 2] <= hi_x) & (boxes[:, 3] <= hi_y)
            # ... unless it is the face the crop was made for, larger than the crop.
            c = side / 2
            centred = (boxes[:, 0] <= c) & (boxes[:, 2] >= c) & (boxes[:, 1] <= c) & (boxes[:, 3] >= c)
            keep = inside | centred
            boxes, scores, marks = boxes[keep], scores[keep], marks[keep]
            if len(scores):
                parts.append(_Found(boxes / z + [x0, y0, x0, y0], scores, marks / z + np.tile([x0, y0], 5),
                                    np.zeros(len(scores), dtype=np.int8)))
        return parts

    def _confirm(self, rgb: np.ndarray, main: _Found, base: float, turns: int) -> list[_Found]:
        """The clear faces of a pass over the photo scaled by ``base``, and its weak small peaks looked
        at again (``_verify``)."""
        strong = main.scores >= self.threshold
        found = [_Found(main.boxes[strong], main.scores[strong], main.landmarks[strong], main.source[strong])]
        small_weak = ~strong & ((main.boxes[:, 2] - main.boxes[:, 0]) * base < self.PROPOSAL_MAX_PX)
        if small_weak.any():
            weak = _Found(main.boxes[small_weak], main.scores[small_weak], main.landmarks[small_weak],
                          main.source[small_weak])
            found.append(self._verify(rgb, weak, base, turns))
        return found

    # The floor pass: the photo scaled so a face at the floor is FLOOR_FACE px wide, searched in TILE px squares
    # overlapping by TILE_OVERLAP; only faces narrower than FLOOR_KEEP px there are kept (wider ones are wholly
    # inside some tile, and the main pass finds them anyway). A face this small leaves a fainter peak (one of
    # 20 px peaked at 0.011, bench_floor), so peaks from FLOOR_PROPOSAL are looked at again (``_verify``).
    FLOOR_FACE = 12
    FLOOR_PROPOSAL = 0.01
    TILE = 1024
    TILE_OVERLAP = 96
    FLOOR_KEEP = 80

    def floor_scale(self, width: int, height: int) -> float:
        """The scale at which a face at the floor (``floor_px``) is FLOOR_FACE px wide, at most 1."""
        return min(1.0, self.FLOOR_FACE / floor_px(max(width, height), self.min_face_px, self.max_side))

    def _floor_pass(self, rgb: np.ndarray, scale: float) -> list[_Found]:
        """Small faces in the upright photo scaled by ``scale``, tile by tile (memory stays that of one tile
        whatever the photo's size). Shrunk bilinearly (by 0.6 at the default floor): bench_floor finds the same
        faces as with area averaging (12 and 48 MP), in a tenth of the time."""
        img = _resize(rgb, scale, bilinear_from=0.5)
        h, w = img.shape[:2]
        step = self.TILE - self.TILE_OVERLAP
        parts = []
        for y0 in range(0, max(1, h - self.TILE_OVERLAP), step):
            for x0 in range(0, max(1, w - self.TILE_OVERLAP), step):
                tile = img[y0:y0 + self.TILE, x0:x0 + self.TILE]
                boxes, scores, marks = self.centerface.run(tile, min(self.proposal_threshold, self.FLOOR_PROPOSAL))
                keep = boxes[:, 2] - boxes[:, 0] < self.FLOOR_KEEP
                parts.append(_Found((boxes[keep] + [x0, y0, x0, y0]) / scale, scores[keep],
                                    (marks[keep] + np.tile([x0, y0], 5)) / scale,
                                    np.zeros(int(keep.sum()), dtype=np.int8)))
        return self._confirm(rgb, _Found.concat(parts), scale, 0)

    def _hog_pass(self, rgb: np.ndarray, scale: float) -> _Found:
        """HOG on ``rgb``, which is the photo scaled by ``scale``."""
        rects, scores, _ = self._hog.run(np.ascontiguousarray(rgb), self.hog_upsample, self.hog_threshold)
        if not rects:
            return _Found.empty()
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], float) / scale
        # HOG scores are margins around 0; map to a rough 0..1 for sorting with CenterFace's.
        sc = 1 / (1 + np.exp(-2 * np.asarray(scores, float)))
        return _Found(boxes, sc, np.full((len(rects), 10), np.nan), np.ones(len(rects), dtype=np.int8))

    def _passes(self, rgb: np.ndarray, base_img: np.ndarray, base: float, turns: int,
                copies: _Copies) -> list[_Found]:
        """Every pass over the photo turned by ``turns``; ``base_img`` is the turned photo scaled by
        ``base``, ``copies`` the smaller upright copies (turned here as views). Boxes come back in the
        turned photo's coordinates."""
        found = self._confirm(rgb, self._cf(base_img, base, self.proposal_threshold), base, turns)
        for img, scale in copies.frames:
            if scale < base * 0.75:
                found.append(self._cf(np.rot90(img, turns), scale, self.threshold))
        if self._hog is not None and turns in self.hog_turns:
            img, scale = copies.hog
            found.append(self._hog_pass(np.ascontiguousarray(np.rot90(img, turns)), scale))
        return found

    def _copies(self, upright: np.ndarray, base: float, long: int, hog: bool = True) -> _Copies:
        """The frame-filling passes' and HOG's copies, each made once from the upright ``upright`` (the photo
        scaled by ``base``): a turned pass turns them as views. Shrinking a turned copy gives the very same
        pixels as turning the shrunk one (INTER_AREA; tests/test_detect.py), so one resize serves four turns."""
        frames = [(_resize(upright, (side / long) / base), side / long)
                  for side in self.small_sides if side / long < base * 0.75]
        hog_copy: tuple[np.ndarray | None, float] = (None, 1.0)
        if hog and self._hog is not None:
            scale = min(1.0, self.hog_side / long)
            hog_copy = (_resize(upright, scale / base), scale) if scale < base else (upright, base)
        return _Copies(frames, hog_copy)

    # Context (main-pass pixels) the second look's crops give each find: with 64, finds of 0.3 or more scored
    # within 0.0095 of the whole pass; with 32, up to 0.085 apart (benchmarks/bench_second_look.py).
    CONTEXT_PX = 64

    def detect_confident(self, rgb: np.ndarray, threshold: float,
                         changed: Sequence[tuple[int, int, int, int]] | None = None) -> list[FaceBox]:
        """Only clear faces: the main and frame-filling CenterFace passes at ``threshold``, without the
        zoomed re-check of faint candidates or HOG. For a second look at a finished picture, where
        only a confident new face matters; finding every faint face is ``detect``'s job.

        ``changed``: the areas (photo pixels) where ``rgb`` differs from a photo ``detect`` has already
        searched. The main pass then looks only around them: a find centred within CONTEXT_PX of an area
        (at the main pass's scale) is kept, from a crop giving it CONTEXT_PX more of the picture, so that it
        scores as in the whole pass. Farther away, a change moves CenterFace's heat map by less than 0.01:
        a clear face there was clear in the searched photo too. No area: nothing to search."""
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        long = max(h, w)
        base = min(1.0, self.base_side / long)
        if changed is not None and not changed:
            return []
        crops = crops_around(changed or [], base, w, h, self.CONTEXT_PX)
        base_img = _resize(rgb, base)
        if changed is None or sum(c.area for c in crops) > 0.75 * w * h:   # crops dearer than the whole pass
            found = [self._cf(base_img, base, threshold)]
        else:
            # Cut from the picture shrunk whole: the very pixels the whole pass sees (a crop shrunk by itself
            # is sampled a fraction of a pixel apart, which moves faint scores).
            found = [self._cf_around(base_img, base, threshold, crop) for crop in crops]
        found += [self._cf(img, scale, threshold) for img, scale in self._copies(base_img, base, long, hog=False).frames]
        return _merge(_Found.concat(found), w, h)

    def _cf_around(self, base_img: np.ndarray, base: float, threshold: float, crop: Crop) -> _Found:
        """CenterFace on ``crop`` of ``base_img`` (the photo scaled by ``base``): the finds it answers for."""
        x0, y0, x1, y1 = crop.on_grid(base)
        if x1 <= x0 or y1 <= y0:
            return _Found.empty()
        boxes, scores, marks = self.centerface.run(base_img[y0:y1, x0:x1], threshold)
        boxes = (boxes + [x0, y0, x0, y0]) / base
        marks = (marks + np.tile([x0, y0], 5)) / base
        keep = crop.answers_for(boxes)
        return _Found(boxes[keep], scores[keep], marks[keep], np.zeros(int(keep.sum()), dtype=np.int8))

    NEAR_FACE = 64    # px: the face size in the crop that ``faces_near`` looks at

    def faces_near(self, rgb: np.ndarray, box: tuple[int, int, int, int], threshold: float) -> list[FaceBox]:
        """Faces CenterFace sees in a crop around ``box`` (three times its size), scaled so a face of
        the box's size is about 64 px: a close look at one place, for a few milliseconds."""
        boxes, scores, marks = self.centerface.near(rgb, box, threshold, face_px=self.NEAR_FACE, span=3)
        found = _Found(boxes, scores, marks, np.zeros(len(scores), dtype=np.int8))
        return _merge(found, rgb.shape[1], rgb.shape[0])

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """All faces in an RGB uint8 (H, W, 3) array, at any quarter turn, best first. Low threshold:
        over-finding is safe."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        base = min(1.0, self.base_side / max(h, w))
        # Every smaller copy is made from this one: resizing 12 MP costs as much as a pass.
        upright = _resize(rgb, base)
        turned_base = min(base, self.turned_side / max(h, w))
        found = []
        for photo in (rgb, *_hard_to_see(rgb)):
            if photo is not rgb:
                upright = _resize(photo, base)
            small = upright if turned_base == base else _resize(upright, turned_base / base)
            copies = self._copies(upright, base, max(h, w))
            for turns in self.quarter_turns:
                if turns % 4 == 0:
                    base_img, scale = upright, base
                else:
                    # The small copy is turned (as a view: CenterFace copies it into its input anyway),
                    # never the 12 MP photo.
                    base_img, scale = np.rot90(small, turns), turned_base
                found += [_unturn(f, turns, w, h) for f in self._passes(photo, base_img, scale, turns, copies)]
            # A large photo shrunk to ``base_side`` loses faces of a few dozen pixels: search it again
            # where a face at the floor is big enough to see (upright only: the cost grows with the
            # photo, and the turned passes already cost three main passes).
            fine = self.floor_scale(w, h)
            if fine > base * 1.05:
                found += self._floor_pass(photo, fine)
        return _merge(_Found.concat(found), w, h)


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
    """Greedy clustering by score. A cluster's box is the union of its boxes (over-covering is the
    safe error: a zoomed-in pass sometimes boxes only part of a face), except that a box more than
    twice as wide as the cluster's best is left to form its own cluster, and only boxes found with
    the photo turned one way count (as it stands if any was, else as for the best one): a face seen
    sideways gets a box of another shape, which would make the union too loose to identify the face by."""
    n = len(found.scores)
    if n == 0:
        return []
    order = np.argsort(-found.scores, kind="stable")
    boxes = found.boxes[order]
    sources = found.source[order]
    scores = found.scores[order]
    marks = found.landmarks[order]
    turns = found.turn_of()[order]
    bw = boxes[:, 2] - boxes[:, 0]
    same = _same_face(boxes, boxes)
    same = same | same.T
    taken = np.zeros(n, bool)
    faces: list[FaceBox] = []
    for i in range(n):
        if taken[i]:
            continue
        members = np.nonzero(same[i] & ~taken & (bw <= 2 * bw[i]))[0]
        members = np.union1d(members, [i])
        taken[members] = True
        # Describe the face as the photo stands when it was found so; the turned passes are for faces
        # the upright one does not see (and a face CenterFace finds upside down has its eyes swapped).
        seen = turns[members]
        members = members[seen == (0 if (seen == 0).any() else turns[i])]
        box = np.concatenate([boxes[members, :2].min(axis=0), boxes[members, 2:].max(axis=0)])
        kinds = set(sources[members].tolist())
        source = "both" if len(kinds) == 2 else ("hog" if 1 in kinds else "centerface")
        cf = members[sources[members] == 0]
        left = int(np.clip(np.floor(box[0]), 0, width))
        top = int(np.clip(np.floor(box[1]), 0, height))
        right = int(np.clip(np.ceil(box[2]), 0, width))
        bottom = int(np.clip(np.ceil(box[3]), 0, height))
        if right <= left or bottom <= top:
            continue
        lm = None
        if len(cf):
            m = marks[cf[0]]  # the best CenterFace box's landmarks
            lm = tuple((float(m[k]), float(m[k + 1])) for k in range(0, 10, 2))
        faces.append(FaceBox(left, top, right, bottom, float(scores[i]), source, lm))
    return faces
