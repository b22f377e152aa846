"""The matching rule (pure, on made-up encodings) and encodings of real public-domain faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import facekit
from photoguard.detect import FaceBox, FaceDetector
from photoguard.identify import (
    NO_CHILDREN, NO_ENCODING, NOT_CLOSE, TOO_SMALL, Template, confusable_pairs, encode_faces, match_faces,
)

RULE = dict(threshold=0.45, margin=0.08, min_face_px=80)


def at(*xs: float) -> np.ndarray:
    """A 128-d encoding whose first coordinates are ``xs`` (distances are then easy to read)."""
    v = np.zeros(128)
    v[: len(xs)] = xs
    return v


AMY, BEN = Template("amy", at(0.0)), Template("ben", at(1.0))


def test_match_close_and_clear():
    [ident] = match_faces([at(0.3)], [120], [AMY, BEN], **RULE)
    assert ident.child_id == "amy" and ident.reason == "matched"
    assert ident.distance == pytest.approx(0.3) and ident.runner_up == pytest.approx(0.7)


def test_threshold_is_inclusive_and_strict_beyond():
    assert match_faces([at(0.45)], [120], [AMY], **RULE)[0].child_id == "amy"
    ident = match_faces([at(0.46)], [120], [AMY], **RULE)[0]
    assert ident.child_id is None and ident.reason == NOT_CLOSE and ident.nearest == "amy"


def test_margin_to_the_next_child():
    # 0.44 from amy, 0.50 from ben: within threshold but only 0.06 apart (< margin 0.08).
    ben = Template("ben", at(0.94))
    ident = match_faces([at(0.44)], [120], [AMY, ben], **RULE)[0]
    assert ident.child_id is None
    assert ident.reason == "too close to call between amy and ben"
    # A bit farther from ben: identified.
    assert match_faces([at(0.40)], [120], [AMY, ben], **RULE)[0].child_id == "amy"


def test_nearest_template_of_each_child_counts():
    amy2 = Template("amy", at(0.0, 0.9))
    ident = match_faces([at(0.1, 0.9)], [120], [AMY, amy2, BEN], **RULE)[0]
    assert ident.child_id == "amy" and ident.distance == pytest.approx(0.1)


def test_too_small_to_identify():
    ident = match_faces([at(0.1)], [79], [AMY], **RULE)[0]
    assert ident.child_id is None and ident.reason == TOO_SMALL
    assert match_faces([at(0.1)], [80], [AMY], **RULE)[0].child_id == "amy"
    # Not even encoded because it is small: still "too small".
    assert match_faces([None], [30], [AMY], **RULE)[0].reason == TOO_SMALL


def test_one_face_per_child_per_photo():
    ids = match_faces([at(0.3), at(0.1), at(0.95)], [100, 100, 100], [AMY, BEN], **RULE)
    assert [i.child_id for i in ids] == [None, "amy", "ben"]
    assert "amy" in ids[0].reason and ids[0].reason != "matched"


def test_confusable_pair_is_never_identified():
    twin = Template("zoe", at(0.0, 0.3))
    pairs = confusable_pairs([AMY, BEN, twin], 0.45, 0.08)
    assert pairs == {frozenset({"amy", "zoe"})}
    # Close to amy, clearly farther from zoe than the margin -- still refused.
    face = at(0.0, -0.2)
    assert match_faces([face], [120], [AMY, BEN, twin], **RULE)[0].child_id == "amy"
    ident = match_faces([face], [120], [AMY, BEN, twin], **RULE, confusable=pairs)[0]
    assert ident.child_id is None and ident.reason == "too close to call between amy and zoe"
    # Other children are unaffected.
    assert match_faces([at(1.0)], [120], [AMY, BEN, twin], **RULE, confusable=pairs)[0].child_id == "ben"


def test_unknowns():
    ids = match_faces([None, at(0.1)], [120, 120], [], **RULE)
    assert [i.reason for i in ids] == [NO_CHILDREN, NO_CHILDREN]   # nobody to compare with says so
    assert match_faces([None], [120], [AMY], **RULE)[0].reason == NO_ENCODING
    assert all(i.child_id is None for i in ids)
    assert match_faces([], [], [AMY], **RULE) == []
    with pytest.raises(ValueError):
        match_faces([at(0.1)], [], [AMY], **RULE)


# --- real faces ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _largest_encoding(detector, rgb):
    box = max(detector.detect(rgb), key=lambda b: b.width)
    return encode_faces(rgb, [box])[0], box


@pytest.fixture(scope="module")
def templates(detector):
    return [Template(n, _largest_encoding(detector, facekit.face_image(n))[0]) for n in ("astronaut", "hopper")]


def test_encodings_are_128_floats(templates):
    for t in templates:
        assert t.encoding.shape == (128,) and t.encoding.dtype == np.float64


def test_variations_of_one_person_match_and_the_other_does_not(detector, templates):
    img = facekit.face_image("hopper")
    varied = [
        np.ascontiguousarray(img[:, ::-1]),                                   # mirrored
        np.clip(img.astype(int) * 0.6, 0, 255).astype(np.uint8),              # darker
        np.asarray(Image.fromarray(img).rotate(8, resample=Image.Resampling.BICUBIC)),
    ]
    for v in varied:
        enc, box = _largest_encoding(detector, v)
        [ident] = match_faces([enc], [box.width], templates, **RULE)
        assert ident.child_id == "hopper", ident
        assert ident.distance < 0.3 and ident.runner_up > 0.55


def test_scene_with_both_faces_and_a_small_one(detector, templates):
    rgb, truth = facekit.scene(1600, 1200, [("astronaut", 100, 100, 150), ("hopper", 700, 300, 220),
                                            ("astronaut", 1300, 800, 50)], seed=3)
    boxes = detector.detect(rgb)
    encs = encode_faces(rgb, boxes, min_width=80)
    ids = match_faces(encs, [b.width for b in boxes], templates, **RULE)
    by_centre = {}
    for b, i in zip(boxes, ids):
        cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
        for k, t in enumerate(truth):
            if t[0] <= cx < t[2] and t[1] <= cy < t[3]:
                by_centre[k] = i
    assert by_centre[0].child_id == "astronaut"
    assert by_centre[1].child_id == "hopper"
    assert by_centre[2].child_id is None and by_centre[2].reason == TOO_SMALL
    assert sum(i.child_id is not None for i in ids) == 2


def test_huge_face_is_encoded_like_a_normal_one(detector, templates):
    patch = facekit.face_patch("astronaut", 900, context=0.3)
    enc, box = _largest_encoding(detector, patch.rgb)
    [ident] = match_faces([enc], [box.width], templates, **RULE)
    assert ident.child_id == "astronaut"


def test_degenerate_box_gives_no_encoding():
    rgb = facekit.face_image("astronaut")
    assert encode_faces(rgb, [FaceBox(10, 10, 14, 14, 0.5)]) == [None]


def test_numpy_descriptor_network_gives_dlibs_numbers():
    import dlib

    from photoguard.facenet import FaceNet, model_paths

    landmarks, network = model_paths()
    predictor = dlib.shape_predictor(str(landmarks))
    reference = dlib.face_recognition_model_v1(str(network))
    chips = []
    for name in ("astronaut", "hopper"):
        img = facekit.face_image(name)
        shape = predictor(img, dlib.rectangle(*facekit.FACE_BOX[name]))
        chips.append(np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)))
    ours = FaceNet(network).describe(np.stack(chips))
    theirs = np.array([reference.compute_face_descriptor(c) for c in chips])
    assert ours.shape == (2, 128)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_encodings_do_not_depend_on_batching(detector):
    rgb, _ = facekit.scene(900, 500, [("astronaut", 100, 100, 120), ("hopper", 500, 150, 150)], seed=8)
    boxes = detector.detect(rgb)
    together = encode_faces(rgb, boxes)
    alone = [encode_faces(rgb, [b])[0] for b in boxes]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_nan_distance_is_never_a_match():
    from photoguard.identify import Template, match_faces

    templates = [Template("ada", np.zeros(128)), Template("grace", np.ones(128))]
    broken = np.full(128, np.nan)
    [ident] = match_faces([broken], [200], templates, threshold=0.45, margin=0.08, min_face_px=80)
    assert ident.child_id is None
