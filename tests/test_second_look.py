"""The second look's "still recognisable" test runs on SFace: a face left recognisable is caught."""

from __future__ import annotations

import numpy as np
import pytest
from facekit import face_patch, scene

from photoguard.engine.detect import FaceDetector
from photoguard.flow.pipeline import Processor
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

ROSTER = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\n"


@pytest.fixture(scope="module")
def processor(tmp_path_factory) -> Processor:
    from PIL import Image

    home = open_home(tmp_path_factory.mktemp("home"))
    folder = home.enrol / "ada"
    folder.mkdir(parents=True)
    for i, (width, context) in enumerate([(150, 0.8), (190, 0.6), (170, 1.0)]):
        Image.fromarray(face_patch("astronaut", width, context).rgb).save(folder / f"ref{i}.jpg", quality=92)
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    return Processor(home, conn=conn, detector=FaceDetector())


def test_face_left_recognisable_is_caught_and_an_obscured_one_passes(processor):
    rgb, _ = scene(900, 600, [("astronaut", 300, 200, 170)], seed=2)
    faces = processor.detector.detect(rgb)
    assert len(processor.templates) == 3
    shown = [False] * len(faces)            # nobody shown: every face must come out obscured
    why = processor.verify(rgb, faces, shown, rgb)   # ... but the picture was not obscured at all
    assert why is not None and "can still be recognised as ada" in why
    rendered = processor.render(rgb, faces, shown, seed=1)
    assert processor.verify(rendered, faces, shown, rgb) is None
    assert not np.array_equal(rendered, rgb)


# --- The second look searches around what was obscured (issue 20) ------------------------------------------

def test_obscuring_changes_pixels_only_inside_its_area():
    """The restricted second look trusts ``obscured_area`` to bound what ``obscure_face`` changes."""
    from photoguard.engine.detect import FaceBox
    from photoguard.engine.obscure import obscure_face, obscured_area

    rgb, _ = scene(640, 480, [("astronaut", 40, 60, 120), ("hopper", 400, 200, 150)], seed=4)
    faces = FaceDetector().detect(rgb) + [
        FaceBox(600, 440, 660, 500, 0.9),                                  # past the bottom-right corner
        FaceBox(-20, -10, 30, 40, 0.9, "hog"),                              # past the top-left corner
        FaceBox(300, 100, 340, 150, 0.9, landmarks=((310, 90), (330, 90), (320, 80), (312, 70), (328, 70))),
    ]
    for grow in (1.0, 1.3, 2.0):
        for method in ("pixelate", "fill"):
            for face in faces:
                out = rgb.copy()
                obscure_face(out, face, method=method, grow=grow, rng=np.random.default_rng(0))
                ys, xs = np.nonzero(np.any(out != rgb, axis=2))
                left, top, right, bottom = obscured_area(rgb.shape, face, grow)
                assert len(ys) and xs.min() >= left and xs.max() < right and ys.min() >= top and ys.max() < bottom


def test_search_around_obscured_areas_sees_what_the_whole_search_sees_there():
    from photoguard.engine.boxes import iou
    from photoguard.engine.obscure import obscure_face, obscured_area

    detector = FaceDetector()
    # 2400 px wide: the faces are 45-50 px in the main pass's 1280 px copy, too small for the 320 px pass
    # (which looks at the whole picture). Ada obscured; Grace right beside her; another face far away.
    rgb, _ = scene(2400, 1600, [("astronaut", 400, 600, 90), ("hopper", 520, 620, 95),
                                ("astronaut", 2000, 1200, 90)], seed=5)
    faces = detector.detect(rgb)
    assert len(faces) == 3
    ada = min(faces, key=lambda f: f.left)
    out = rgb.copy()
    obscure_face(out, ada, rng=np.random.default_rng(0))
    area = obscured_area(out.shape, ada)
    whole = detector.detect_confident(out, 0.3)
    near = detector.detect_confident(out, 0.3, [area])
    assert detector.detect_confident(out, 0.3, []) == []   # nothing obscured: nothing to search
    # Grace, beside the obscured area, is found as the whole search finds her (the score to within 0.01).
    grace = [f for f in near if 500 < f.left < 1000]
    same = [f for f in whole if 500 < f.left < 1000]
    assert len(grace) == len(same) == 1
    assert iou(grace[0].box, same[0].box) > 0.95 and abs(grace[0].score - same[0].score) < 0.01
    # The face far away is the original photo's (the first look's business), not searched again.
    assert any(f.left > 1900 for f in whole) and not any(f.left > 1900 for f in near)


@pytest.mark.parametrize("width, height", [(4032, 3024), (2250, 4000)])
def test_the_second_look_shrinks_again_only_what_was_obscured(width, height, monkeypatch):
    """The picture the second look searches is the photo the first look searched but for its obscured areas: its
    copy at the main pass's scale is the first look's (``main_copy``) with only those blocks shrunk again, the
    same pixels as shrinking it whole (63 px blocks to 20 px here, not a power of two), so the same finds."""
    import cv2

    from photoguard.engine.obscure import obscure_face, obscured_area
    from photoguard.photos.shrink import shrink_to

    detector = FaceDetector()
    rgb, _ = scene(width, height, [("astronaut", 900, 1100, 260), ("hopper", 1260, 1150, 240)], seed=8)
    main_copy = detector.main_copy(rgb)
    faces = detector.detect(rgb, main_copy)
    ada = min(faces, key=lambda f: f.left)
    out = rgb.copy()
    obscure_face(out, ada, rng=np.random.default_rng(0))
    area = obscured_area(out.shape, ada)
    whole = detector.detect_confident(out, 0.3, [area])
    shrunk: list[int] = []
    real = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda src, *a, **k: shrunk.append(src.shape[0] * src.shape[1]) or real(src, *a, **k))

    again = detector.detect_confident(out, 0.3, [area], like=(rgb, main_copy))

    assert [(f.box, f.score) for f in again] == [(f.box, f.score) for f in whole] and len(again) >= 1
    copy_px = main_copy.shape[0] * main_copy.shape[1]
    assert sum(shrunk) - copy_px < 0.05 * width * height   # the obscured blocks (and the 320 px copy of the copy)
    assert np.array_equal(shrink_to(out, 1280, (rgb, main_copy), bitwise=False), cv2.resize(out, main_copy.shape[1::-1],
                                                                                           interpolation=cv2.INTER_AREA))


def test_pipeline_second_look_searches_around_obscured_faces_and_release_searches_all(processor):
    """Faces on record may be an older version's: the second look at release or at a re-check (``verify``)
    searches the whole picture; the pipeline's own, right after its first look, only around what it obscured."""
    rgb, _ = scene(2400, 1600, [("hopper", 300, 600, 100), ("astronaut", 1800, 700, 100)], seed=6)
    faces = [f for f in processor.detector.detect(rgb) if f.left < 1200]   # as if Ada had not been found
    assert len(faces) == 1
    shown = [False]
    rendered = processor.render(rgb, faces, shown, seed=1)
    assert processor.second_look(rendered, faces, shown, rgb).missed            # whole picture: Ada is seen
    assert "a face the first look missed" in processor.verify(rendered, faces, shown, rgb)
    assert not processor.second_look(rendered, faces, shown, rgb, around_obscured=True).missed


def test_pictures_of_one_photo_share_the_networks_answers(processor):
    """Two channels' pictures of one photo: Ada shown on one and obscured on the other, a stranger obscured on
    both. The second look at the second picture takes what the networks answered for the stranger's crop and
    chip on the first (the same pixels) from ``Seen``, and comes to exactly what it would have come to alone."""
    from photoguard.engine.seen import Seen

    rgb, _ = scene(2400, 1600, [("hopper", 300, 500, 110), ("astronaut", 1800, 900, 120)], seed=7)
    faces = sorted(processor.detector.detect(rgb), key=lambda f: f.left)
    assert len(faces) == 2
    pictures = [(False, True), (False, False)]           # the stranger always obscured; Ada shown, then not
    renders = {shown: processor.render(rgb, faces, shown, seed=1) for shown in pictures}
    seen = Seen()
    looks = [processor.second_look(renders[pictures[0]], faces, pictures[0], rgb, {}, around_obscured=True, seen=seen)]
    assert seen.answered == 0
    looks.append(processor.second_look(renders[pictures[1]], faces, pictures[1], rgb, {}, around_obscured=True, seen=seen))
    alone = processor.second_look(renders[pictures[1]], faces, pictures[1], rgb, {}, around_obscured=True)
    assert (looks[1].missed, looks[1].recognisable) == (alone.missed, alone.recognisable)
    assert [m.box for m in looks[0].missed] == [m.box for m in processor.second_look(
        renders[pictures[0]], faces, pictures[0], rgb, {}, around_obscured=True).missed]
    # The stranger's crop (CenterFace) and obscured chip (SFace) were answered from what the first look saw.
    assert seen.answered >= 2
    # A picture with other pixels is never answered from another's: the whole 320 px pass differs.
    other = Seen()
    processor.second_look(renders[pictures[0]], faces, pictures[0], rgb, {}, around_obscured=True, seen=other)
    assert other.answered == 0
