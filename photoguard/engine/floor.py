"""The floor pass: a large photo searched again where a face at the floor is big enough to see.

A photo shrunk to the main pass's 1280 px loses faces of a few dozen pixels, which its published copy may still
show large enough to recognise (``detect.floor_px``). So the upright photo is searched again, scaled so a face
at the floor is FLOOR_FACE px wide, in tiles. Part of ``FaceDetector`` (a mixin: it uses the detector's models,
thresholds and zoomed look, ``_verify``).
"""

from __future__ import annotations

import numpy as np

from photoguard.engine.candidates import Searched, _Found, _grid_rect, _join, _meets, _stands_for, float_search


class FloorPass:
    """``FaceDetector``'s floor pass."""

    # The photo scaled so a face at the floor is FLOOR_FACE px wide, searched in TILE px squares
    # overlapping by TILE_OVERLAP; only faces narrower than FLOOR_KEEP px there are kept (wider ones are wholly
    # inside some tile, and the main pass finds them anyway). A face this small leaves a fainter peak (one of
    # 20 px peaked at 0.011, bench_floor), so peaks from FLOOR_PROPOSAL are looked at again (``_verify``).
    FLOOR_FACE = 12
    FLOOR_PROPOSAL = 0.01
    TILE = 1024
    TILE_OVERLAP = 96
    FLOOR_KEEP = 80

    def _floor_pass(self, rgb: np.ndarray, img: np.ndarray, scale: float, upright: _Found) -> list[_Found]:
        """Small faces in the upright photo ``rgb``, searched in ``img`` (it scaled by ``scale``) tile by tile:
        memory stays that of one tile whatever the photo's size.

        With int8, the tiles are searched by the int8 model (proposals down to SEARCH_SLACK times FLOOR_PROPOSAL)
        and the float model looks again where it matters (``_floor_finds``), unless those looks would cover
        FLOOR_LOOK_SHARE of the picture or more: then the float model searches the tiles itself, as it does
        without int8. ``upright``: the finds of the upright passes."""
        floor = float_search()
        upright = upright.take(upright.source == 0)
        widths = (upright.boxes[:, 2] - upright.boxes[:, 0]) * scale
        described = upright.boxes[(widths >= self.PROPOSAL_MAX_PX) & (widths < self.FLOOR_KEEP)]
        looks = self._floor_looks(img, scale, described) if self.int8 else []
        h, w = img.shape[:2]
        int8 = self.int8 and sum((r[2] - r[0]) * (r[3] - r[1]) for _, r in looks) < self.FLOOR_LOOK_SHARE * w * h
        model = self.searcher if int8 else self.centerface
        proposal = min(self.proposal_threshold, self.FLOOR_PROPOSAL) * (self.SEARCH_SLACK if int8 else 1.0)
        parts = []
        for x0, y0, x1, y1 in self._tiles(w, h):
            boxes, scores, marks = model.run(img[y0:y1, x0:x1], proposal)
            keep = boxes[:, 2] - boxes[:, 0] < self.FLOOR_KEEP
            parts.append(_Found.of((boxes[keep] + [x0, y0, x0, y0]) / scale, scores[keep],
                                   (marks[keep] + np.tile([x0, y0], 5)) / scale, floor))
        found = _Found.concat(parts)
        if not int8:
            return self._confirm(rgb, found, scale, 0, described=floor)
        return self._floor_finds(rgb, img, scale, found, upright, looks, floor)

    # With int8, the float model looks again in the floor's picture at the upright faces it could describe
    # (PROPOSAL_MAX_PX wide there, up to FLOOR_KEEP), with CONTEXT around each: SFace aligns such a face by the
    # landmarks of its sharpest view, often the floor's (2-5 px apart from the main pass's on 60-125 px faces
    # of 12 MP photos). Where those looks cover this share of the picture, the float model searches it whole.
    FLOOR_LOOK_SHARE = 0.5
    # int8's zoomed look at a faint peak sends it on to the float model's from this times the threshold: at 0.8
    # (SEARCH_SLACK) one 24 px face and two of 16 px on bench_floor's two dense 48 MP scenes were lost, at 0.4 none.
    FLOOR_VERIFY_SLACK = 0.4

    def _tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The floor pass's tiles of a ``width`` x ``height`` picture: (left, top, right, bottom)."""
        step = self.TILE - self.TILE_OVERLAP
        return [(x0, y0, min(width, x0 + self.TILE), min(height, y0 + self.TILE))
                for y0 in range(0, max(1, height - self.TILE_OVERLAP), step)
                for x0 in range(0, max(1, width - self.TILE_OVERLAP), step)]

    def _floor_looks(self, img: np.ndarray, scale: float, faces: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
        """Where in the floor's picture ``img`` the float model looks at ``faces`` (boxes in the photo): in each
        tile that reaches a face, CONTEXT around it within the tile, so that the float model sees there what it
        sees searching the tile. (The faces a rectangle serves, the rectangle.)"""
        looks = []
        for x0, y0, x1, y1 in self._tiles(img.shape[1], img.shape[0]):
            mine, rects = [], []
            for face in faces:
                box = face * scale - [x0, y0, x0, y0]
                if box[2] > 0 and box[3] > 0 and box[0] < x1 - x0 and box[1] < y1 - y0:
                    r = _grid_rect(box, img[y0:y1, x0:x1])
                    mine.append(face)
                    rects.append((r[0] + x0, r[1] + y0, r[2] + x0, r[3] + y0))
            looks += [(np.array([mine[k] for k in which]), rect) for which, rect in _join(rects)]
        return looks

    def _floor_look(self, rgb: np.ndarray, img: np.ndarray, scale: float,
                    looks: list[tuple[np.ndarray, tuple[int, int, int, int]]], floor: Searched) -> _Found:
        """The float floor pass repeated on each of ``looks`` (its proposals, its zoomed look at the faint small
        ones): its finds of the faces each look is for, in photo pixels."""
        looked = []
        for faces, (x0, y0, x1, y1) in looks:
            boxes, scores, marks = self.centerface.run(img[y0:y1, x0:x1], min(self.proposal_threshold, self.FLOOR_PROPOSAL))
            keep = boxes[:, 2] - boxes[:, 0] < self.FLOOR_KEEP
            boxes = (boxes + [x0, y0, x0, y0]) / scale
            keep &= _meets(faces, boxes).any(axis=0)
            looked.append(_Found.of(boxes[keep], scores[keep], ((marks + np.tile([x0, y0], 5)) / scale)[keep], floor))
        return _Found.concat(self._confirm(rgb, _Found.concat(looked), scale, 0, described=floor))

    def _floor_finds(self, rgb: np.ndarray, img: np.ndarray, scale: float, found: _Found, upright: _Found,
                     looks: list[tuple[np.ndarray, tuple[int, int, int, int]]], floor: Searched) -> list[_Found]:
        """What the int8 floor tiles found (``found``, photo pixels), as the float floor pass would keep it.

        * The upright passes' faces the floor describes get the float model's finds in the floor's picture, from
          a look at each (``looks``).
        * Any other find of a face the upright passes (``upright``, their float finds) found adds nothing
          (``candidates._stands_for``).
        * The rest are faces only the floor sees. A small one (under PROPOSAL_MAX_PX there: too small to
          identify) stays, if clear, with int8's box and score but no landmarks (as ``candidates.describe`` keeps a
          face only int8 found: the encoder looks for them itself); if faint, it is looked at again in a zoomed
          crop, as the float pass's faint peaks are, by int8 first (``_floor_verify``). A larger one from SEARCH_SLACK times the
          threshold gets a float look as the upright faces do, and stays as ``describe`` would keep it: the float
          finds where the float model sees it, else int8's without landmarks if clear (recall first)."""
        parts = [self._floor_look(rgb, img, scale, looks, floor)]
        if len(found.scores) and len(upright.scores):
            found = found.take(~_stands_for(found.boxes, upright.boxes).any(axis=1))
        small = (found.boxes[:, 2] - found.boxes[:, 0]) * scale < self.PROPOSAL_MAX_PX
        clear = found.scores >= self.threshold
        alone = [found.take(small & clear)]
        larger = found.take(~small & (found.scores >= self.search_threshold))
        if len(larger.scores):
            floats = self._floor_look(rgb, img, scale, self._floor_looks(img, scale, larger.boxes), floor)
            seen = _meets(larger.boxes, floats.boxes).any(axis=1)
            parts.append(floats)
            alone.append(larger.take(~seen & (larger.scores >= self.threshold)))
        kept = _Found.concat(alone)
        kept.landmarks = np.full_like(kept.landmarks, np.nan)
        return [*parts, kept, self._floor_verify(rgb, found.take(small & ~clear), scale, floor)]

    def _floor_verify(self, rgb: np.ndarray, faint: _Found, scale: float, floor: Searched) -> _Found:
        """The faint small peaks ``faint`` looked at again in zoomed crops (``_verify``): first by the int8 model,
        then by the float model only in the crops where int8 saw a face from FLOOR_VERIFY_SLACK times the
        threshold. Almost every faint peak is nothing, and a face zoomed to VERIFY_FACE px is rarely a faint
        peak for either model."""
        seen = self._verify(rgb, faint, scale, 0, searching=self.threshold * self.FLOOR_VERIFY_SLACK)
        if not len(seen.scores):
            return seen
        widths = faint.boxes[:, 2] - faint.boxes[:, 0]
        half = self.VERIFY_SIDE / np.minimum(self.VERIFY_FACE / np.maximum(widths, 1.0), self.max_zoom) / 2
        centres = (faint.boxes[:, :2] + faint.boxes[:, 2:]) / 2
        found = (seen.boxes[:, :2] + seen.boxes[:, 2:]) / 2
        hit = (np.abs(found[None, :, :] - centres[:, None, :]) <= half[:, None, None]).all(axis=2).any(axis=1)
        return self._verify(rgb, faint.take(hit), scale, 0, described=floor)
