"""Bad and awkward input files, as staff might drop them, with what PhotoGuard should say about each.

``make_bad_inputs(folder)`` writes the files and returns ``{file name: expected reason substring}``;
``None`` means the file is an awkward but valid photo that must load. All files are small and
deterministic. Also builders for metadata-laden JPEGs and ICC profiles, used by the image tests.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from facekit import jpeg_bytes, scene
from PIL import Image

# -- byte-level builders ----------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` RGB pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png16_rgb(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write these itself)."""
    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")


def insert_segments(jpeg: bytes, segments: list[tuple[int, bytes]]) -> bytes:
    """Insert (marker, payload) segments right after SOI."""
    assert jpeg[:2] == b"\xff\xd8"
    extra = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return jpeg[:2] + extra + jpeg[2:]


def _sof_offset(jpeg: bytes) -> int:
    pos = 2
    while True:
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xC2:
            return pos
        pos += 2 + length


def jpeg_claiming_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header patched to claim another size."""
    pos = _sof_offset(jpeg) + 5   # marker(2) length(2) precision(1)
    return jpeg[:pos] + struct.pack(">HH", height, width) + jpeg[pos + 4:]


def exif_with_gps_and_thumbnail(thumbnail_jpeg: bytes, orientation: int = 1) -> bytes:
    """An APP1 Exif payload (with the b'Exif\\0\\0' header): Orientation, Make, a GPS position, a
    MakerNote, and an IFD1 thumbnail — the things a phone puts in a photo."""
    # Little-endian TIFF. Layout: header | IFD0 | ExifIFD | GPS IFD | IFD1 | data area.
    def ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int) -> bytes:
        out = struct.pack("<H", len(entries))
        for tag, typ, count, value in sorted(entries):
            out += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        return out + struct.pack("<I", next_ifd)

    def ifd_size(n: int) -> int:
        return 2 + 12 * n + 4

    make = b"PhotoGuardTestCam\x00"
    maker_note = b"SECRET-MAKER-NOTE-SERIAL-12345\x00"
    lat = struct.pack("<6I", 51, 1, 30, 1, 1234, 100)     # 51 deg 30' 12.34"
    lon = struct.pack("<6I", 0, 1, 7, 1, 3900, 100)
    off_ifd0 = 8
    off_exif = off_ifd0 + ifd_size(4)
    off_gps = off_exif + ifd_size(1)
    off_ifd1 = off_gps + ifd_size(4)
    off_data = off_ifd1 + ifd_size(3)
    off_make = off_data
    off_note = off_make + len(make)
    off_lat = off_note + len(maker_note)
    off_lon = off_lat + len(lat)
    off_thumb = off_lon + len(lon)
    ifd0 = ifd([(0x0112, 3, 1, struct.pack("<H", orientation)),
                (0x010F, 2, len(make), struct.pack("<I", off_make)),
                (0x8769, 4, 1, struct.pack("<I", off_exif)),
                (0x8825, 4, 1, struct.pack("<I", off_gps))], off_ifd1)
    exif_ifd = ifd([(0x927C, 7, len(maker_note), struct.pack("<I", off_note))], 0)
    gps = ifd([(0x0001, 2, 2, b"N\x00"), (0x0002, 5, 3, struct.pack("<I", off_lat)),
               (0x0003, 2, 2, b"W\x00"), (0x0004, 5, 3, struct.pack("<I", off_lon))], 0)
    ifd1 = ifd([(0x0103, 3, 1, struct.pack("<H", 6)),
                (0x0201, 4, 1, struct.pack("<I", off_thumb)),
                (0x0202, 4, 1, struct.pack("<I", len(thumbnail_jpeg)))], 0)
    tiff = b"II*\x00" + struct.pack("<I", off_ifd0) + ifd0 + exif_ifd + gps + ifd1 + make + maker_note + lat + lon + thumbnail_jpeg
    assert len(tiff) < 65000
    return b"Exif\x00\x00" + tiff


def iptc_app13(caption: bytes) -> bytes:
    """An APP13 Photoshop payload holding an IPTC caption."""
    record = b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption   # 2:120 Caption
    if len(record) % 2:
        record += b"\x00"
    return b"Photoshop 3.0\x00" + b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(record)) + record


XMP_PACKET = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
              b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Room Two, Sunflower Nursery"/>'
              b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def icc_profile(description: str, red: tuple[float, float, float], green: tuple[float, float, float],
                blue: tuple[float, float, float], gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile (colorants as D50 XYZ)."""
    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v: tuple[float, float, float]) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + b"".join(s15(c) for c in v)

    text = description.encode("ascii") + b"\x00"
    desc = b"desc\x00\x00\x00\x00" + struct.pack(">I", len(text)) + text + b"\x00" * 12 + b"\x00" * 67
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"
    d50 = (0.9642, 1.0, 0.8249)
    tags = [(b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data = data + b"\x00" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\x00" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0)
              + b"".join(s15(c) for c in d50) + b"\x00" * 4)
    header = header.ljust(128, b"\x00")
    return header + struct.pack(">I", len(tags)) + table + body


# sRGB's D50-adapted colorants; swapping red and green gives a profile that visibly changes colours.
SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)


def swapped_red_green_profile() -> bytes:
    """A 'wide gamut' stand-in: stored red means sRGB green and vice versa."""
    return icc_profile("Swapped RG test profile", SRGB_GREEN, SRGB_RED, SRGB_BLUE)


# -- the bad inputs ----------------------------------------------------------------------------


def _photo(width: int = 160, height: int = 120, seed: int = 3) -> np.ndarray:
    rgb, _ = scene(width, height, [], seed=seed)
    rng = np.random.default_rng(seed)
    # texture so the JPEG scan data is long enough to corrupt in the middle
    return np.clip(rgb.astype(np.int16) + rng.integers(-25, 26, rgb.shape), 0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_bad_inputs(folder: Path) -> dict[str, str | None]:
    """Write bad and awkward files into ``folder``; return {name: expected reason substring or None}.

    ``None``: the file is a valid photo (odd format, mode or name) and must load.
    A reason substring is matched case-insensitively against ``str(ImageError)``.
    """
    import pillow_heif

    pillow_heif.register_heif_opener()   # to write HEIC
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _photo()
    img = Image.fromarray(rgb)
    jpeg = jpeg_bytes(rgb)
    rng = np.random.default_rng(20240611)
    files: dict[str, tuple[bytes, str | None]] = {}

    def add(name: str, data: bytes, expected: str | None) -> None:
        files[name] = (data, expected)

    # Copies gone wrong
    add("empty.jpg", b"", "empty file")
    add("truncated.jpg", jpeg[: len(jpeg) * 6 // 10], "truncated JPEG")
    add("missing_end_marker.jpg", jpeg[:-2], "truncated JPEG")
    png = _encode(img, "PNG")
    add("truncated.png", png[: len(png) * 6 // 10], "truncated PNG")
    corrupt = bytearray(jpeg)
    mid = len(corrupt) // 2
    corrupt[mid:mid + 1500] = rng.integers(0, 256, 1500, dtype=np.uint8).tobytes()
    add("corrupt_middle.jpg", bytes(corrupt), "damaged JPEG")
    # A smaller hit that libjpeg decodes into garbage without complaint; only the marker walk sees it.
    corrupt = bytearray(jpeg)
    corrupt[mid:mid + 300] = b"\xff\xe5\xff\xff" + rng.integers(0, 256, 296, dtype=np.uint8).tobytes().replace(b"\xff", b"\xfe")
    add("corrupt_scan.jpg", bytes(corrupt), "damaged JPEG")
    add("only_start_and_end.jpg", b"\xff\xd8\xff\xd9", "damaged JPEG")
    add("zero_filled.jpg", b"\x00" * 8192, "only zero bytes")
    heic = _encode(img, "HEIF", quality=60)
    add("broken.heic", heic[:40] + rng.integers(0, 256, len(heic) - 40, dtype=np.uint8).tobytes(), "damaged HEIC")

    # Not photos
    add("notes.jpg", "Trip to the park on Tuesday — remember sun hats!\n".encode() * 20, "looks like text")
    add("saved_page.jpg", b"<!DOCTYPE html>\n<html><head><title>Photos</title></head><body><img src='x.jpg'></body></html>\n", "HTML")
    add("document.jpg", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n", "PDF")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("photo.jpg", jpeg)
    add("archive.jpg", zbuf.getvalue(), "zip")
    add("random.jpg", b"\x13\x37" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(), "unsupported format")
    add("drawing.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>\n', "SVG")
    add("clip.mov", struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00qt  " + b"\x00" * 200, "video")
    add("icon.ico", _encode(img.resize((32, 32)), "ICO"), "unsupported format (ICO)")

    # Images that are not one still photo, or absurd in size
    add("bomb.png", png_claiming_size(100_000, 100_000), "larger than")
    add("just_over_limit.png", png_claiming_size(12_000, 9_000), "larger than")
    add("bomb.jpg", jpeg_claiming_size(jpeg, 60_000, 60_000), "larger than")
    frames = [img, Image.fromarray(255 - rgb)]
    add("animated.gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]), "animated GIF")
    add("animated.png", _encode(frames[0], "PNG", save_all=True, append_images=frames[1:]), "animated PNG")
    add("animated.webp", _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]), "animated WebP")
    add("two_pages.tif", _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]), "multi-page TIFF")
    add("pixel.png", _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), "too small")
    add("strip.png", _encode(Image.new("L", (20_000, 2), 128), "PNG"), "aspect ratio")
    add("banner.jpg", _encode(Image.new("RGB", (4000, 100), (90, 120, 200)), "JPEG"), "aspect ratio")
    tif = _encode(img, "TIFF")
    add("odd_compression.tif", _patch_tiff_tag(tif, 259, 60000), "unsupported TIFF")

    # Awkward but valid: must load
    gray16 = (np.linspace(0, 65535, 120 * 160).reshape(120, 160)).astype(np.uint16)
    add("deep16_gray.png", _encode(Image.fromarray(gray16), "PNG"), None)
    add("deep16_gray.tif", _encode(Image.fromarray(gray16), "TIFF"), None)
    add("deep16_rgb.png", png16_rgb(rgb.astype(np.uint16) * 257), None)
    add("cmyk.jpg", _encode(img.convert("CMYK"), "JPEG"), None)
    add("gray.jpg", _encode(img.convert("L"), "JPEG"), None)
    add("bilevel.png", _encode(img.convert("1"), "PNG"), None)
    add("palette.gif", _encode(img.convert("P"), "GIF"), None)
    add("transparent.png", _encode(img.convert("RGBA"), "PNG"), None)
    add("gray_alpha.png", _encode(img.convert("LA"), "PNG"), None)
    add("scan.bmp", _encode(img, "BMP"), None)
    add("photo.webp", _encode(img, "WEBP", quality=80), None)
    add("photo.avif", _encode(img, "AVIF", quality=80), None)
    add("camera_with_preview.jpg", _encode(img, "MPO", save_all=True, append_images=frames[1:]), None)  # MPO
    add("IMG_0001.HEIC", heic, None)
    # (every file differs in content: the pipeline rightly treats identical bytes as one photo)
    add("really_a_jpeg.png", jpeg_bytes(rgb, quality=85), None)
    add("really_a_png.jpg", _encode(img, "PNG"), None)
    add("Day out ☀ 1.JPG", jpeg_bytes(rgb, quality=88), None)
    add("orientation9.jpg", _with_orientation(jpeg, 9), None)
    add("bad_exif.jpg", insert_segments(jpeg, [(0xE1, b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\xee" * 40)]), None)
    add("wide_gamut.jpg", _encode(img, "JPEG", icc_profile=swapped_red_green_profile()), None)
    add("progressive.jpg", _encode(img, "JPEG", progressive=True, restart_marker_blocks=2), None)
    add("with_trailer.jpg", jpeg + b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, None)  # like a motion photo

    assert len({data for data, _ in files.values()}) == len(files), "two bad inputs have the same bytes"
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: expected for name, (_, expected) in files.items()}


def _patch_tiff_tag(tif: bytes, tag: int, value: int) -> bytes:
    assert tif[:4] == b"II*\x00"
    out = bytearray(tif)
    ifd = struct.unpack("<I", tif[4:8])[0]
    for i in range(struct.unpack("<H", tif[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", tif[entry:entry + 2])[0] == tag:
            out[entry + 8:entry + 10] = struct.pack("<H", value)
            return bytes(out)
    raise KeyError(tag)


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    with Image.open(io.BytesIO(jpeg)) as im:
        return _encode(im, "JPEG", quality=92, exif=exif)
