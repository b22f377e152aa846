"""Reading photos (any format staff drop, oriented, 8-bit sRGB RGB) and writing stripped JPEGs.

Reading fails closed: anything that is not plainly one still photo raises :class:`ImageError` with a
reason a nursery manager can act on, so the pipeline can put the file in ``failed/``.

Writing never overwrites and never leaves a half-written file where a collector could see it: the
JPEG is written to a dot-prefixed temporary file in the same folder, fsynced, then hard-linked to its
final name (``link`` fails instead of replacing an existing name), and the folder is fsynced.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile

from photoguard.photos.jpeg import jpeg_problem

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
    # catch_warnings swaps the process's one list of warning filters: two threads decoding at once (the
    # read-ahead and the pipeline) would each put back what the other had set, and could leave every
    # warning silenced for good. One decode at a time holds it.
    with _warnings_lock, warnings.catch_warnings():
        # Pillow's notices (corrupt EXIF, its bomb warning, which MAX_PIXELS replaces) are not
        # failures; real problems raise. Its hard bomb limit (2 x MAX_IMAGE_PIXELS) still applies.
        warnings.simplefilter("ignore")
        return _decode_quietly(data)


_warnings_lock = threading.Lock()


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
        if fmt in ("JPEG", "MPO") and im.mode in ("RGB", "L") and _plain_colours(im):
            # The common photo: one decode, by OpenCV straight into the array, that also says whether
            # libjpeg met damaged data; then only the turn. (Pillow would decode it into its own
            # buffer, copy that out twice and turn it through a third; OpenCV's libjpeg gives the same
            # pixels.)
            rgb = _decode_jpeg(data, label)
            if rgb is not None:
                orientation = _orientation(im)
                return LoadedImage(rgb=_upright(rgb, orientation), format=fmt, orientation=orientation,
                                   sha256=digest)
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
        rgb = np.asarray(rgb_im)   # Pillow's bytes, not copied again; the turn (or the copy below) copies
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ImageError(f"unsupported colour format in this {label}")
        # HEIF is the exception: libheif already turned it (pillow-heif reports the original value).
        rgb = _upright(rgb, orientation if fmt != "HEIF" else 1)
    return LoadedImage(rgb=rgb, format=fmt, orientation=orientation, sha256=digest, icc_converted=converted)


def _plain_colours(im: Image.Image) -> bool:
    """No colour profile, or an sRGB one: the decoded numbers are the picture as it is to be shown."""
    from photoguard.photos.jpeg import _icc_is_srgb

    icc = im.info.get("icc_profile")
    return not icc or (im.mode == "RGB" and _icc_is_srgb(icc))


def _decode_jpeg(data: bytes, label: str) -> np.ndarray | None:
    """The JPEG's pixels as (H, W, 3) RGB, not turned, decoded once by OpenCV with libjpeg's warnings
    caught (ImageError when the data is damaged or cut short); None if OpenCV cannot decode it at all
    (Pillow then tries, and says why it cannot)."""
    import cv2

    problem = jpeg_problem(data)
    if problem is not None and problem.startswith("truncated"):
        raise ImageError(f"truncated {label} — the copy may be incomplete; {_COPY_AGAIN}")
    rgb, warning = _with_libjpeg_warning(lambda: _imdecode_rgb(cv2, data))
    if problem is not None or warning is not None:
        raise ImageError(f"damaged {label} — part of the picture data is damaged; {_COPY_AGAIN}")
    if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3:
        return None
    return rgb


def _imdecode_rgb(cv2, data: bytes) -> np.ndarray | None:
    """OpenCV's decode straight to RGB (4.11 and later), else to BGR and swapped (the project allows 4.8)."""
    buf = np.frombuffer(data, np.uint8)
    if hasattr(cv2, "IMREAD_COLOR_RGB"):
        return cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` turned (or mirrored) as EXIF ``orientation`` says, in one copy (PIL.ImageOps.exif_transpose's
    turns, done by OpenCV); a C-contiguous array of its own in every case."""
    import cv2

    if orientation == 2:
        return cv2.flip(rgb, 1)
    if orientation == 3:
        return cv2.rotate(rgb, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(rgb, 0)
    if orientation == 5:
        return cv2.transpose(rgb)
    if orientation == 6:
        return cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(rgb), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return np.array(rgb, dtype=np.uint8, order="C")


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
    import cv2

    return _with_libjpeg_warning(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8))[1]


def _with_libjpeg_warning(decode):
    """(what ``decode()`` returns, libjpeg's complaint about damaged data written meanwhile or None), with
    the process's stderr caught for that moment; anything else written to stderr meanwhile is passed on."""
    import tempfile

    with _stderr_lock, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(caught.fileno(), 2)
            result = decode()
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
    return result, found


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


# ---------------------------------------------------------------------------------------------
# Writing
