"""The audit trail: export it for the manager or an inspector, and purge old archived originals."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import stat
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from photoguard.store.db import transaction
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

AUDIT_COLUMNS = ["time", "photo", "sha256", "outcome", "reason", "face", "box", "child", "distance",
                 "identity", "channel", "action", "why", "consent"]

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """The cell as text a spreadsheet shows and never runs: a leading apostrophe before formula-like text.

    File names come from staff (and from anyone who can drop a file), so ``=HYPERLINK(...)`` must stay text.
    """
    text = "" if value is None else str(value)
    # A name read from an old share may carry undecodable bytes: show them as replacement characters.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "'" + text if text.startswith(FORMULA_START) else text


def consent_words(consent: str | None) -> str:
    """The consent snapshot stored with a decision, as a person reads it:
    "face matching yes; facebook yes, instagram no; expires 2027-07-31"."""
    if not consent:
        return ""
    try:
        data = json.loads(consent)
    except ValueError:
        return consent
    if not isinstance(data, dict) or not data:
        return ""
    yes_no = lambda v: "yes" if v else "no"  # noqa: E731
    parts = [f"face matching {yes_no(data.get('face_matching'))}"]
    channels = data.get("channels") or {}
    if channels:
        parts.append(", ".join(f"{channel} {yes_no(v)}" for channel, v in channels.items()))
    parts.append(f"expires {data['expires']}" if data.get("expires") else "no expiry")
    if data.get("problem"):
        parts.append(f"roster problem: {data['problem']}")
    return "; ".join(parts)


def _file_state(row: sqlite3.Row) -> str:
    state = {"collected": "collected", "replaced": "replaced (re-made)", "removed": "removed by PhotoGuard"}
    words = f"{state.get(row['ended'], row['ended'])} {row['ended_at']}" if row["ended"] else "in the outbox"
    if row["posted_at"]:
        words += f"; posted {row['posted_at']} by {row['posted_by']}"
    if row["taken_down_at"]:
        words += f"; taken down {row['taken_down_at']} by {row['taken_down_by']}"
    return words


def export_audit(conn: sqlite3.Connection, out: TextIO, since: date | None = None) -> int:
    """Write the audit as CSV for a spreadsheet: one row per face per channel as decided (one row for a
    photo without faces), one row per file put in an outbox (what it showed, and what became of it), and
    one row per event. UTF-8 with a BOM (so Excel reads names right), formula-like cells neutralised.
    Returns the rows written."""
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    count = 0

    def write(cells: dict[str, object]) -> None:
        nonlocal count
        writer.writerow([spreadsheet_safe(cells.get(column)) for column in AUDIT_COLUMNS])
        count += 1

    where, args = ("WHERE p.finished_at >= ?", [since.isoformat()]) if since else ("", [])
    rows = conn.execute(
        "SELECT p.finished_at, p.source, p.sha256, p.outcome, p.reason, f.idx, f.box, f.child_id, f.distance, "
        "f.reason AS identity, a.channel, a.action, a.reason AS why, a.consent FROM photos p "
        "LEFT JOIN faces f ON f.photo_sha256 = p.sha256 "
        "LEFT JOIN face_actions a ON a.photo_sha256 = f.photo_sha256 AND a.face_idx = f.idx "
        f"{where} ORDER BY p.finished_at, p.sha256, f.idx, a.channel", args)
    for row in rows:
        write({"time": row["finished_at"], "photo": row["source"], "sha256": row["sha256"], "outcome": row["outcome"],
               "reason": row["reason"], "face": None if row["idx"] is None else row["idx"] + 1, "box": row["box"],
               "child": row["child_id"], "distance": row["distance"], "identity": row["identity"],
               "channel": row["channel"], "action": row["action"], "why": row["why"],
               "consent": consent_words(row["consent"])})
    files = conn.execute(
        "SELECT o.*, p.source, t.done_at AS taken_down_at, t.done_by AS taken_down_by FROM outbox_files o "
        "LEFT JOIN photos p ON p.sha256 = o.photo_sha256 LEFT JOIN takedowns t ON t.file_id = o.id "
        f"{'WHERE o.created_at >= ?' if since else ''} ORDER BY o.id", args)
    for row in files:
        shown = json.loads(row["shown"] or "[]")
        visible = [r[0] or f"face {r[1] + 1}" for r in conn.execute(
            f"SELECT child_id, idx FROM faces WHERE photo_sha256 = ? AND idx IN ({','.join('?' * len(shown))}) "
            "ORDER BY idx", (row["photo_sha256"], *shown))] if shown else []
        write({"time": row["created_at"], "photo": row["source"] or row["path"], "sha256": row["photo_sha256"],
               "outcome": "outbox file", "reason": row["made"], "child": ", ".join(visible) or "nobody shown",
               "channel": row["channel"], "action": _file_state(row), "why": f"file {row['id']}: {row['path']}"
               + (f" (last seen as {row['seen_path']})" if row["seen_path"] else "")})
    events = conn.execute("SELECT e.at, e.kind, e.photo_sha256, e.child_id, e.detail, p.source FROM events e "
                          "LEFT JOIN photos p ON p.sha256 = e.photo_sha256 "
                          f"{'WHERE e.at >= ?' if since else ''} ORDER BY e.id", args)
    for e in events:
        write({"time": e["at"], "photo": e["source"], "sha256": e["photo_sha256"],
               "outcome": f"event: {e['kind'].replace('_', ' ')}", "reason": e["detail"], "child": e["child_id"]})
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
    # A photo still waiting for review keeps its original: a release is rendered from it.
    rows = conn.execute("SELECT sha256, source, archive_path, finished_at FROM photos "
                        "WHERE archive_path IS NOT NULL AND state = 'done' AND outcome IS NOT 'review'").fetchall()
    from photoguard.flow.reprocess import interrupted

    # A photo whose reprocess stopped half way is in no outbox any more: its original is its only copy.
    unfinished = {r["sha256"] for r in interrupted(conn)}
    for row in rows:
        finished = datetime.fromisoformat(row["finished_at"]).date()
        if finished >= cutoff or row["sha256"] in unfinished:
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
    from photoguard.flow.review import review_queue

    # ... but not the copy (and note) of a photo still waiting for review: its original was kept above.
    waiting = {home.review / f"{item.name}{suffix}" for item in review_queue(home, conn) for suffix in (".jpg", ".json")}
    leftovers = [*(home.archive / "duplicates").glob("*"), *home.reports.glob("report-*.html"),
                 *home.failed.iterdir(), *(p for p in home.review.iterdir() if p not in waiting)]
    for path in sorted(leftovers):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        # A file in failed/ is the only copy of that photo: it is aged from when it arrived there (moving
        # or linking keeps its mtime, often the day the photo was taken, but sets its ctime).
        arrived = max(st.st_mtime, st.st_ctime) if path.parent == home.failed else st.st_mtime
        if not stat.S_ISDIR(st.st_mode) and date.fromtimestamp(arrived) < cutoff:
            path.unlink()
            purged.append(Purged(path.name, path))
            if path.parent == home.failed and path.suffix != ".txt":
                with transaction(conn):
                    conn.execute("INSERT INTO events (at, kind, detail) VALUES (?,?,?)",
                                 (now_iso(), "purged", f"failed/{path.name}: deleted after {days} days in failed/"))
    return purged
