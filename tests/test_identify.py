"""The matching rule (pure, on made-up encodings) and encodings of real public-domain faces."""

from __future__ import annotations

import facekit
import numpy as np
import pytest
from PIL import Image

from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.identify import (NO_CHILDREN, NO_ENCODING, NOT_CLOSE, TOO_SMALL, Template, encode_faces, look_alike_pairs, match_faces)

RULE = dict(threshold=0.60, margin=0.05, min_face_px=80)
E = np.eye(128)


def unit(*xs: float) -> np.ndarray:
    """A unit vector along the first axes with weights ``xs`` (similarities are then easy to read)."""
    v = np.zeros(128)
    v[: len(xs)] = xs
    return v / np.linalg.norm(v)


def sim(base: int, other: int, s: float) -> np.ndarray:
    """A unit vector with similarity ``s`` to axis ``base``, the rest along axis ``other``."""
    return s * E[base] + np.sqrt(1 - s * s) * E[other]


AMY, BEN = Template("amy", E[0]), Template("ben", E[1])


def test_match_close_and_clear():
    [ident] = match_faces([sim(0, 2, 0.8)], [120], [AMY, BEN], **RULE)
    assert ident.child_id == "amy" and ident.reason == "matched"
    assert ident.similarity == pytest.approx(0.8) and ident.runner_up == pytest.approx(0.0)
    assert ident.distance == pytest.approx(0.2)


def test_threshold_is_inclusive_and_strict_below():
    assert match_faces([sim(0, 2, 0.6)], [120], [AMY], **RULE)[0].child_id == "amy"
    ident = match_faces([sim(0, 2, 0.59)], [120], [AMY], **RULE)[0]
    assert ident.child_id is None and ident.reason == NOT_CLOSE and ident.nearest == "amy"


def test_margin_to_the_next_child():
    # 0.70 like amy, 0.67 like ben: above the threshold but only 0.03 ahead (< margin 0.05).
    ident = match_faces([0.70 * E[0] + 0.67 * E[1] + np.sqrt(1 - 0.70**2 - 0.67**2) * E[2]], [120], [AMY, BEN], **RULE)[0]
    assert ident.child_id is None
    assert ident.reason == "too close to call between amy and ben"
    # Farther from ben: identified.
    ok = 0.75 * E[0] + 0.6 * E[1] + np.sqrt(1 - 0.75**2 - 0.6**2) * E[2]
    assert match_faces([ok], [120], [AMY, BEN], **RULE)[0].child_id == "amy"


def test_mean_over_a_childs_references_counts():
    amy2 = Template("amy", E[3])
    face = unit(1, 0, 0, 1)           # 0.707 like each of amy's two references
    [ident] = match_faces([face], [120], [AMY, amy2, BEN], **RULE)
    assert ident.child_id == "amy" and ident.similarity == pytest.approx(0.7071, abs=1e-3)
    # Like one reference only: the mean (0.5) is not enough, though the nearest reference (1.0) would be.
    [ident] = match_faces([E[0]], [120], [AMY, amy2, BEN], **RULE)
    assert ident.child_id is None and ident.similarity == pytest.approx(0.5)


def test_too_small_to_identify():
    ident = match_faces([E[0]], [79], [AMY], **RULE)[0]
    assert ident.child_id is None and ident.reason == TOO_SMALL
    assert match_faces([E[0]], [80], [AMY], **RULE)[0].child_id == "amy"
    # Not even encoded because it is small: still "too small".
    assert match_faces([None], [30], [AMY], **RULE)[0].reason == TOO_SMALL


def test_one_face_per_child_per_photo():
    ids = match_faces([sim(0, 2, 0.7), sim(0, 3, 0.9), sim(1, 4, 0.95)], [100, 100, 100], [AMY, BEN], **RULE)
    assert [i.child_id for i in ids] == [None, "amy", "ben"]
    assert "amy" in ids[0].reason and ids[0].reason != "matched"


def test_look_alike_pair_is_never_identified():
    # Twins: zoe's reference is as like amy's as amy's own references are to each other.
    amy = [Template("amy", sim(0, 5, 1.0)), Template("amy", sim(0, 6, 0.8))]
    zoe = [Template("zoe", sim(0, 7, 0.85)), Template("zoe", unit(0.8, 0, 0, 0, 0, 0, 0, 0.6, 0.7))]
    pairs = look_alike_pairs(amy + zoe + [BEN], 0.60)
    assert pairs == {frozenset({"amy", "zoe"})}
    face = unit(1, 0, 0, 0, 0, 0, 0.2)
    roster = amy + zoe + [BEN]
    ident = match_faces([face], [120], roster, **RULE, confusable=pairs)[0]
    assert ident.child_id is None and ident.reason == "too close to call between amy and zoe"
    # Other children are unaffected.
    assert match_faces([E[1]], [120], roster, **RULE, confusable=pairs)[0].child_id == "ben"


def test_ordinary_classmates_are_not_look_alikes():
    # 20 classmates who all share a common look (references of different children 0.62 alike, above the
    # threshold), each with own references 0.85 alike: told apart, none is a look-alike.
    templates = []
    for k in range(20):
        for j in range(3):
            v = np.sqrt(0.23) * E[k] + np.sqrt(0.15) * E[40 + 3 * k + j] + np.sqrt(0.62) * E[127]
            templates.append(Template(f"c{k:02d}", v))
    assert look_alike_pairs(templates, 0.60) == set()
    # A child whose own photos differ a lot (own level 0.0) does not make a classmate a look-alike
    # when their references are far from passing for each other (0.28 alike).
    odd = [Template("odd", sim(30, 100, 0.55)), Template("odd", sim(31, 101, 0.55))]
    near = [Template("near", 0.5 * E[30] + 0.5 * E[31] + np.sqrt(0.5) * E[102])]
    assert look_alike_pairs(templates + odd + near, 0.60) == set()
    # The same children with a real twin added: only the twins are caught.
    twin = [Template("twin", t.encoding) for t in templates if t.child_id == "c03"]
    assert look_alike_pairs(templates + twin, 0.60) == {frozenset({"c03", "twin"})}


def test_unknowns():
    ids = match_faces([None, E[0]], [120, 120], [], **RULE)
    assert [i.reason for i in ids] == [NO_CHILDREN, NO_CHILDREN]   # nobody to compare with says so
    assert match_faces([None], [120], [AMY], **RULE)[0].reason == NO_ENCODING
    assert all(i.child_id is None for i in ids)
    assert match_faces([], [], [AMY], **RULE) == []
    with pytest.raises(ValueError):
        match_faces([E[0]], [], [AMY], **RULE)


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


def test_encodings_are_128_floats_of_unit_length(templates):
    for t in templates:
        assert t.encoding.shape == (128,) and t.encoding.dtype == np.float64
        assert np.linalg.norm(t.encoding) == pytest.approx(1.0)


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
        assert ident.similarity > 0.8 and ident.runner_up < 0.4


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

    from photoguard.engine.facenet import FaceNet, model_paths

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
    from photoguard.engine.identify import Template, match_faces

    templates = [Template("ada", E[0]), Template("grace", E[1])]
    broken = np.full(128, np.nan)
    [ident] = match_faces([broken], [200], templates, threshold=0.60, margin=0.05, min_face_px=80)
    assert ident.child_id is None
    # A broken template fails closed too, for every face.
    [ident] = match_faces([E[0]], [200], templates + [Template("ada", np.full(128, np.nan))],
                          threshold=0.60, margin=0.05, min_face_px=80)
    assert ident.child_id is None


def _norm(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_standout_says_how_much_a_face_is_one_child_rather_than_any_child():
    """Children's faces are alike (babies most): a face scoring 0.55 for Ada and nearly as much for every
    other child is much less likely Ada than one scoring 0.55 for Ada and nothing for anyone else."""
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(128, 128)))[0].T
    common = basis[100]      # what the children's faces share
    templates = [Template(f"child{k}", _norm(common + basis[k])) for k in range(8)]
    rest = [0.0, 0.1, 0.2, 0.05, 0.15, 0.0, 0.1]
    like_all = _norm(common + 0.23 * basis[0] + sum(c * basis[k] for k, c in zip(range(1, 8), rest)) + 1.2 * basis[60])
    like_one = _norm(0.55 * templates[0].encoding + sum(0.05 * c * basis[k] for k, c in zip(range(1, 8), rest))
                     + 0.83 * basis[60])
    a, b = match_faces([like_all, like_one], [100, 100], templates, threshold=0.6, margin=0.05, min_face_px=80)
    assert a.nearest == b.nearest == "child0" and a.child_id is None and b.child_id is None
    assert 0.5 < a.similarity < 0.6 and 0.5 < b.similarity < 0.6
    assert a.standout < 2.5 < 5.0 < b.standout   # 2.5: the default match.ask_standout
    # With fewer than five other children there is nothing to compare with.
    few = match_faces([like_all], [100], templates[:5], threshold=0.6, margin=0.05, min_face_px=80)[0]
    assert few.nearest == "child0" and few.standout is None
