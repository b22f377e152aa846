"""The committed demo photos and roster: they decode and carry what samples/README.md says."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
ENROL = REPO / "enrol"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
PHOTOS = {p["file"]: p for p in MANIFEST["photos"]}
HEADER = ["id", "name", "face_matching", "facebook", "instagram", "twitter", "expires"]


@pytest.fixture(scope="module", autouse=True)
def _heif():
    import pillow_heif

    pillow_heif.register_heif_opener()


def test_every_sample_is_listed_in_the_manifest_and_readme():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    on_disk = {p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".heic", ".png")}
    assert on_disk == set(PHOTOS)
    for name in PHOTOS:
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_sample_decodes_with_the_faces_inside(name):
    photo = PHOTOS[name]
    with Image.open(SAMPLES / name) as im:
        shown = ImageOps.exif_transpose(im)
        shown.load()
        assert shown.size == (1600, 1200)
        exif = im.getexif()
        assert exif.get(0x0112, 1) == photo["orientation"]
        assert exif.get(0x0110) == "Classroom Camera 2"  # a camera model that must not leak
        gps = exif.get_ifd(0x8825)
        if photo["gps"]:
            assert gps.get(1) == "N" and gps.get(3) == "W"
            assert [round(float(v), 2) for v in gps[2]] == [51.0, 30.0, 26.28]
        else:
            assert not gps
        if photo["comment"]:
            assert im.info.get("comment") == photo["comment"].encode()
        if photo["xmp"]:
            assert b"Room 2 staff tablet" in im.info.get("xmp", b"")
    for face in photo["faces"]:
        left, top, right, bottom = face["box"]
        assert 0 <= left < right <= 1600 and 0 <= top < bottom <= 1200


def test_samples_stay_small():
    total = sum(p.stat().st_size for p in [*SAMPLES.iterdir(), *ENROL.rglob("*")] if p.is_file())
    assert total < 3_000_000


def test_roster_csv_has_the_expected_header_and_children():
    with open(ENROL / "children.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    children = {row[0]: dict(zip(HEADER, row)) for row in rows[1:]}
    assert set(children) == {"ada", "grace", "sam"}
    assert children["ada"]["face_matching"] == "yes" and children["ada"]["instagram"] == "yes"
    assert [children["grace"][c] for c in ("facebook", "instagram", "twitter")] == ["yes", "no", "no"]
    assert set(children["sam"].values()) <= {"sam", "Sam", "no", ""}
    assert not (ENROL / "sam").exists()  # no face matching consent: no reference photos


@pytest.mark.parametrize("child", ["ada", "grace"])
def test_reference_photos_decode_and_are_big_enough(child):
    refs = sorted((ENROL / child).glob("*.jpg"))
    assert len(refs) >= 3
    for ref in refs:
        with Image.open(ref) as im:
            assert im.mode == "RGB" and min(im.size) >= 200


@pytest.mark.parametrize("child", ["ada", "grace"])
def test_reference_photos_have_exactly_one_identifiable_face(child):
    """Uses the project's detector once it exists; until then this check lives in make_samples.py --verify."""
    import numpy as np

    from photoguard.engine.detect import FaceDetector
    from photoguard.store.config import Settings

    try:
        detector = FaceDetector()
    except NotImplementedError:
        pytest.skip("photoguard.detect is not implemented yet")
    for ref in sorted((ENROL / child).glob("*.jpg")):
        with Image.open(ref) as im:
            faces = detector.detect(np.asarray(im.convert("RGB")))
        # One face a child could be recognised by; a faint box of a few pixels besides (the int8 search keeps
        # one in grace/3-tilted.jpg's hair, 11x13 px) is obscured in a photo and ignored by enrolment.
        identifiable = [f for f in faces if f.width >= Settings().detect_min_face_px]
        assert len(identifiable) == 1, ref
        assert identifiable[0].width >= 80, ref


def test_build_demo_home_copies_samples_and_roster(tmp_path):
    import stat

    from photoguard.flow.demo import DemoError, build_demo_home

    home = build_demo_home(tmp_path / "demo", REPO)
    assert sorted(p.name for p in home.inbox.iterdir()) == sorted(PHOTOS)
    assert home.roster_csv.read_bytes() == (ENROL / "children.csv").read_bytes()
    refs = sorted(home.enrol.rglob("*.jpg"))
    assert len(refs) == 6
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in [*refs, home.roster_csv])
    with pytest.raises(DemoError, match="not empty"):
        build_demo_home(tmp_path / "demo", REPO)
