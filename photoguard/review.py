"""Photos held for review: the manager looks, then releases them to the outbox or rejects them."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .db import transaction
from .home import Home
from .consent import may_show
from .images import fsync_dir, load_image, save_stripped_jpeg, sha256_file, strip_check
from .durable import publish
from .pipeline import SHOWN, now_iso


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


def release(home: Home, conn: sqlite3.Connection, name: str, channels: Sequence[str] | None = None,
            today: date | None = None) -> dict[str, Path]:
    """The manager has looked: put the reviewed image into the outbox of each channel, audited.

    Refused when a child visible in it may not be shown on a channel today (consent withdrawn or
    expired since it was held). A picture the manager edited is published as a stripped copy.
    """
    from .roster import load_consents

    item = find_item(home, name)
    if not item.image.exists():
        raise ReviewError(f"{item.image} is missing; reject this item with `photoguard review reject {item.name}`.")
    if not item.sha256:
        raise ReviewError(f"{item.note} does not say which photo this is; reject it with "
                          f"`photoguard review reject {item.name}` (the original is in {home.archive}).")
    channels = list(channels or home.settings.channels)
    for channel in channels:
        if channel not in home.settings.channels:
            raise ReviewError(f"unknown channel '{channel}'; channels are {', '.join(home.settings.channels)} "
                              f"(set in photoguard.toml).")
    today = today or date.today()
    consents = load_consents(conn)
    # The review copy shows the faces that were shown on every channel when it was decided.
    visible = conn.execute(
        "SELECT f.idx, f.child_id FROM faces f WHERE f.photo_sha256 = ? AND f.child_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM face_actions a WHERE a.photo_sha256 = f.photo_sha256 AND a.face_idx = f.idx AND a.action != ?)",
        (item.sha256, SHOWN)).fetchall()
    for channel in channels:
        for face in visible:
            verdict = may_show(consents.get(face["child_id"]), channel, today)
            if not verdict.allowed:
                raise ReviewError(
                    f"{item.name} shows {face['child_id']} unobscured, but today there is {verdict.reason}. "
                    f"Reject it (`photoguard review reject {item.name}`); the original stays in {home.archive}.")

    source, staging = item.image, None
    if strip_check(item.image):
        # Edited since (an editor adds EXIF, XMP, thumbnails): publish a clean copy instead.
        staging = home.state / "staging" / f"release-{item.name}"
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        source = save_stripped_jpeg(load_image(item.image).rgb, staging, "release")
    try:
        file_hash = sha256_file(source)
        stem = Path(item.source).stem or item.name
        placed = {channel: publish(source, home.outbox_for(channel), stem) for channel in channels}
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    with transaction(conn):
        for channel, dest in placed.items():
            conn.execute("INSERT OR REPLACE INTO outputs (photo_sha256, channel, path, file_sha256, created_at) "
                         "VALUES (?,?,?,?,?)", (item.sha256, channel, str(dest.relative_to(home.root)), file_hash, now_iso()))
            # Record exactly what the reviewed copy shows: faces not shown everywhere were obscured in it.
            rows = conn.execute("SELECT face_idx FROM face_actions WHERE photo_sha256 = ? GROUP BY face_idx "
                                "HAVING SUM(action != ?) > 0", (item.sha256, SHOWN)).fetchall()
            for row in rows:
                conn.execute("UPDATE face_actions SET action = 'obscured', reason = COALESCE(reason, '') || "
                             "' (obscured in the reviewed copy)' WHERE photo_sha256 = ? AND face_idx = ? "
                             "AND channel = ? AND action = ?", (item.sha256, row["face_idx"], channel, SHOWN))
        conn.execute("UPDATE photos SET outcome = 'released' WHERE sha256 = ?", (item.sha256,))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                     (now_iso(), "released", item.sha256, f"{item.name} -> {', '.join(channels)}"))
    _remove(item)
    return placed


def reject(home: Home, conn: sqlite3.Connection, name: str) -> ReviewItem:
    """The manager has looked and this photo is not to be shared. The original stays archived."""
    item = find_item(home, name)
    with transaction(conn):
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
    fsync_dir(item.note.parent)
