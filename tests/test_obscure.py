"""Obscuring is irreversible, local, unpredictable, and safe at image edges and at any face size."""

import numpy as np
import pytest
from facekit import scene

from photoguard.engine.detect import FaceBox
from photoguard.engine.identify import face_recognition
from photoguard.engine.obscure import FILL_RGB, MIN_CELL, cell_size, obscure_face, obscure_faces, obscure_mask


@pytest.fixture(scope="module")
def fr():
    return face_recognition()


def face_box(box) -> FaceBox:
    return FaceBox(*box, score=1.0)


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
@pytest.mark.parametrize("method", ["pixelate", "fill"])
def test_obscured_face_no_longer_matches_itself(fr, name, method):
    rgb, (box,) = scene(360, 280, [(name, 120, 80, 110)])
    left, top, right, bottom = box
    where = [(top, right, bottom, left)]   # face_recognition's (top, right, bottom, left)
    assert fr.face_locations(rgb, number_of_times_to_upsample=1)   # a findable face to begin with
    before = fr.face_encodings(rgb, where)[0]
    out = rgb.copy()
    obscure_face(out, face_box(box), method=method)
    assert not fr.face_locations(out, number_of_times_to_upsample=1)
    after = fr.face_encodings(out, where)[0]   # forced at the known place: still not the same person
    assert np.linalg.norm(after - before) > 0.6


def test_only_the_grown_region_changes_and_it_covers_the_whole_box():
    rgb, (box,) = scene(300, 220, [("astronaut", 100, 60, 80)])
    out = rgb.copy()
    fb = face_box(box)
    obscure_face(out, fb, grow=1.3)
    mask = obscure_mask(rgb.shape, fb, grow=1.3)
    assert np.array_equal(out[~mask], rgb[~mask])
    left, top, right, bottom = box
    assert mask[top:bottom, left:right].all()
    # nothing beyond the box grown 1.3x about its centre
    w, h = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2
    ys, xs = np.nonzero(mask)
    assert xs.min() >= cx - 0.65 * w - 1 and xs.max() <= cx + 0.65 * w
    assert ys.min() >= cy - 0.65 * h - 1 and ys.max() <= cy + 0.65 * h
    # coarse cells: far fewer distinct colours than pixels, none of the original detail
    colours = np.unique(out[mask].reshape(-1, 3), axis=0)
    n_cells = (np.ptp(xs) // cell_size(fb) + 2) * (np.ptp(ys) // cell_size(fb) + 2)
    assert len(colours) <= n_cells


def test_two_runs_give_different_noise():
    rgb, (box,) = scene(200, 160, [("hopper", 50, 40, 80)])
    a, b = rgb.copy(), rgb.copy()
    obscure_face(a, face_box(box))
    obscure_face(b, face_box(box))
    mask = obscure_mask(rgb.shape, face_box(box))
    assert (a[mask] != b[mask]).any(axis=1).mean() > 0.5
    # the same generator state gives the same result (the randomness comes only from rng)
    c, d = rgb.copy(), rgb.copy()
    obscure_face(c, face_box(box), rng=np.random.default_rng(1))
    obscure_face(d, face_box(box), rng=np.random.default_rng(1))
    assert np.array_equal(c, d)


@pytest.mark.parametrize("box", [(-30, -20, 50, 60), (170, 120, 260, 210), (-10, 100, 40, 150),
                                 (150, -40, 210, 20), (-100, -100, -10, -10), (300, 300, 400, 400)])
def test_boxes_at_and_beyond_the_edges(box):
    rgb, _ = scene(200, 160, [("astronaut", 0, 0, 200)])
    out = rgb.copy()
    fb = face_box(box)
    obscure_face(out, fb)
    mask = obscure_mask(rgb.shape, fb)
    assert np.array_equal(out[~mask], rgb[~mask])
    left, top, right, bottom = box
    inside = mask[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
    assert inside.all()
    if inside.size:
        assert (out[mask] != rgb[mask]).any(axis=1).mean() > 0.5


def test_tiny_and_huge_faces():
    rgb, (box,) = scene(200, 160, [("astronaut", 60, 50, 24)])
    fb = face_box(box)
    assert cell_size(fb) >= MIN_CELL
    out = rgb.copy()
    obscure_face(out, fb)
    mask = obscure_mask(rgb.shape, fb)
    assert mask.sum() >= 24 * 24 and (out[mask] != rgb[mask]).any(axis=1).mean() > 0.5
    huge = face_box((-50, -50, 400, 300))   # bigger than the photo
    out = rgb.copy()
    obscure_face(out, huge)
    assert obscure_mask(rgb.shape, huge).all()
    assert len(np.unique(out.reshape(-1, 3), axis=0)) < 200


def test_fill_is_a_solid_colour():
    rgb, (box,) = scene(200, 160, [("hopper", 50, 40, 60)])
    out = rgb.copy()
    obscure_face(out, face_box(box), method="fill", grow=1.5)
    mask = obscure_mask(rgb.shape, face_box(box), grow=1.5)
    assert (out[mask] == FILL_RGB).all()
    assert np.array_equal(out[~mask], rgb[~mask])


def test_several_faces_and_bad_arguments():
    rgb, boxes = scene(300, 160, [("hopper", 20, 40, 60), ("astronaut", 180, 40, 60)])
    out = rgb.copy()
    obscure_faces(out, [face_box(b) for b in boxes])
    for b in boxes:
        mask = obscure_mask(rgb.shape, face_box(b))
        assert (out[mask] != rgb[mask]).any(axis=1).mean() > 0.5
    with pytest.raises(ValueError):
        obscure_face(out, face_box(boxes[0]), method="blur")
    with pytest.raises(ValueError):
        obscure_face(out, face_box(boxes[0]), grow=0.5)
    with pytest.raises(ValueError):
        obscure_face(out.astype(np.float32), face_box(boxes[0]))
