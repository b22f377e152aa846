"""Reading a JPEG's structure without decoding it: its segments, whether it is whole, and whether a file
PhotoGuard wrote carries nothing but the picture (no EXIF, GPS, thumbnail, XMP, IPTC or comment).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageCms

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
