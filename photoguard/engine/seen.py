"""What the networks answered for pixels they have already seen while one photo is processed.

The channels' pictures of one photo differ only where a face is shown in one and obscured in another, so the
second look meets the same crops, and the same obscured faces, in each picture. A network's answer depends on
nothing but its input's pixels (and the threshold), so an input seen before is answered from here, not run
again. One ``Seen`` lives as long as one photo's decision: it holds answers (boxes, embeddings), never pixels.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from photoguard.engine.centerface import CenterFace

if TYPE_CHECKING:
    from photoguard.engine.detect import FaceDetector
    from photoguard.engine.embed import FaceEncoder
    from photoguard.engine.sface import SFace


class Seen:
    """Answers by (what was asked, the input's shape and a digest of its pixels); ``answered`` counts the
    inputs answered from here."""

    def __init__(self) -> None:
        self._answers: dict[tuple, object] = {}
        self.answered = 0

    @staticmethod
    def key(kind: str, pixels: np.ndarray, *more: object) -> tuple:
        pixels = np.ascontiguousarray(pixels)
        return (kind, pixels.shape, str(pixels.dtype), *more, hashlib.blake2b(pixels.data, digest_size=20).digest())

    def recall(self, keys: Sequence[tuple], make: Callable[[list[int]], Sequence[object]]) -> list:
        """The answers for ``keys``: those never seen from ``make``, called once with their indexes."""
        new = list({k: i for i, k in enumerate(keys) if k not in self._answers}.values())
        self.answered += len(keys) - len(new)
        if new:
            for i, answer in zip(new, make(new)):
                self._answers[keys[i]] = answer
        return [self._answers[k] for k in keys]


class _SeenCenterFace(CenterFace):
    """CenterFace answering pictures already seen from ``seen`` (``near`` crops included: it calls ``run``)."""

    def __init__(self, inner: CenterFace, seen: Seen) -> None:   # no model load: the inner one's sessions
        self.__dict__.update(inner.__dict__)
        self._seen = seen

    def run(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = Seen.key("centerface", rgb, float(threshold))
        answer = self._seen.recall([key], lambda _: [CenterFace.run(self, rgb, threshold)])[0]
        return tuple(a.copy() for a in answer)


class _SeenSFace:
    """SFace embedding chips already seen from ``seen``; the others in one network call, as before."""

    def __init__(self, inner: SFace, seen: Seen) -> None:
        self._inner = inner
        self._seen = seen

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        if len(chips_rgb) == 0:
            return self._inner.embed(chips_rgb)
        keys = [Seen.key("sface", chip) for chip in chips_rgb]
        return np.stack(self._seen.recall(keys, lambda new: self._inner.embed(np.stack([chips_rgb[i] for i in new]))))


def remembering_detector(detector: FaceDetector, seen: Seen) -> FaceDetector:
    """``detector`` answering the pictures in ``seen`` from there (and adding the new ones)."""
    twin = copy.copy(detector)
    twin.centerface = _SeenCenterFace(detector.centerface, seen)
    return twin


def remembering_encoder(encoder: FaceEncoder, seen: Seen) -> FaceEncoder:
    """``encoder`` answering the chips and the close looks for landmarks in ``seen`` from there."""
    twin = copy.copy(encoder)
    twin.sface = _SeenSFace(encoder.sface, seen)
    twin.centerface = _SeenCenterFace(encoder.centerface, seen)
    return twin
