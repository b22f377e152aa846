"""What the networks answered for pixels they have already seen while one photo is processed.

The channels' pictures of one photo differ only where a face is shown in one and obscured in another, so the
second look meets the same crops, and the same obscured faces, in each picture. A network's answer depends on
nothing but its input's pixels (and the threshold), so an input seen before is answered from here, not run
again. One ``Seen`` lives as long as one photo's decision: it holds answers (boxes, embeddings), never pixels.
"""

from __future__ import annotations

import copy
import hashlib
from typing import TYPE_CHECKING

import numpy as np

from photoguard.engine.centerface import CenterFace

if TYPE_CHECKING:
    from photoguard.engine.detect import FaceDetector
    from photoguard.engine.embed import FaceEncoder
    from photoguard.engine.sface import SFace


class Seen:
    """Answers by (what was asked, a digest of the input's pixels and shape)."""

    def __init__(self) -> None:
        self._answers: dict[tuple, object] = {}
        self.asked = 0      # inputs asked about
        self.answered = 0   # of them, answered from here

    def __len__(self) -> int:
        return len(self._answers)

    @staticmethod
    def key(kind: str, pixels: np.ndarray, *more: object) -> tuple:
        pixels = np.ascontiguousarray(pixels)
        return (kind, pixels.shape, str(pixels.dtype), *more, hashlib.blake2b(pixels.data, digest_size=20).digest())

    def get(self, key: tuple):
        self.asked += 1
        answer = self._answers.get(key)
        if answer is not None:
            self.answered += 1
        return answer

    def put(self, key: tuple, answer: object) -> None:
        self._answers[key] = answer

    def __getitem__(self, key: tuple):
        return self._answers[key]


class _SeenCenterFace(CenterFace):
    """CenterFace answering pictures already seen from ``seen`` (``near`` crops included: it calls ``run``)."""

    def __init__(self, inner: CenterFace, seen: Seen) -> None:   # no model load: the inner one's sessions
        self.__dict__.update(inner.__dict__)
        self._seen = seen

    def run(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = Seen.key("centerface", rgb, float(threshold))
        answer = self._seen.get(key)
        if answer is None:
            answer = super().run(rgb, threshold)
            self._seen.put(key, answer)
        return tuple(a.copy() for a in answer)


class _SeenSFace:
    """SFace embedding chips already seen from ``seen``; the others in one network call, as before."""

    def __init__(self, inner: SFace, seen: Seen) -> None:
        self._inner = inner
        self._seen = seen

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        keys = [Seen.key("sface", chip) for chip in chips_rgb]
        answers = [self._seen.get(k) for k in keys]
        new = {k: i for i, (k, a) in enumerate(zip(keys, answers)) if a is None}
        if new:
            for k, embedding in zip(new, self._inner.embed(np.stack([chips_rgb[i] for i in new.values()]))):
                self._seen.put(k, embedding)
        if not keys:
            return self._inner.embed(chips_rgb)
        return np.stack([self._seen[k] if a is None else a for k, a in zip(keys, answers)])


def remembering_detector(detector: FaceDetector, seen: Seen) -> FaceDetector:
    """``detector`` answering the pictures in ``seen`` from there (and adding the new ones)."""
    twin = copy.copy(detector)
    twin.centerface = _SeenCenterFace(detector.centerface, seen)
    return twin


def remembering_encoder(encoder: FaceEncoder, seen: Seen) -> FaceEncoder:
    """``encoder`` answering the chips (and close looks for landmarks) in ``seen`` from there."""
    twin = copy.copy(encoder)
    twin.sface = _SeenSFace(encoder.sface, seen)
    if encoder._centerface is None:   # made here once for the encoder, not once for each photo's twin
        encoder._centerface = CenterFace()
    twin._centerface = _SeenCenterFace(encoder._centerface, seen)
    return twin
