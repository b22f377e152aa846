"""The audit trail: export it for the manager or an inspector, and purge old archived originals."""

from __future__ import annotations

import csv
import os
import sqlite3
import stat
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from .db import transaction
from .home import Home
from .pipeline import now_iso

AUDIT_COLUMNS = ["time", "photo", "sha256", "outcome", "reason", "face", "box", "child", "distance",
                 "identity", "channel", "action", "why", "consent"]


def export_audit(conn: sqlite3.Connection, out: TextIO, since: date | None = None) -> int:
    """Write one CSV row per face per channel (one row for a photo without faces). Returns rows written."""
    writer = csv.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    where, args = ("WHERE p.finished_at >= ?", [since.isoformat()]) if since else ("", [])
    rows = conn.execute(
        "SELECT p.finished_at, p.source, p.sha256, p.outcome, p.reason, f.idx, f.box, f.child_id, f.distance, "
        "f.reason AS identity, a.channel, a.action, a.reason AS why, a.consent FROM photos p "
        "LEFT JOIN faces f ON f.photo_sha256 = p.sha256 "
        "LEFT JOIN face_actions a ON a.photo_sha256 = f.photo_sha256 AND a.face_idx = f.idx "
        f"{where} ORDER BY p.finished_at, p.sha256, f.idx, a.channel", args)
    count = 0
    for row in rows:
        writer.writerow([row[k] if row[k] is not None else "" for k in row.keys()])
        count += 1
    events = conn.execute(f"SELECT at, kind, photo_sha256, child_id, detail FROM events "
                          f"{'WHERE at >= ?' if since else ''} ORDER BY id", args)
    for e in events:
        writer.writerow([e["at"], "", e["photo_sha256"] or "", f"event:{e['kind']}", e["detail"] or "",
                         "", "", e["child_id"] or "", "", "", "", "", "", ""])
        count += 1
    return count


@dataclass(frozen=True)
class Purged:
    source: str
    path: Path


def purge_archive(home: Home, conn: sqlite3.Connection, retention_days: int | None = None,
                  today: date | None = None) -> list[Purged]:
    """Delete archived originals older than the retention period (outbox images are not touched)."""
    days = home.settings.archive_retention_days if retention_days is None else retention_days
    cutoff = (today or date.today()) - timedelta(days=days)
    purged = []
    rows = conn.execute("SELECT sha256, source, archive_path, finished_at FROM photos "
                        "WHERE archive_path IS NOT NULL AND state = 'done'").fetchall()
    for row in rows:
        finished = datetime.fromisoformat(row["finished_at"]).date()
        if finished >= cutoff:
            continue
        path = home.root / row["archive_path"]
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        with transaction(conn):
            conn.execute("UPDATE photos SET archive_path = NULL WHERE sha256 = ?", (row["sha256"],))
            conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                         (now_iso(), "purged", row["sha256"], f"{row['source']}: archived {row['finished_at'][:10]}"))
        purged.append(Purged(row["source"], path))
    # Second copies of processed photos, and reports (they show children unobscured), go with the
    # originals they belong to; so do files in failed/ (originals no one fixed) and in review/ (once the
    # original is gone a review copy can no longer be released). Links and pipes in failed/ go as
    # themselves; their targets are never touched.
    leftovers = [*(home.archive / "duplicates").glob("*"), *home.reports.glob("report-*.html"),
                 *home.failed.iterdir(), *home.review.iterdir()]
    for path in sorted(leftovers):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode) and date.fromtimestamp(st.st_mtime) < cutoff:
            path.unlink()
            purged.append(Purged(path.name, path))
    return purged
