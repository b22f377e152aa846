"""Photos held for review: the manager looks, then releases them to the outbox or rejects them."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .home import Home
from .pipeline import SHOWN, _fsync_dir, now_iso, publish


class ReviewError(Exception):
    """A review item could not be found or released; the message says what to do."""


@dataclass(frozen=True)
class ReviewItem:
    name: str          # the stem: review/<name>.jpg and review/<name>.json
    image: Path
    note: Path
    source: str
    reason: str
    created: str
    sha256: str | None


def list_review(home: Home) -> list[ReviewItem]:
    items = []
    for note in sorted(home.review.glob("*.json")):
        image = note.with_suffix(".jpg")
        try:
            data = json.loads(note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        items.append(ReviewItem(note.stem, image, note, data.get("source", image.name),
                                data.get("reason", "(no reason recorded)"), data.get("created", ""), data.get("sha256")))
    return items


def find_item(home: Home, name: str) -> ReviewItem:
    stem = Path(name).stem
    for item in list_review(home):
        if item.name == stem:
            return item
    known = ", ".join(i.name for i in list_review(home)) or "none"
    raise ReviewError(f"no photo named '{name}' is waiting for review in {home.review} (waiting: {known}). "
                      "See `photoguard review list`.")


def release(home: Home, conn: sqlite3.Connection, name: str, channels: Sequence[str] | None = None) -> dict[str, Path]:
    """The manager has looked: put the reviewed image into the outbox of each channel, audited."""
    item = find_item(home, name)
    if not item.image.exists():
        raise ReviewError(f"{item.image} is missing; reject this item with `photoguard review reject {item.name}`.")
    channels = list(channels or home.settings.channels)
    for channel in channels:
        if channel not in home.settings.channels:
            raise ReviewError(f"unknown channel '{channel}'; channels are {', '.join(home.settings.channels)} "
                              f"(set in photoguard.toml).")
    stem = Path(item.source).stem or item.name
    placed: dict[str, Path] = {}
    for channel in channels:
        placed[channel] = publish(item.image, home.outbox_for(channel), stem)
    with conn:
        for channel, dest in placed.items():
            if item.sha256:
                conn.execute("INSERT OR REPLACE INTO outputs (photo_sha256, channel, path, created_at) VALUES (?,?,?,?)",
                             (item.sha256, channel, str(dest.relative_to(home.root)), now_iso()))
                # The review copy shows only the faces shown on every channel: record exactly that.
                rows = conn.execute("SELECT face_idx FROM face_actions WHERE photo_sha256 = ? GROUP BY face_idx "
                                    "HAVING SUM(action != ?) > 0", (item.sha256, SHOWN)).fetchall()
                for row in rows:
                    conn.execute("UPDATE face_actions SET action = 'obscured', reason = COALESCE(reason, '') || "
                                 "' (obscured in the reviewed copy)' WHERE photo_sha256 = ? AND face_idx = ? "
                                 "AND channel = ? AND action = ?", (item.sha256, row["face_idx"], channel, SHOWN))
        if item.sha256:
            conn.execute("UPDATE photos SET outcome = 'released' WHERE sha256 = ?", (item.sha256,))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                     (now_iso(), "released", item.sha256, f"{item.name} -> {', '.join(channels)}"))
    _remove(item)
    return placed


def reject(home: Home, conn: sqlite3.Connection, name: str) -> ReviewItem:
    """The manager has looked and this photo is not to be shared. The original stays archived."""
    item = find_item(home, name)
    with conn:
        if item.sha256:
            conn.execute("UPDATE photos SET outcome = 'rejected' WHERE sha256 = ?", (item.sha256,))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                     (now_iso(), "rejected", item.sha256, item.name))
    _remove(item)
    return item


def _remove(item: ReviewItem) -> None:
    for path in (item.image, item.note):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    _fsync_dir(item.note.parent)
