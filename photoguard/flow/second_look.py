"""The second look: every finished picture is searched again for faces the first look missed or obscured too
little, before anything leaves PhotoGuard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from photoguard.engine.boxes import same_face
from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.identify import encode_faces
from photoguard.engine.obscure import obscure_mask, obscured_area
from photoguard.engine.seen import Seen, remembering_detector, remembering_encoder
from photoguard.flow.results import SECOND_LOOK_SCORE, SecondLook


class SecondLooks:
    """The Processor's second look at its own pictures."""

    def verify(self, rendered: np.ndarray, faces: Sequence[FaceBox], shown: Sequence[bool],
               original: np.ndarray) -> str | None:
        """Second look at an output. Returns why it is not safe (in words), or None."""
        return self.second_look(rendered, faces, shown, original).problem()

    def second_look(self, rendered: np.ndarray, faces: Sequence[FaceBox], shown: Sequence[bool],
                    original: np.ndarray, in_original: dict[tuple[int, int, int, int], bool] | None = None,
                    *, around_obscured: bool = False, seen: Seen | None = None,
                    original_copy: np.ndarray | None = None) -> SecondLook:
        """Look again at a finished picture before anyone can publish it.

        A face found that is neither one we show nor one we obscured, and that is there in the
        original photo too, was missed the first time; an obscured face that can still be recognised
        as an enrolled child was not obscured enough. ``in_original`` remembers, across the pictures
        of one photo, whether a place was looked at in the original and held a face: decided once.

        ``around_obscured``: ``faces`` are everything ``detect`` found in ``original`` just now (the pipeline's
        own first look), so only around the obscured areas can the picture hold a clear face the first look
        did not: the main search looks there only, for half the time or less. Otherwise (faces on record,
        perhaps from an older version or other settings) the whole picture is searched again.

        ``original_copy``: ``original`` as the main pass searched it (``FaceDetector.main_copy``): the picture's own
        is then shrunk again only where it differs from the original.
        """
        if in_original is None:
            in_original = {}
        detector, encoder = self.detector, self.encoder
        if seen is not None:
            detector, encoder = remembering_detector(detector, seen), remembering_encoder(encoder, seen)
        height, width = rendered.shape[:2]
        known = [f.box for f in faces]
        hidden_faces = [f for f, keep in zip(faces, shown) if not keep]
        missed: list[FaceBox] = []
        changed = None
        if around_obscured:
            changed = [a for f in hidden_faces if (a := obscured_area(rendered.shape, f, self.settings.obscure_grow))]
        threshold = max(self.settings.detect_threshold, SECOND_LOOK_SCORE)
        like = (original, original_copy) if original_copy is not None else None
        for found in detector.detect_confident(rendered, threshold, changed, like):
            box = found.box
            if any(same_face(box, k) for k in known) or any(same_face(box, m.box) for m in missed):
                continue
            # Pixelation can itself look like a face to a detector: a find centred inside the area
            # obscure.py actually obscured is that, not a missed face ...
            cx = min(int((box[0] + box[2]) / 2), width - 1)
            cy = min(int((box[1] + box[3]) / 2), height - 1)
            if any(obscure_mask(rendered.shape, f, self.settings.obscure_grow)[cy, cx] for f in hidden_faces):
                continue
            # ... and so can pixelation next to a face. Such a "face" is not in the photo: a close look
            # at the same place in the original finds nothing there.
            if box not in in_original:
                in_original[box] = any(
                    same_face(box, f.box) and not any(same_face(f.box, k) for k in known)
                    for f in detector.faces_near(original, box, self.settings.detect_threshold))
            if in_original[box]:
                missed.append(found)
        missed += self._remainders(rendered, faces, shown, missed, detector)
        recognisable: list[tuple[int, str]] = []
        hidden = [(i, f) for i, (f, keep) in enumerate(zip(faces, shown)) if not keep and f.width >= self.settings.min_face_px]
        if hidden and self.templates:
            encodings = encode_faces(rendered, [f for _, f in hidden], encoder=encoder)
            for (i, face), encoding in zip(hidden, encodings):
                if encoding is None:
                    continue
                # Still recognisable: as alike to any one reference of a child as a match must be to their
                # mean (stricter than the matching rule: when in doubt, a person looks).
                similarities = self.template_matrix @ encoding
                best = int(np.argmax(similarities))
                if similarities[best] >= self.settings.match_similarity:
                    recognisable.append((i, self.templates[best].child_id))
        return SecondLook(width, height, missed, [f.box for f in faces], recognisable)

    def _remainders(self, rendered: np.ndarray, faces: Sequence[FaceBox], shown: Sequence[bool],
                    missed: Sequence[FaceBox], detector: FaceDetector) -> list[FaceBox]:
        """Faces seen close by an obscured area with an eye or a mouth corner outside it: the rest of a face
        the detector boxed only in part (the other half behind a hand, or a skin-coloured toy). Pixelation
        that looks like a face has its features inside the obscured area; a face beside it that we show
        is not a remainder."""
        hidden = [f for f, keep in zip(faces, shown) if not keep]
        if not hidden:
            return []
        height, width = rendered.shape[:2]
        grow = self.settings.obscure_grow
        covered = np.zeros((height, width), dtype=bool)
        for face in hidden:
            covered |= obscure_mask(rendered.shape, face, grow)
        visible = [f.box for f, keep in zip(faces, shown) if keep]
        found: list[FaceBox] = []
        for face in hidden:
            for near in detector.faces_near(rendered, face.box, max(self.settings.detect_threshold, SECOND_LOOK_SCORE)):
                if near.landmarks is None or any(same_face(near.box, b) for b in visible) or \
                        any(same_face(near.box, m.box) for m in (*missed, *found)):
                    continue
                if any(0 <= x < width and 0 <= y < height and not covered[int(y), int(x)] for x, y in near.landmarks):
                    found.append(near)
        return found
