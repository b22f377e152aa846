"""Find every face: CenterFace (ONNX Runtime; float upright, int8 for the quarter turns and the floor's tiles
with every face they find described in float) at several scales and zoomed-in crops, plus HOG, merged.

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
from photoguard.engine.candidates import (FaceBox, Searched, _Found, _merge, _unturn, describe, float_search, mapped,
                                         scaled)
from photoguard.engine.centerface import CenterFace
from photoguard.engine.floor import FloorPass
from photoguard.photos.shrink import shrink_to

__all__ = ["UNRECOGNISABLE_PX", "FaceBox", "FaceDetector", "floor_px", "published_scale"]

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


@dataclass
class _Copies:
    """Smaller upright copies of the photo, made once for all the quarter turns: (picture, its scale)."""
    frames: list[tuple[np.ndarray, float]]   # for the frame-filling passes (``small_sides``)
    hog: tuple[np.ndarray | None, float]      # for HOG (None without HOG)


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


class FaceDetector(FloorPass):
    """Load the models once; ``detect`` many photos.

    The upright passes search with the float CenterFace; the quarter turns and the floor's tiles with its int8
    copy (``int8=False``: in float too), and every face they find wide enough to be described then gets its
    box, score and landmarks from the float model on a crop of the same pass's input (candidates.describe;
    the floor: floor.FloorPass), so that SFace aligns it as it would after an all-float search.

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
      FLOOR_FACE px wide, its weak peaks re-checked like the main pass's (floor.py).
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
        int8: bool = True,
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
        # The float model searches upright, describes the faces (``describe``) and looks closely at one place
        # (``faces_near``); the other passes run ``searcher``, the int8 copy (``int8=False``: the float model).
        self.centerface = CenterFace()
        self.int8 = int8
        self.searcher = CenterFace(int8=True) if int8 else self.centerface
        # int8's scores stray a little from float's near the threshold: it proposes down to SEARCH_SLACK times
        # the threshold, and a proposal below the threshold stays only if the float model's look confirms it.
        self.search_threshold = threshold * (self.SEARCH_SLACK if int8 else 1.0)
        self._hog = None
        if use_hog:
            import dlib

            self._hog = dlib.get_frontal_face_detector()

    SEARCH_SLACK = 0.8

    # Weak peaks narrower than this in the main pass's input are re-checked at a higher zoom,
    # sized so the face is about VERIFY_FACE px wide in a VERIFY_SIDE px crop.
    PROPOSAL_MAX_PX = 24
    VERIFY_FACE = 36
    VERIFY_SIDE = 96
    VERIFY_EDGE = 6   # crop pixels: boxes this close to a crop edge are cut faces
    VERIFY_BATCH = 64

    def _cf(self, rgb: np.ndarray, scale: float, threshold: float, confirm: tuple[np.ndarray, float] | None = None,
            searched: list[tuple[Searched, int]] | None = None, turns: int = 0) -> _Found:
        """A search of ``rgb`` (the turned photo scaled by ``scale``); ``searched`` collects the inputs searched."""
        seen = scaled(rgb, scale, confirm=confirm)
        if searched is not None:
            searched.append((seen, turns))
        boxes, scores, marks = self.searcher.run(rgb, threshold)
        return _Found.of(boxes / scale, scores, marks / scale, seen)

    def _float_pass(self, rgb: np.ndarray, scale: float, threshold: float,
                    seen: Searched | None = None) -> _Found:
        """A search of ``rgb`` (the upright photo scaled by ``scale``) by the float model, its finds marked as
        ``seen`` (a ``float_search``): already what ``describe`` would make of them."""
        boxes, scores, marks = self.centerface.run(rgb, threshold)
        return _Found.of(boxes / scale, scores, marks / scale, seen if seen is not None else float_search())

    def _look(self, seen: Searched, rect: tuple[int, int, int, int], turns: int, faces: np.ndarray,
              width: int, height: int) -> _Found:
        """The pass that searched ``seen`` repeated by the float model on ``rect`` of it (its threshold, its
        zoomed re-check of the weak small peaks whose crops reach ``faces``), finds in the photo's pixels:
        ``candidates.describe``'s look."""
        x0, y0, x1, y1 = rect
        threshold = self.proposal_threshold if seen.confirm is not None else self.threshold
        boxes, scores, marks = self.centerface.run(seen.image[y0:y1, x0:x1], threshold)
        boxes, marks = mapped(boxes, marks, seen.to_turned @ [[1, 0, x0], [0, 1, y0], [0, 0, 1]])
        found = _Found.of(boxes, scores, marks, seen)
        if seen.confirm is not None:
            near, _ = mapped(faces, np.zeros((len(faces), 10)), turn_matrix(turns, width, height))
            found = _Found.concat(self._confirm(seen.confirm[0], found, seen.confirm[1], turns, near))
        return _unturn(found, turns, width, height)

    def _verify(self, rgb: np.ndarray, weak: _Found, base: float, turns: int = 0,
                near: np.ndarray | None = None, described: Searched | None = None,
                searching: float | None = None) -> _Found:
        """Look again at weak small candidates in crops where the face would be ~36 px wide.

        ``weak`` and the result are in the coordinates of the photo turned by ``turns``; the crops are
        cut (and turned) straight from the full-size ``rgb``, which is never turned as a whole. The float
        model looks where ``near`` or ``described`` say so, else ``searcher`` from ``searching`` (default:
        ``search_threshold``)."""
        widths = weak.boxes[:, 2] - weak.boxes[:, 0]
        zoom = np.minimum(self.VERIFY_FACE / np.maximum(widths, 1.0), self.max_zoom)
        keep = zoom >= base * 1.5
        centres = (weak.boxes[:, :2] + weak.boxes[:, 2:]) / 2
        if near is not None:   # the float model's look: only the crops that reach the faces it describes
            half = self.VERIFY_SIDE / zoom[:, None] / 2
            reach = np.c_[centres - half, centres + half]
            overlap = (reach[:, None, :2] < near[None, :, 2:]) & (reach[:, None, 2:] > near[None, :, :2])
            keep &= overlap.all(axis=2).any(axis=1)
        if not keep.any():
            return _Found.empty()
        centres = centres[keep]
        zooms = zoom[keep]
        parts = []
        for start in range(0, len(zooms), self.VERIFY_BATCH):
            batch = slice(start, start + self.VERIFY_BATCH)
            parts += self._verify_batch(rgb, centres[batch], zooms[batch], turns,
                                        near is not None or described is not None, described, searching)
        return _Found.concat(parts)

    def _verify_batch(self, rgb: np.ndarray, centres: np.ndarray, zooms: np.ndarray, turns: int,
                      describing: bool, described: Searched | None = None,
                      searching: float | None = None) -> list[_Found]:
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
        model, threshold = (self.centerface, self.threshold) if describing else \
            (self.searcher, self.search_threshold if searching is None else searching)
        for (boxes, scores, marks), (x0, y0, z) in zip(model.run_blob(blob, threshold), origins):
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
                # (Described through the pass the crop was made for: candidates.describe looks at its input.)
                parts.append(_Found.of(boxes / z + [x0, y0, x0, y0], scores, marks / z + np.tile([x0, y0], 5),
                                           described))
        return parts

    def _confirm(self, rgb: np.ndarray, main: _Found, base: float, turns: int,
                 near: np.ndarray | None = None, described: Searched | None = None) -> list[_Found]:
        """The clear faces of a pass over the photo scaled by ``base``, and its weak small peaks looked
        at again (``_verify``); ``near``: the float model's look at these faces, at the threshold itself."""
        floating = near is not None or described is not None   # the float model's finds
        strong = main.scores >= (self.threshold if floating else self.search_threshold)
        found = [main.take(strong)]
        # (A proposal between the search threshold and the threshold is looked at again as well.)
        small = (main.boxes[:, 2] - main.boxes[:, 0]) * base < self.PROPOSAL_MAX_PX
        small_weak = (main.scores < self.threshold) & small
        if small_weak.any():
            found.append(self._verify(rgb, main.take(small_weak), base, turns, near, described))
        return found

    def floor_scale(self, width: int, height: int) -> float:
        """The scale at which a face at the floor (``floor_px``) is FLOOR_FACE px wide, at most 1."""
        return min(1.0, self.FLOOR_FACE / floor_px(max(width, height), self.min_face_px, self.max_side))

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
                copies: _Copies, searched: list[tuple[Searched, int]]) -> list[_Found]:
        """Every pass over the photo turned by ``turns``; ``base_img`` is the turned photo scaled by
        ``base``, ``copies`` the smaller upright copies (turned here as views). Boxes come back in the
        turned photo's coordinates."""
        if turns == 0:
            # Upright, the float model searches itself: most faces stand upright, and a float look at them in
            # this input would cost the whole pass again (the faces of a photo are spread over it).
            seen = float_search()
            found = self._confirm(rgb, self._float_pass(base_img, base, self.proposal_threshold, seen), base, turns,
                                  described=seen)
            found += [self._float_pass(img, scale, self.threshold) for img, scale in copies.frames
                      if scale < base * 0.75]
        else:
            main = self._cf(base_img, base, self.proposal_threshold, (rgb, base), searched, turns)
            found = self._confirm(rgb, main, base, turns)
            for img, scale in copies.frames:
                if scale < base * 0.75:
                    found.append(self._cf(np.rot90(img, turns), scale, self.search_threshold, None, searched, turns))
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

    # Context (pixels of the main pass's input) the second look's crops give each find: with 64, every find of
    # 0.3 or more near an obscured area scored within 0.0095 of the whole pass (72 renderings of the demo,
    # group, annotated and 12 MP photos); with 32, up to 0.085 apart (benchmarks/bench_second_look.py).
    CONTEXT_PX = 64

    def detect_confident(self, rgb: np.ndarray, threshold: float,
                         changed: Sequence[tuple[int, int, int, int]] | None = None,
                         like: tuple[np.ndarray, np.ndarray] | None = None) -> list[FaceBox]:
        """Only clear faces: the float CenterFace's main and frame-filling passes at ``threshold``, without the
        zoomed re-check of faint candidates or HOG. For a second look at a finished picture, where
        only a confident new face matters; finding every faint face is ``detect``'s job.

        ``changed``: the areas (photo pixels) where ``rgb`` differs from a photo ``detect`` has already
        searched. The main pass then looks only around them: a find centred within CONTEXT_PX of an area
        (at the main pass's scale) is kept, from a crop giving it CONTEXT_PX more of the picture, so that it
        scores as in the whole pass. Farther away, a change moves CenterFace's heat map by less than 0.01:
        a clear face there was clear in the searched photo too. No area: nothing to search.

        ``like``: (the searched photo, its ``main_copy``). ``rgb``'s own copy is then that one with only the blocks
        where the two differ shrunk again (``shrink.shrink_to``, ``bitwise=False``), not the whole photo."""
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        long = max(h, w)
        base = min(1.0, self.base_side / long)
        if changed is not None and not changed:
            return []
        crops = crops_around(changed or [], base, w, h, self.CONTEXT_PX)
        base_img = shrink_to(rgb, self.base_side, like, bitwise=False)
        if changed is None or sum(c.area for c in crops) > 0.75 * w * h:   # crops dearer than the whole pass
            found = [self._float_pass(base_img, base, threshold)]
        else:
            # Cut from the picture shrunk whole: the very pixels the whole pass sees (a crop shrunk by itself
            # is sampled a fraction of a pixel apart, which moves faint scores).
            found = [self._cf_around(base_img, base, threshold, crop) for crop in crops]
        found += [self._float_pass(img, scale, threshold)
                  for img, scale in self._copies(base_img, base, long, hog=False).frames]
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

    def main_copy(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` as the main pass searches it: at most ``base_side`` px on its long side (area-averaged), or
        ``rgb`` itself. Made once for ``detect`` and the second look (``detect_confident(like=)``) of a photo."""
        return shrink_to(np.ascontiguousarray(rgb), self.base_side)

    def detect(self, rgb: np.ndarray, main_copy: np.ndarray | None = None) -> list[FaceBox]:
        """All faces in an RGB uint8 (H, W, 3) array, at any quarter turn, best first. Low threshold:
        over-finding is safe. ``main_copy``: ``self.main_copy(rgb)``, if already made."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        base = min(1.0, self.base_side / max(h, w))
        # Every smaller copy is made from this one: resizing 12 MP costs as much as a pass.
        upright = self.main_copy(rgb) if main_copy is None else main_copy
        if upright.shape != (rgb.shape if base >= 1 else (max(1, round(h * base)), max(1, round(w * base)), 3)):
            raise ValueError(f"main_copy is {upright.shape[1]}x{upright.shape[0]}, not this photo's main copy")
        turned_base = min(base, self.turned_side / max(h, w))
        found = []
        searched: list[tuple[Searched, int]] = []   # every input the passes searched, and its quarter turns
        for photo in (rgb, *_hard_to_see(rgb)):
            if photo is not rgb:
                upright = self.main_copy(photo)
            small = upright if turned_base == base else _resize(upright, turned_base / base)
            copies = self._copies(upright, base, max(h, w))
            upright_finds = _Found.empty()
            for turns in self.quarter_turns:
                if turns % 4 == 0:
                    base_img, scale = upright, base
                else:
                    # The small copy is turned (as a view: CenterFace copies it into its input anyway),
                    # never the 12 MP photo.
                    base_img, scale = np.rot90(small, turns), turned_base
                passes = self._passes(photo, base_img, scale, turns, copies, searched)
                if turns % 4 == 0:
                    upright_finds = _Found.concat(passes)
                found += [_unturn(f, turns, w, h) for f in passes]
            # A large photo shrunk to ``base_side`` loses faces of a few dozen pixels: search it again
            # where a face at the floor is big enough to see (upright only: the cost grows with the
            # photo, and the turned passes already cost three main passes).
            fine = self.floor_scale(w, h)
            if fine > base * 1.05:
                # Shrunk bilinearly (by 0.6 at the default floor): bench_floor finds the same faces as with area
                # averaging (12 and 48 MP), in a tenth of the time.
                found += self._floor_pass(photo, _resize(photo, fine, bilinear_from=0.5), fine, upright_finds)
        candidates = _Found.concat(found)
        if self.int8:
            # int8 searched; the float model describes every face it found (boxes, scores, landmarks).
            def look(seen: Searched, rect: tuple[int, int, int, int], turns: int, faces: np.ndarray) -> _Found:
                return self._look(seen, rect, turns, faces, w, h)

            candidates = describe(candidates, searched, look, w, h, self.threshold)
        return _merge(candidates, w, h)

    def warm_up(self) -> None:
        """Make both models' sessions for the process's thread count now, and run each once on a picture the
        size of a main pass (upright for the float model, turned for int8), so that no photo waits for it."""
        side = self.base_side
        blank = np.zeros((side * 3 // 4, side, 3), np.uint8)
        self.centerface.run(blank, 1.0)
        if self.int8:
            self.searcher.run(blank.transpose(1, 0, 2), 1.0)
