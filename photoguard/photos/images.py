"""Reading photos (any format staff drop, oriented, 8-bit sRGB RGB) and writing stripped JPEGs.

Reading fails closed: anything that is not plainly one still photo raises :class:`ImageError` with a
reason a nursery manager can act on, so the pipeline can put the file in ``failed/``.

Writing never overwrites and never leaves a half-written file where a collector could see it: the
JPEG is written to a dot-prefixed temporary file in the same folder, fsynced, then hard-linked to its
final name (``link`` fails instead of replacing an existing name), and the folder is fsynced.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import sys
import threading
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile

# Limits. A phone photo is 12-50 MP; 100 MP leaves room for big cameras while refusing
# decompression bombs (Pillow itself refuses above 2 x Image.MAX_IMAGE_PIXELS).
MAX_PIXELS = 100_000_000
MAX_FILE_BYTES = 300 * 1024 * 1024
MIN_SIDE = 32          # smaller than this cannot hold a face worth checking
MAX_ASPECT = 20.0      # longest side / shortest side; phone panoramas stay well under this

# Formats accepted as photos. MPO is how Pillow names camera JPEGs that carry a second picture
# (a preview or depth map); the first picture is the photo.
# File names a photo may have (reference photos, samples, evaluation sets).
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff"})
PHOTO_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "HEIF", "AVIF", "TIFF", "BMP", "GIF")
# Containers whose extra pictures are the photo's own companions, not an animation.
_PRIMARY_FRAME_FORMATS = ("MPO", "HEIF")

_ORIENTATION_TAG = 0x0112
# What to do to the stored pixels so they display as intended (as PIL.ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_LABEL = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "HEIF": "HEIC", "AVIF": "AVIF",
          "TIFF": "TIFF", "BMP": "BMP", "GIF": "GIF"}
_COPY_AGAIN = "copy the photo again from the camera or tablet"


class ImageError(Exception):
    """A file that cannot be used as a photo; ``str(exc)`` is a reason a person understands.

    ``reason`` is the bare reason (no file name); ``path`` the file, when known.
    """

    def __init__(self, reason: str, path: Path | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path.name}: {reason}" if path is not None else reason)


class SaveError(OSError):
    """Writing a photo failed; nothing was left behind. ``errno`` is the underlying error number."""


@dataclass
class LoadedImage:
    rgb: np.ndarray      # (H, W, 3) uint8, EXIF orientation already applied
    format: str          # 'JPEG', 'PNG', 'HEIF', ...
    orientation: int     # the EXIF orientation that was applied (1 = none)
    sha256: str = ""     # of the exact bytes that were decoded
    icc_converted: bool = False  # colours were converted from an embedded non-sRGB profile

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@cache
def register_heif() -> None:
    # Registering adds HEIF to Pillow's openers; done once, on first use, not at import.
    import pillow_heif

    pillow_heif.register_heif_opener()


# ---------------------------------------------------------------------------------------------
# Reading


def _open_formats() -> list[str]:
    # Pillow opens MPO through its JPEG opener; a format whose plugin is missing cannot be listed.
    Image.init()
    return [f for f in PHOTO_FORMATS if f in Image.OPEN]


def load_image(path: Path) -> LoadedImage:
    """Decode one still photo fully, upright, as 8-bit sRGB RGB; raise ImageError if it cannot be used.

    FileNotFoundError is left alone (the file is gone, it is not a bad photo).
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError("this is a folder, not a photo", path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file too large ({size // (1024 * 1024)} MB) — not a photo PhotoGuard can handle", path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except PermissionError:
        raise ImageError("cannot read the file: permission denied — check the file's permissions", path) from None
    except OSError as e:
        raise ImageError(f"cannot read the file ({e.strerror or e}) — {_COPY_AGAIN}", path) from None
    try:
        return _decode(data)
    except ImageError as e:
        raise ImageError(e.reason, path) from None


def load_image_bytes(data: bytes) -> LoadedImage:
    """Like :func:`load_image`, for bytes already in memory."""
    return _decode(data)


def _decode(data: bytes) -> LoadedImage:
    if not data:
        raise ImageError("empty file (0 bytes) — the copy failed; " + _COPY_AGAIN)
    register_heif()
    # face_recognition sets this to True when imported, which makes Pillow fill a truncated photo
    # with grey instead of failing. Photos must be complete: put Pillow's default back.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        # Pillow's notices (corrupt EXIF, its bomb warning, which MAX_PIXELS replaces) are not
        # failures; real problems raise. Its hard bomb limit (2 x MAX_IMAGE_PIXELS) still applies.
        warnings.simplefilter("ignore")
        return _decode_quietly(data)


def _decode_quietly(data: bytes) -> LoadedImage:
    digest = hashlib.sha256(data).hexdigest()
    try:
        im = Image.open(io.BytesIO(data), formats=_open_formats())
    except Image.DecompressionBombError:
        raise ImageError(f"image larger than {MAX_PIXELS // 1_000_000} megapixels — not a photo PhotoGuard can handle") from None
    except Exception:
        raise ImageError(_why_unreadable(data)) from None
    with im:
        fmt = im.format or "?"
        label = _LABEL.get(fmt, fmt)
        _check_size(im.width, im.height)
        if getattr(im, "n_frames", 1) > 1 and fmt not in _PRIMARY_FRAME_FORMATS:
            if fmt == "TIFF":
                raise ImageError("multi-page TIFF — not a single photo; save the page you want as JPEG")
            raise ImageError(f"animated {label} — not a photo; save one frame as JPEG if it should be shared")
        try:
            im.load()
        except Image.DecompressionBombError:
            raise ImageError(f"image larger than {MAX_PIXELS // 1_000_000} megapixels — not a photo PhotoGuard can handle") from None
        except MemoryError:
            raise ImageError(f"not enough memory to open this {im.width}×{im.height} image") from None
        except Exception as e:
            if "truncated" in str(e).lower() or isinstance(e, EOFError):
                raise ImageError(f"truncated {label} — the copy may be incomplete; {_COPY_AGAIN}") from None
            raise ImageError(f"damaged {label} — the picture data cannot be decoded ({e}); {_COPY_AGAIN}") from None
        if fmt in ("JPEG", "MPO"):
            # libjpeg decodes corrupt scan data into garbage without an error; the marker walk
            # catches most of it. (Pillow already reported real truncation above.)
            problem = jpeg_problem(data)
            if problem is not None and problem.startswith("truncated"):
                raise ImageError(f"truncated JPEG — the copy may be incomplete; {_COPY_AGAIN}")
            if problem is not None or libjpeg_warning(data) is not None:
                raise ImageError(f"damaged JPEG — part of the picture data is damaged; {_COPY_AGAIN}")
        orientation = _orientation(im)
        try:
            rgb_im, converted = _to_rgb(im)
        except Exception as e:
            raise ImageError(f"unsupported colour format ({im.mode}) in this {label}: {e}") from None
        if fmt != "HEIF" and orientation in _UPRIGHT:
            # HEIF is the exception: libheif already rotated it (pillow-heif reports the original value).
            rgb_im = rgb_im.transpose(_UPRIGHT[orientation])
        rgb = np.array(rgb_im, dtype=np.uint8, order="C")   # a copy, before the file is closed
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"unsupported colour format in this {label}")
    return LoadedImage(rgb=rgb, format=fmt, orientation=orientation, sha256=digest, icc_converted=converted)


# libjpeg's warnings that mean the picture data is damaged (it decodes such data into grey or smeared
# blocks without an error). Other warnings (an unknown JFIF revision, an odd thumbnail) are harmless.
_CORRUPT_WARNINGS = ("corrupt jpeg data", "premature end of jpeg file", "invalid sos parameters",
                     "inconsistent progression sequence", "bogus")
_stderr_lock = threading.Lock()


def libjpeg_warning(data: bytes) -> str | None:
    """libjpeg's complaint about damaged picture data in this JPEG ("Corrupt JPEG data: 229 extraneous
    bytes before marker 0xd9"), or None.

    Pillow silences libjpeg's warnings; OpenCV's decoder lets them through to stderr. So the JPEG is
    decoded once more by OpenCV at 1/8 scale (every byte of the picture data is still entropy-decoded,
    ~50 ms for 12 MP) with the process's stderr caught for that moment; anything else written to
    stderr meanwhile is passed on.
    """
    import tempfile

    import cv2

    with _stderr_lock, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(caught.fileno(), 2)
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode("utf-8", "replace")
    found = None
    others = []
    for line in text.splitlines():
        if found is None and any(w in line.lower() for w in _CORRUPT_WARNINGS):
            found = line.strip().rstrip(".")
        elif line.strip():
            others.append(line)
    if others:
        os.write(2, ("\n".join(others) + "\n").encode("utf-8", "replace"))
    return found


def load_thumbnail(path: Path, max_px: int) -> tuple[Image.Image, float]:
    """A small upright RGB copy for reports, oriented exactly as ``load_image`` orients the photo (so
    face boxes from the pipeline land on the right place), and its scale from the full oriented size.
    JPEGs are decoded at a fraction of their size. Raises ImageError like ``load_image``."""
    register_heif()
    try:
        im = Image.open(path, formats=_open_formats())
    except Exception:
        raise ImageError("cannot be read as a photo", Path(path)) from None
    with im:
        orientation = _orientation(im)
        full_w, full_h = im.size
        if orientation in (5, 6, 7, 8):
            full_w, full_h = full_h, full_w
        if im.format == "JPEG":
            im.draft("RGB", (max_px, max_px))
        try:
            im.load()
            small, _ = _to_rgb(im)
        except Exception as exc:
            raise ImageError(f"cannot be decoded ({exc})", Path(path)) from None
        if im.format != "HEIF" and orientation in _UPRIGHT:
            small = small.transpose(_UPRIGHT[orientation])
    small.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    return small, small.width / full_w


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"image larger than {MAX_PIXELS // 1_000_000} megapixels ({width}×{height}) — not a photo PhotoGuard can handle")
    if min(width, height) > 0 and max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(f"huge aspect ratio ({width}×{height}) — a strip or banner, not a photo")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image too small ({width}×{height}) — a photo must be at least {MIN_SIDE} pixels on each side")


def _orientation(im: Image.Image) -> int:
    if im.format == "HEIF":
        value = im.info.get("original_orientation", 1)
    else:
        try:
            value = im.getexif().get(_ORIENTATION_TAG, 1)
        except Exception:  # unreadable EXIF: nothing to apply
            return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1   # out-of-range values are ignored, as viewers do


def _to_rgb(im: Image.Image) -> tuple[Image.Image, bool]:
    """Flatten any mode to 8-bit RGB; convert a non-sRGB ICC profile to sRGB (best effort)."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        im = Image.fromarray(_to_8bit(np.asarray(im), mode))
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        # Composite on white rather than dropping alpha: pixels under transparent areas may hold
        # anything (a face cropped out with an eraser), and white is how viewers show them.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB" if im.mode.startswith("RGB") else "L")
    converted = False
    if icc and im.mode in ("RGB", "L", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if im.mode != "RGB" or "srgb" not in (ImageCms.getProfileDescription(src) or "").lower():
                im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"),
                                               renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
                converted = True
        except Exception:  # a broken profile: keep the numbers as they are
            pass
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im, converted


def _to_8bit(a: np.ndarray, mode: str) -> np.ndarray:
    """Scale 16-bit, 32-bit int and float greys to 0..255 (scaled, not clipped)."""
    if mode == "F":
        a = np.nan_to_num(a.astype(np.float64))
        a = a * 255.0 if a.max(initial=0) <= 1.0 else a
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    if mode == "I" and a.max(initial=0) <= 255:
        return np.clip(a, 0, 255).astype(np.uint8)
    a = np.clip(a, 0, 65535)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _why_unreadable(data: bytes) -> str:
    """A reason for bytes that no accepted Pillow plugin could open."""
    head = data[:512]
    if not data.strip(b"\x00"):
        return f"the file contains only zero bytes — the copy failed; {_COPY_AGAIN}"
    low = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%PDF"):
        return "a PDF document, not a photo — export the pictures from it as JPEG"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive, not a photo — unzip it and drop the photos themselves"
    if head.startswith((b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")):
        return "a compressed archive, not a photo — unpack it and drop the photos themselves"
    if low.startswith(b"<svg") or (low.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "an SVG drawing, not a photo"
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in low:
        return "not an image (looks like HTML, a saved web page) — save the picture itself"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"):
            return f"damaged HEIC/HEIF — the picture data cannot be decoded; {_COPY_AGAIN}"
        return "a video, not a photo — only still photos can be shared"
    if head.startswith(b"\xff\xd8"):
        problem = jpeg_problem(data)
        if problem and "truncated" in problem:
            return f"truncated JPEG — the copy may be incomplete; {_COPY_AGAIN}"
        return f"damaged JPEG — {problem or 'the picture data cannot be decoded'}; {_COPY_AGAIN}"
    if head.startswith(b"\x89PNG"):
        return f"damaged PNG — the picture data cannot be decoded; {_COPY_AGAIN}"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "unsupported TIFF (its compression or layout cannot be read) — save it as JPEG"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return f"damaged WebP — the picture data cannot be decoded; {_COPY_AGAIN}"
    if head.startswith(b"GIF8"):
        return f"damaged GIF — the picture data cannot be decoded; {_COPY_AGAIN}"
    if _looks_like_text(head):
        return "not an image (looks like text)"
    try:  # an image, but of a kind we do not take: name it
        with Image.open(io.BytesIO(data)) as im:
            return f"unsupported format ({im.format}) — save it as JPEG, PNG or HEIC"
    except Exception:
        pass
    return "unsupported format — not an image PhotoGuard can read (JPEG, PNG, HEIC, WebP, TIFF)"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return bool(text) and printable / len(text) > 0.95


# ---------------------------------------------------------------------------------------------
# JPEG structure

_MARKER_NAMES = {0xC4: "DHT", 0xC8: "JPG", 0xCC: "DAC", 0xD8: "SOI", 0xD9: "EOI", 0xDA: "SOS", 0xDB: "DQT",
                 0xDC: "DNL", 0xDD: "DRI", 0xDE: "DHP", 0xDF: "EXP", 0xFE: "COM", 0x01: "TEM"}
# Markers that may follow the entropy-coded data of a scan.
_AFTER_SCAN = {0xC4, 0xCC, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE} | set(range(0xE0, 0xF0))


def _marker_name(m: int) -> str:
    if m in _MARKER_NAMES:
        return _MARKER_NAMES[m]
    if 0xC0 <= m <= 0xCF:
        return f"SOF{m - 0xC0}"
    if 0xE0 <= m <= 0xEF:
        return f"APP{m - 0xE0}"
    if 0xD0 <= m <= 0xD7:
        return f"RST{m - 0xD0}"
    return f"0x{m:02X}"


@dataclass(frozen=True)
class JpegSegment:
    name: str        # 'SOI', 'APP1', 'SOF0', 'SOS', ...
    marker: int      # the marker byte (0xE1 for APP1)
    offset: int      # of the 0xFF marker byte
    payload: bytes   # the segment's content after its length field (b'' for SOI/EOI)


@dataclass(frozen=True)
class JpegWalk:
    segments: list[JpegSegment]
    problem: str | None   # None if the structure is sound; 'truncated ...' when the data runs out
    end: int              # offset just past EOI (or where the walk stopped)
    trailing: int         # bytes after EOI (a second picture, a motion-photo video, or junk)


def walk_jpeg(data: bytes) -> JpegWalk:
    """Walk the markers of the first JPEG picture in ``data``, checking scan data on the way.

    Entropy-coded data may only contain 0xFF followed by 0x00 (stuffing) or RST markers in
    sequence; anything else after a scan must be a marker that can follow a scan.
    """
    n = len(data)
    segs: list[JpegSegment] = []

    def done(problem: str | None, pos: int) -> JpegWalk:
        return JpegWalk(segs, problem, pos, max(0, n - pos) if problem is None else 0)

    if data[:2] != b"\xff\xd8":
        return done("not a JPEG (no start-of-image marker)", 0)
    segs.append(JpegSegment("SOI", 0xD8, 0, b""))
    pos = 2
    in_scans = False
    while True:
        if pos >= n:
            return done("truncated: the data ends before the end-of-image marker", pos)
        if data[pos] != 0xFF:
            return done(f"unexpected data at byte {pos} where a marker should be", pos)
        start = pos
        while pos < n and data[pos] == 0xFF:   # fill bytes
            pos += 1
        if pos >= n:
            return done("truncated: the data ends before the end-of-image marker", pos)
        m = data[pos]
        pos += 1
        if m == 0xD9:
            segs.append(JpegSegment("EOI", m, start, b""))
            return done(None, pos)
        if m == 0x00 or m == 0xD8 or 0x02 <= m < 0xC0 or (in_scans and m not in _AFTER_SCAN and not 0xD0 <= m <= 0xD7):
            return done(f"invalid marker 0x{m:02X} at byte {start}", start)
        if 0xD0 <= m <= 0xD7 or m == 0x01:   # standalone markers without a length
            segs.append(JpegSegment(_marker_name(m), m, start, b""))
            continue
        if pos + 2 > n:
            return done("truncated: the data ends inside a marker segment", pos)
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            return done(f"bad segment length at byte {start}", start)
        if pos + length > n:
            # Between scans this is far more often a corrupt byte pair that looks like a marker.
            return done(f"a marker segment at byte {start} runs past the end of the file" if in_scans
                        else "truncated: the data ends inside a marker segment", n)
        segs.append(JpegSegment(_marker_name(m), m, start, bytes(data[pos + 2:pos + length])))
        pos += length
        if m != 0xDA:
            continue
        in_scans = True
        expect_rst = 0
        while True:   # entropy-coded data
            j = data.find(b"\xff", pos)
            if j < 0 or j + 1 >= n:
                return done("truncated: the data ends inside the picture data", n)
            nxt = data[j + 1]
            if nxt == 0x00:
                pos = j + 2
            elif 0xD0 <= nxt <= 0xD7:
                if nxt - 0xD0 != expect_rst:
                    return done(f"restart markers out of order at byte {j}", j)
                expect_rst = (expect_rst + 1) % 8
                pos = j + 2
            elif nxt == 0xFF:
                pos = j + 1
            else:
                pos = j
                break


def jpeg_problem(data: bytes) -> str | None:
    """None if ``data`` is a structurally sound JPEG; otherwise what is wrong."""
    walk = walk_jpeg(data)
    if walk.problem is None and not any(s.name.startswith("SOF") for s in walk.segments):
        return "no picture frame (SOF) in the file"
    if walk.problem is None and not any(s.name == "SOS" for s in walk.segments):
        return "no picture data in the file"
    return walk.problem


def jpeg_segments(source: Path | str | bytes) -> list[str]:
    """Names of the JPEG's marker segments in order ('SOI', 'APP0', 'DQT', 'SOF0', 'DHT', 'SOS', 'EOI').

    RST markers inside scan data are not listed. Raises ValueError if the structure is broken.
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    walk = walk_jpeg(bytes(data))
    if walk.problem is not None:
        raise ValueError(walk.problem)
    names = [s.name for s in walk.segments]
    if walk.trailing:
        names.append("TRAILING")
    return names


_ALLOWED = {"SOI", "DQT", "DHT", "DRI", "SOS", "EOI"} | {f"SOF{i}" for i in (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15)}
_APP_IDS = [(b"Exif\x00", "EXIF"), (b"http://ns.adobe.com/xap/1.0/\x00", "XMP"), (b"http://ns.adobe.com/xmp/extension/\x00", "XMP"),
            (b"Photoshop 3.0\x00", "IPTC/Photoshop"), (b"ICC_PROFILE\x00", "ICC profile"), (b"MPF\x00", "multi-picture"),
            (b"JFXX\x00", "JFIF thumbnail"), (b"JFIF\x00", "JFIF"), (b"Adobe", "Adobe"), (b"Ducky", "Ducky")]


def _app_id(payload: bytes) -> str:
    for prefix, name in _APP_IDS:
        if payload.startswith(prefix):
            return name
    return repr(payload[:12])


def strip_check(source: Path | str | bytes) -> list[str]:
    """Problems that make a JPEG unfit for the outbox; [] when it carries pixels and nothing else.

    Allowed: SOI, APP0 JFIF without thumbnail, APP2 holding only an sRGB ICC profile, DQT, SOF,
    DHT, DRI, SOS (+RST), EOI. Everything else (EXIF, GPS, thumbnails, XMP, IPTC, comments,
    maker notes, data after EOI) is a problem.
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    walk = walk_jpeg(bytes(data))
    problems = []
    if walk.problem is not None:
        problems.append(f"broken JPEG structure: {walk.problem}")
    for seg in walk.segments:
        if seg.name in _ALLOWED or seg.name.startswith("RST"):
            continue
        if seg.name == "APP0" and seg.payload.startswith(b"JFIF\x00"):
            if len(seg.payload) >= 14 and seg.payload[12] * seg.payload[13] == 0:
                continue
            problems.append("APP0 (JFIF) carries a thumbnail")
            continue
        if seg.name == "APP2" and seg.payload.startswith(b"ICC_PROFILE\x00"):
            if _icc_is_srgb(seg.payload[14:]):
                continue
            problems.append("APP2 (ICC profile) is not plain sRGB")
            continue
        if seg.name == "COM":
            problems.append("COM (comment) segment present")
        elif seg.name.startswith("APP"):
            problems.append(f"{seg.name} ({_app_id(seg.payload)}) segment present")
        else:
            problems.append(f"{seg.name} segment present")
    if walk.trailing:
        problems.append(f"{walk.trailing} bytes after the end of the picture")
    return problems


def _icc_is_srgb(icc: bytes) -> bool:
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))) or ""
    except Exception:   # a multi-chunk or broken profile: not plain sRGB
        return False
    return "srgb" in desc.lower()


# ---------------------------------------------------------------------------------------------
# Writing


def shrink_to(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` at most ``max_side`` px on its long side (area-averaged, so nothing is sharpened back), or
    ``rgb`` itself if it is no larger."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    import cv2

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


def encode_stripped_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of ``rgb`` with no metadata at all (checked with :func:`strip_check`)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("save_stripped_jpeg needs an (H, W, 3) uint8 RGB array")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100 (got {quality})")
    img = Image.fromarray(np.ascontiguousarray(rgb))   # fresh image: empty info, nothing to copy
    buf = io.BytesIO()
    # No optimize=True: its second Huffman pass doubles the encoding time for ~10% smaller files.
    img.save(buf, "JPEG", quality=quality, exif=b"", comment=b"")
    data = buf.getvalue()
    problems = strip_check(data)
    if problems:  # never expected; refuse rather than leak
        raise RuntimeError("the JPEG encoder wrote metadata: " + "; ".join(problems))
    return data


def save_stripped_jpeg(rgb: np.ndarray, folder: Path, stem: str, quality: int = 90, mode: int = 0o640) -> Path:
    """Write ``folder/stem.jpg`` atomically with no metadata at all; never overwrite (adds -1, -2 ...).

    ``mode`` is set explicitly, whatever the umask: 0640 (readable by the manager's group) suits the
    outbox, 0600 anything that holds faces not yet cleared. Returns the path written. Raises SaveError
    (an OSError) with a clear message if writing fails; no temporary file is left behind.
    """
    folder = Path(folder)
    if not stem or "/" in stem or "\\" in stem or stem in (".", "..") or "\x00" in stem:
        raise ValueError(f"bad file name stem {stem!r}")
    data = encode_stripped_jpeg(rgb, quality)
    tmp = folder / f".{stem}.jpg.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        final, moved = _claim_name(tmp, folder, stem)
        if not moved:
            os.unlink(tmp)
        fsync_dir(folder)
        return final
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _save_error(e, folder) from e


def _claim_name(tmp: Path, folder: Path, stem: str) -> tuple[Path, bool]:
    """Give ``tmp`` the first free name stem.jpg, stem-1.jpg, ...; True if tmp was moved (not linked)."""
    for i in range(100_000):
        final = folder / (f"{stem}.jpg" if i == 0 else f"{stem}-{i}.jpg")
        try:
            os.link(tmp, final)   # fails if final exists: no overwrite, even in a race
            return final, False
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        # No hard links here (FAT/exFAT, some shares): reserve the name exclusively, then move onto it.
        try:
            os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        try:
            os.replace(tmp, final)
        except OSError:
            os.unlink(final)
            raise
        return final, True
    raise FileExistsError(errno.EEXIST, f"too many files named {stem}-N.jpg in {folder}")


def write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (best effort where the file system refuses)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some filesystems refuse fsync on folders; the file itself is synced
        pass
    finally:
        os.close(fd)


def _save_error(e: OSError, folder: Path) -> SaveError:
    code = e.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        msg = f"no space left on device writing {folder} — free some space, then process the photo again"
    elif code == errno.EFBIG:
        msg = f"file too large for the device writing {folder}"
    elif code in (errno.EACCES, errno.EPERM):
        msg = f"permission denied writing {folder} — check the folder's permissions"
    elif code == errno.EROFS:
        msg = f"{folder} is on a read-only device"
    elif code == errno.ENOENT:
        msg = f"folder {folder} does not exist"
    else:
        msg = f"could not write a photo in {folder}: {e.strerror or e}"
    err = SaveError(msg)
    err.errno = code   # strerror left unset so str(err) stays the message above
    return err
