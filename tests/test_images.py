"""Reading every photo format upright as 8-bit sRGB, and writing JPEGs that carry pixels and nothing else."""

import hashlib
import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from badinputs import (
    XMP_PACKET,
    exif_with_gps_and_thumbnail,
    insert_segments,
    iptc_app13,
    png16_rgb,
    swapped_red_green_profile,
)
from facekit import jpeg_bytes, scene
from PIL import Image, ImageFile

from photoguard.photos.images import ImageError, load_image, load_image_bytes, sha256_file
from photoguard.photos.save import SaveError, save_stripped_jpeg
from photoguard.photos.jpeg import jpeg_segments, strip_check

OUTBOX_SEGMENTS = {"SOI", "APP0", "APP2", "DQT", "SOF0", "DHT", "DRI", "SOS", "EOI"}


@pytest.fixture(scope="module")
def photo():
    rgb, _ = scene(120, 80, [])
    rgb[:10, :20] = 0   # a dark top-left corner tells orientations apart
    return rgb


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def assert_upright(rgb, expected, tol=12):
    assert rgb.shape == expected.shape
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert rgb[:10, :20].mean() < 40
    assert np.abs(rgb.astype(int) - expected).mean() < tol


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_loads_upright(photo, orientation):
    loaded = load_image_bytes(jpeg_bytes(photo, orientation))
    assert loaded.orientation == orientation
    assert loaded.format == "JPEG"
    assert_upright(loaded.rgb, photo)


def test_heic_round_trip_with_rotation(photo, tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90)  # as a tablet held sideways stores it
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(encode(stored, "HEIF", exif=exif.tobytes(), quality=90))
    loaded = load_image(path)
    assert loaded.format == "HEIF"
    assert loaded.orientation == 6
    assert_upright(loaded.rgb, photo)


@pytest.mark.parametrize("fmt,kw", [("WEBP", {"quality": 90}), ("TIFF", {}), ("PNG", {}), ("BMP", {})])
def test_other_formats(photo, fmt, kw):
    loaded = load_image_bytes(encode(Image.fromarray(photo), fmt, **kw))
    assert loaded.format == fmt
    assert_upright(loaded.rgb, photo, tol=6)


def test_multi_picture_jpeg_gives_the_main_picture(photo):
    data = encode(Image.fromarray(photo), "MPO", quality=95, save_all=True, append_images=[Image.fromarray(255 - photo)])
    loaded = load_image_bytes(data)
    assert loaded.format == "MPO"
    assert_upright(loaded.rgb, photo, tol=6)


def test_16_bit_grey_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (40, 1))
    for fmt in ("PNG", "TIFF"):
        rgb = load_image_bytes(encode(Image.fromarray(ramp), fmt)).rgb
        assert rgb.shape == (40, 256, 3)
        row = rgb[0, :, 0].astype(int)
        assert row[0] == 0 and row[-1] == 255
        assert np.all(np.diff(row) >= 0)
        assert abs(row[128] - 128) <= 1     # mid-grey stays mid-grey (clipping would give 255)


def test_16_bit_rgb_png(photo):
    rgb = load_image_bytes(png16_rgb(photo.astype(np.uint16) * 257)).rgb
    assert np.abs(rgb.astype(int) - photo).max() <= 1


def test_grey_palette_bilevel_and_cmyk(photo):
    img = Image.fromarray(photo)
    grey = load_image_bytes(encode(img.convert("L"), "JPEG", quality=95)).rgb
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    palette = load_image_bytes(encode(img.convert("P"), "GIF")).rgb
    assert np.abs(palette.astype(int) - photo).mean() < 20
    bilevel = load_image_bytes(encode(img.convert("1"), "PNG")).rgb
    assert set(np.unique(bilevel)) <= {0, 255}
    cmyk = load_image_bytes(encode(img.convert("CMYK"), "JPEG", quality=95))
    assert cmyk.rgb.shape == photo.shape
    assert np.abs(cmyk.rgb.astype(int) - photo).mean() < 12


def test_transparency_is_composited_on_white_not_dropped(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[40:60, 40:60] = (255, 0, 0, 0)      # something hidden under a transparent area
    rgba[60:70, 60:70, 3] = 128
    rgb = load_image_bytes(encode(Image.fromarray(rgba), "PNG")).rgb
    assert (rgb[40:60, 40:60] == 255).all()   # white, not the hidden red
    half = rgb[60:70, 60:70].astype(int)
    assert np.abs(half - (photo[60:70, 60:70].astype(int) + 255) / 2).max() <= 2
    la = load_image_bytes(encode(Image.fromarray(rgba).convert("LA"), "PNG")).rgb
    assert (la[40:60, 40:60] == 255).all()


def test_non_srgb_icc_profile_is_converted():
    # Under the swapped profile, numbers stored as red mean green.
    stored = np.zeros((64, 64, 3), np.uint8)
    stored[..., 0] = 200
    loaded = load_image_bytes(encode(Image.fromarray(stored), "JPEG", quality=95, icc_profile=swapped_red_green_profile()))
    assert loaded.icc_converted
    r, g, b = loaded.rgb[32, 32].astype(int)
    assert g > 150 and r < 60 and b < 60
    plain = load_image_bytes(encode(Image.fromarray(stored), "JPEG", quality=95))
    assert not plain.icc_converted and plain.rgb[32, 32, 0] > 150


def test_truncated_photos_are_detected_even_after_face_recognition_is_imported(photo):
    from photoguard.engine.identify import face_recognition

    face_recognition()   # sets Pillow's LOAD_TRUNCATED_IMAGES = True as a side effect of import
    data = jpeg_bytes(photo)
    png = encode(Image.fromarray(photo), "PNG")
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image_bytes(data[: len(data) - 40])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    with pytest.raises(ImageError, match="truncated PNG"):
        load_image_bytes(png[: len(png) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_sha256(tmp_path, photo):
    data = jpeg_bytes(photo)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest() == load_image(path).sha256


# -- writing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leaky_jpeg(photo):
    """A phone-like JPEG: EXIF with GPS, maker note and thumbnail, XMP, IPTC, a comment, a wide-gamut ICC."""
    thumb = encode(Image.fromarray(photo).resize((40, 27)), "JPEG", quality=70)
    stored = Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90)   # orientation 6
    data = encode(stored, "JPEG", quality=92, exif=exif_with_gps_and_thumbnail(thumb, orientation=6),
                  xmp=XMP_PACKET, comment=b"Room 2 - Sunflower Nursery, 12 High St", icc_profile=swapped_red_green_profile())
    return insert_segments(data, [(0xED, iptc_app13(b"Amy and Tom at the farm"))])


def test_leaky_source_really_carries_metadata(leaky_jpeg):
    names = jpeg_segments(leaky_jpeg)
    assert {"APP1", "APP13", "COM", "APP2"} <= set(names)
    assert names.count("APP1") == 2   # EXIF and XMP
    with Image.open(io.BytesIO(leaky_jpeg)) as im:
        exif = im.getexif()
        assert exif[0x0112] == 6
        assert exif.get_ifd(0x8825)[2] == (51.0, 30.0, 12.34)
    problems = " | ".join(strip_check(leaky_jpeg))
    for what in ("EXIF", "XMP", "IPTC", "COM", "ICC"):
        assert what in problems


def test_saved_jpeg_carries_pixels_and_nothing_else(leaky_jpeg, photo, tmp_path):
    src = tmp_path / "leaky.jpg"
    src.write_bytes(leaky_jpeg)
    loaded = load_image(src)
    (tmp_path / "outbox").mkdir()
    out = save_stripped_jpeg(loaded.rgb, tmp_path / "outbox", "leaky")
    assert out == tmp_path / "outbox" / "leaky.jpg"
    data = out.read_bytes()
    assert set(jpeg_segments(data)) <= OUTBOX_SEGMENTS
    assert strip_check(out) == []
    for secret in (b"Exif", b"SECRET-MAKER", b"PhotoGuardTestCam", b"Sunflower", b"Amy and Tom", b"Photoshop",
                   b"http://ns.adobe.com", b"ICC_PROFILE", b"8BIM"):
        assert secret not in data
    with Image.open(out) as im:
        assert not im.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment", "photoshop"} & set(im.info)
        shown = np.asarray(im)
    assert shown.shape == photo.shape and shown[:10, :20].mean() < 40   # upright without an orientation tag


def test_save_never_overwrites_and_leaves_no_temp_files(photo, tmp_path):
    (tmp_path / "day.jpg").write_bytes(b"someone else's file")
    first = save_stripped_jpeg(photo, tmp_path, "day")
    second = save_stripped_jpeg(photo, tmp_path, "day")
    assert (first.name, second.name) == ("day-1.jpg", "day-2.jpg")
    assert (tmp_path / "day.jpg").read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day-1.jpg", "day-2.jpg", "day.jpg"]
    assert np.abs(load_image(second).rgb.astype(int) - photo).mean() < 4


def test_concurrent_saves_of_one_name_all_land(photo, tmp_path):
    results, errors = [], []

    def save():
        try:
            results.append(save_stripped_jpeg(photo, tmp_path, "same"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in results)
    assert all(strip_check(p) == [] for p in results)


def test_save_into_missing_folder_says_so(photo, tmp_path):
    with pytest.raises(SaveError, match="does not exist") as info:
        save_stripped_jpeg(photo, tmp_path / "nope", "a")
    assert isinstance(info.value, OSError)


def test_failed_write_leaves_nothing_behind(tmp_path):
    # A real write failure: the file-size limit stops the write part-way, like a full disk.
    code = f"""
import os, resource, signal, sys, numpy as np
from pathlib import Path
from photoguard.photos.save import SaveError, save_stripped_jpeg
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
rgb = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
try:
    save_stripped_jpeg(rgb, Path({str(tmp_path)!r}), "big")
except SaveError as exc:
    print("SaveError", exc.errno, exc)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("SaveError"), result.stdout + result.stderr
    assert str(tmp_path) in result.stdout
    assert os.listdir(tmp_path) == []


def test_save_refuses_bad_arrays_and_stems(photo, tmp_path):
    with pytest.raises(ValueError):
        save_stripped_jpeg(photo.astype(np.float32), tmp_path, "a")
    with pytest.raises(ValueError):
        save_stripped_jpeg(photo[..., 0], tmp_path, "a")
    with pytest.raises(ValueError):
        save_stripped_jpeg(photo, tmp_path, "../a")


def test_jpeg_segments_walks_markers(photo):
    data = encode(Image.fromarray(photo), "JPEG", progressive=True, restart_marker_blocks=2)
    names = jpeg_segments(data)
    assert names[0] == "SOI" and names[-1] == "EOI" and "SOF2" in names and "DRI" in names
    assert names.count("SOS") > 1
    with pytest.raises(ValueError):
        jpeg_segments(data[:-100])
    assert jpeg_segments(data + b"trailing video")[-1] == "TRAILING"
    assert any("after the end" in p for p in strip_check(data + b"trailing video"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("grey", [False, True])
def test_a_jpeg_is_decoded_once_into_exactly_pillows_pixels(photo, orientation, grey, monkeypatch):
    """One decode (OpenCV's, which also hears libjpeg's warnings), not Pillow's plus a second small one for
    the warnings; the same pixels, turned the same way, as Pillow's decode and exif_transpose."""
    import cv2
    from PIL import ImageOps

    picture = Image.fromarray(photo).convert("L") if grey else Image.fromarray(photo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(picture, "JPEG", quality=90, exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    decodes = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decodes.append(a[1]) or real(*a))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("Pillow decoded it too"))

    loaded = load_image_bytes(data)

    assert len(decodes) == 1
    assert loaded.orientation == orientation and loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable
    assert np.array_equal(loaded.rgb, expected)


@pytest.mark.parametrize("height, width", [(3000, 4000), (3024, 4032), (4032, 3024), (2250, 4000), (4000, 6000),
                                           (3001, 4001)])
def test_a_second_rendering_is_shrunk_only_where_it_differs_with_the_same_result(height, width, monkeypatch):
    """Two channels' pictures of one photo differ only where a face is obscured in one: the second is
    shrunk only there, and gives the same numbers, bit for bit, as shrinking it whole."""
    import cv2

    from photoguard.photos.shrink import shrink_to

    rng = np.random.default_rng(height + width)
    first = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    second = first.copy()
    second[1000:1290, 700:930] = rng.integers(0, 255, (290, 230, 3), dtype=np.uint8)   # a face obscured here only
    second[-1, -1] ^= 1                                                                  # and one pixel in a corner
    whole = shrink_to(second, 2048)
    shrunk_first = shrink_to(first, 2048)
    areas = []
    real = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda src, *a, **k: areas.append(src.shape[0] * src.shape[1]) or real(src, *a, **k))

    again = shrink_to(second, 2048, like=(first, shrunk_first))

    assert np.array_equal(again, whole)
    assert np.array_equal(shrink_to(first, 2048, like=(first, shrunk_first)), shrunk_first)
    if (height, width) in ((4000, 6000), (3001, 4001)):   # sizes whose blocks would not shrink exactly: whole
        assert sum(areas) == 2 * height * width
    else:
        assert sum(areas) < 0.05 * height * width


@pytest.mark.parametrize("height, width, size", [(3024, 4032, (1280, 960)), (2448, 3264, (1280, 960)),
                                                 (1944, 2592, (1280, 960)), (4000, 6000, (1280, 853)),
                                                 (3001, 4001, None)])
def test_a_search_shrinks_blocks_of_any_whole_size_again(height, width, size):
    """For a search (``bitwise=False``) a picture is split into blocks whose shrunk size is whole, not only a power
    of two (4032 px to 1280: 63 px to 20; 6000 x 4000 to 1280 x 853: strips 75 px wide to 16): the same numbers as
    shrinking it whole. 4001 x 3001 does not split at all: shrunk whole."""
    import cv2

    from photoguard.photos.shrink import _blocks, shrink_to

    rng = np.random.default_rng(width)
    first = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 1.5)
    second = first.copy()
    second[700:990, 900:1130] = rng.integers(0, 255, (290, 230, 3), dtype=np.uint8)
    shrunk_first = shrink_to(first, 1280)

    again = shrink_to(second, 1280, like=(first, shrunk_first), bitwise=False)

    assert np.array_equal(again, shrink_to(second, 1280))
    assert _blocks(width, height, shrunk_first.shape[1::-1]) is None   # no power-of-two split for the outbox's
    if size is None:
        assert _blocks(width, height, shrunk_first.shape[1::-1], bitwise=False) is None
    else:
        assert shrunk_first.shape[1::-1] == size and _blocks(width, height, size, bitwise=False) is not None


def test_an_opencv_older_than_4_11_decodes_the_same_pixels(monkeypatch):
    """pyproject allows OpenCV 4.8, which has no IMREAD_COLOR_RGB: the photo is decoded to BGR and swapped,
    with the same pixels, instead of every JPEG failing."""
    import cv2
    from facekit import face_patch, jpeg_bytes

    from photoguard.photos.images import load_image_bytes

    data = jpeg_bytes(face_patch("astronaut", 120).rgb, orientation=6)
    new = load_image_bytes(data).rgb
    monkeypatch.delattr(cv2, "IMREAD_COLOR_RGB")
    old = load_image_bytes(data).rgb
    assert old.shape == new.shape and (old == new).all()


def test_decoding_in_two_threads_at_once_leaves_the_warning_filters_as_they_were():
    """The read-ahead decodes the next photo while the pipeline may decode one: catch_warnings in both at
    once used to leave an "ignore everything" filter behind (2 runs in 3 before the fix)."""
    import threading
    import warnings

    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    before = list(warnings.filters)

    def decode_many() -> None:
        for _ in range(300):
            load_image_bytes(data)

    threads = [threading.Thread(target=decode_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before
