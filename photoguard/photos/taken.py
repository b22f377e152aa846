"""When a photo was taken: the camera's date in the file, else the day the file was last written."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

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


def taken_on(path: Path, today: date | None = None) -> date:
    """The day ``path`` was taken, as its camera wrote it (DateTimeOriginal, else DateTime), or the day the
    file was last written when it says nothing believable (no date, before 1990, after today)."""
    today = today or date.today()
    if path.suffix.lower() in (".heic", ".heif"):
        register_heif()
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            for found in (_exif_date(exif.get_ifd(_EXIF_IFD).get(_DATE_TAKEN)), _exif_date(exif.get(_DATE_CHANGED))):
                if found is not None and _EARLIEST <= found <= today:
                    return found
    except Exception:  # noqa: BLE001 — an unreadable header only loses the camera's date
        pass
    try:
        written = date.fromtimestamp(os.stat(path).st_mtime)
    except OSError:
        return today
    return min(max(written, _EARLIEST), today)
