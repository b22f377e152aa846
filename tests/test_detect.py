"""The detector on scenes built from public-domain faces, in every EXIF orientation."""

from __future__ import annotations

import io

import facekit
import numpy as np
import pytest
from PIL import Image, ImageOps

from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.boxes import covers


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def oriented(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def missed(boxes: list[FaceBox], truth) -> list:
    return [t for t in truth if not any(covers(b.box, t) for b in boxes)]


# A large photo (so the main pass runs scaled down and small faces need the zoomed-in pass),
# with faces from 24 px to 300 px.
FACES = [("astronaut", 200, 300, 24), ("hopper", 900, 350, 28), ("astronaut", 1700, 300, 36),
         ("hopper", 2500, 400, 60), ("astronaut", 300, 1300, 120), ("hopper", 1500, 1200, 300)]


@pytest.fixture(scope="module")
def big_scene():
    return facekit.scene(3200, 2400, FACES, seed=4)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_finds_faces_of_every_size_in_every_orientation(detector, big_scene, orientation):
    rgb, truth = big_scene
    loaded = oriented(facekit.jpeg_bytes(rgb, orientation))
    assert loaded.shape == rgb.shape
    boxes = detector.detect(loaded)
    assert missed(boxes, truth) == []


def test_portrait_photo(detector):
    rgb, truth = facekit.scene(1800, 2400, [("hopper", 300, 300, 26), ("astronaut", 1000, 1500, 90)], seed=2)
    assert missed(detector.detect(rgb), truth) == []


def test_face_that_fills_the_frame(detector):
    patch = facekit.face_patch("hopper", 1100, context=0.25)
    face = patch.face
    boxes = detector.detect(patch.rgb)
    assert missed(boxes, [face]) == []


def test_small_photo_small_faces(detector):
    rgb, truth = facekit.scene(500, 375, [("astronaut", 40, 40, 24), ("hopper", 300, 200, 40)], seed=1)
    assert missed(detector.detect(rgb), truth) == []


def test_no_boxes_on_a_plain_wall(detector):
    assert detector.detect(facekit.background(1600, 1200, seed=9)) == []


def test_boxes_are_clipped_and_sorted(detector):
    # A face cut by the left and top edges of the photo.
    patch = facekit.face_patch("astronaut", 200)
    crop = np.ascontiguousarray(patch.rgb[patch.face[1] + 40:, patch.face[0] + 50:])
    boxes = detector.detect(crop)
    assert boxes, "a face cut by the edge must still be found"
    h, w = crop.shape[:2]
    for b in boxes:
        assert 0 <= b.left < b.right <= w and 0 <= b.top < b.bottom <= h
        assert isinstance(b.left, int) and b.width == b.right - b.left
    scores = [b.score for b in boxes]
    assert scores == sorted(scores, reverse=True)


def test_both_detectors_merge_into_one_box(detector):
    img = facekit.face_image("hopper")
    boxes = detector.detect(img)
    main = max(boxes, key=lambda b: b.width)
    assert main.source == "both"
    assert covers(main.box, facekit.FACE_BOX["hopper"])
    assert main.landmarks is not None and len(main.landmarks) == 5
    # Landmarks lie inside the box: eyes above the mouth.
    (lx, ly), (rx, ry), _, (mlx, mly), _ = main.landmarks
    assert main.left <= lx < rx <= main.right and ly < mly


def test_centerface_only(detector):
    only = FaceDetector(use_hog=False)
    boxes = only.detect(facekit.face_image("astronaut"))
    assert boxes and {b.source for b in boxes} == {"centerface"}
    assert any(covers(b.box, facekit.FACE_BOX["astronaut"]) for b in boxes)


def test_rejects_non_rgb(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10), np.uint8))


def test_faces_near_looks_closely_at_one_place(detector):
    rgb, truth = facekit.scene(1600, 1200, [("hopper", 300, 300, 90), ("astronaut", 1100, 700, 40)], seed=8)
    for box in truth:
        near = detector.faces_near(rgb, box, 0.3)
        assert any(f.left <= (box[0] + box[2]) / 2 <= f.right for f in near), box
    assert detector.faces_near(rgb, (700, 100, 790, 190), 0.3) == []   # plain wall


def test_a_smaller_copy_is_made_once_for_all_quarter_turns(detector, monkeypatch):
    """The frame-filling and HOG copies are shrunk once and turned, not shrunk again for every quarter turn:
    as many resizes with four turns as with one, and the turned copy's pixels are the same either way."""
    from photoguard.engine import detect

    rgb, _ = facekit.scene(1600, 1200, [("astronaut", 300, 300, 200)], seed=2)
    upright = detect._resize(rgb, 0.8)
    for turns in (1, 2, 3):   # what the change relies on: INTER_AREA commutes with a quarter turn
        assert np.array_equal(detect._resize(np.ascontiguousarray(np.rot90(upright, turns)), 0.25),
                              np.rot90(detect._resize(upright, 0.25), turns))
    sizes = []
    resize = detect._resize
    monkeypatch.setattr(detect, "_resize", lambda img, scale, **kw: sizes.append((img.shape, scale)) or resize(img, scale, **kw))
    counts = {}
    for quarter_turns in ((0,), (0, 1, 2, 3)):
        sizes.clear()
        FaceDetector(quarter_turns=quarter_turns).detect(rgb)
        counts[quarter_turns] = len([s for s in sizes if s[1] != 1.0])
    # 320 px frame-filling, 640 px HOG (the 1280 px main copy is made once, by main_copy)
    assert counts[(0,)] == counts[(0, 1, 2, 3)] == 2
