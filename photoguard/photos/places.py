"""Places in a photo in words, for messages a person reads ("bottom left" rather than pixel boxes)."""

from __future__ import annotations

from collections.abc import Sequence

_ROWS = ("top", "middle", "bottom")
_COLUMNS = ("left", "centre", "right")


def where_in_photo(box: Sequence[float], width: int, height: int) -> str:
    """Where the centre of ``box`` (left, top, right, bottom) lies in a ``width`` x ``height`` photo,
    on a 3 x 3 grid: "top left", "top centre", ..., "middle", ..., "bottom right"."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a photo has a positive size (got {width} x {height})")
    cx = (box[0] + box[2]) / 2
    cy = (box[1] + box[3]) / 2
    column = _COLUMNS[min(2, max(0, int(3 * cx / width)))]
    row = _ROWS[min(2, max(0, int(3 * cy / height)))]
    if row == "middle":
        return "middle" if column == "centre" else f"middle {column}"
    return f"{row} {column}"
