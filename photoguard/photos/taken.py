"""When a photo was taken: the camera's date in the file, else the day the file was last written."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from photoguard.photos.images import register_heif

_EXIF_IFD = 0x8769
_DATE_TAKEN = 36867    # DateTimeOriginal, in the Exif IFD
_DATE_CHANGED = 306    # DateTime, in the first IFD
_EARLIEST = date(1990, 1, 1)


def _exif_date(text: object) -> date | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip()[:10], "%Y:%m:%d").date()
    except ValueError:
        return None


def camera_date(source: Path | BinaryIO, today: date | None = None) -> date | None:
    """The day the camera wrote into the photo (DateTimeOriginal, else DateTime), if it is believable
    (not before 1990, not after today); None otherwise."""
    today = today or date.today()
    register_heif()
    try:
        with Image.open(source) as im:
            exif = im.getexif()
            for found in (_exif_date(exif.get_ifd(_EXIF_IFD).get(_DATE_TAKEN)), _exif_date(exif.get(_DATE_CHANGED))):
                if found is not None and _EARLIEST <= found <= today:
                    return found
    except Exception:  # noqa: BLE001 — an unreadable header only loses the camera's date
        pass
    return None


def taken_on(path: Path, today: date | None = None) -> date:
    """The day ``path`` was taken, as its camera wrote it, or the day the file was last written when it says
    nothing believable (a re-encoded upload carries the camera's day there: ``keep_camera_date``)."""
    today = today or date.today()
    found = camera_date(path, today)
    if found is not None:
        return found
    try:
        written = date.fromtimestamp(os.stat(path).st_mtime)
    except OSError:
        return today
    return min(max(written, _EARLIEST), today)


def keep_camera_date(path: Path, day: date | None) -> None:
    """A photo PhotoGuard wrote again without its metadata keeps the camera's day as its file time."""
    if day is not None:
        stamp = datetime(day.year, day.month, day.day, 12).timestamp()
        os.utime(path, (stamp, stamp))
