"""A face the detector boxes only in part (the rest behind a hand, or a skin-coloured toy over half of
it) is still hidden whole: the obscured area grows to the head its landmarks belong to, and the second
look treats a face-shaped remainder beside an obscured area as a face."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from facekit import jpeg_bytes, scene
from PIL import Image

from photoguard.engine.detect import FaceDetector
from photoguard.engine.obscure import head_from_landmarks, obscure_mask
from photoguard.flow.pipeline import Processor
from photoguard.store.home import open_home

FACE_AT = (380, 220, 110)   # x, y, width of the face in the scene


class SeesHalf(FaceDetector):
    """A real detector whose search boxes only the left half of each face, as CenterFace did when a
    skin-coloured oval covered that half; with ``landmarks=False`` it also loses the landmarks (as for a
    face only dlib's HOG found). The second look's own searches are the real detector's."""

    def __init__(self, landmarks: bool) -> None:
        super().__init__()
        self.landmarks = landmarks

    def detect(self, rgb, main_copy=None):
        return [replace(f, right=f.left + f.width // 2, landmarks=f.landmarks if self.landmarks else None)
                for f in super().detect(rgb, main_copy)]


def photo() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    rgb, boxes = scene(900, 650, [("astronaut", *FACE_AT)], seed=4)
    return rgb, boxes[0]


def right_half(box) -> tuple[int, int, int, int]:
    """The right eye and the right half of the mouth."""
    left, top, right, bottom = box
    width = right - left
    return left + width // 2 + 8, top + 10, right, bottom - 5


def changed(path, rgb, box) -> float:
    with Image.open(path) as im:
        out = np.asarray(im.convert("RGB")).astype(np.int16)
    left, top, right, bottom = box
    return float(np.abs(out[top:bottom, left:right] - rgb[top:bottom, left:right].astype(np.int16)).mean())


@pytest.fixture
def home(tmp_path):
    return open_home(tmp_path / "home")   # nobody enrolled: every face is obscured


def test_the_head_is_grown_from_the_landmarks():
    rgb, truth = photo()
    whole = FaceDetector().detect(rgb)[0]
    half = replace(whole, right=whole.left + whole.width // 2)
    head = head_from_landmarks(half)
    assert head is not None and head[2] >= truth[2] - 5          # reaches the right side of the face
    left, top, right, bottom = right_half(truth)
    assert obscure_mask(rgb.shape, half)[top:bottom, left:right].mean() > 0.95
    assert head_from_landmarks(replace(half, landmarks=None)) is None
    # A whole face's obscured area hardly grows (a consented child beside it is not hidden).
    before = obscure_mask(rgb.shape, replace(whole, landmarks=None)).sum()
    assert obscure_mask(rgb.shape, whole).sum() <= before * 1.10


def test_half_boxed_face_with_landmarks_is_obscured_whole_in_every_copy(home):
    rgb, truth = photo()
    (home.inbox / "oval.jpg").write_bytes(jpeg_bytes(rgb))
    result = Processor(home, detector=SeesHalf(landmarks=True)).process(home.inbox / "oval.jpg")
    assert result.status == "cleared", result.reason
    for channel in home.settings.channels:
        out = home.outbox_for(channel) / "oval.jpg"
        assert changed(out, rgb, right_half(truth)) > 15, channel   # the right eye and mouth are obscured too


def test_remainder_beside_an_obscured_area_is_held_as_a_face(home):
    rgb, truth = photo()
    (home.inbox / "oval.jpg").write_bytes(jpeg_bytes(rgb))
    result = Processor(home, detector=SeesHalf(landmarks=False)).process(home.inbox / "oval.jpg")
    assert result.status == "review", result.reason
    assert "missed" in result.reason
    assert not any(list(home.outbox_for(c).iterdir()) for c in home.settings.channels)
    held = next(p for p in home.review.iterdir() if p.suffix == ".jpg")
    assert changed(held, rgb, right_half(truth)) > 15          # what the manager sees hides it too
