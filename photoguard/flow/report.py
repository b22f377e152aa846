"""The manager's report: one self-contained HTML page for a day (or since a day).

Totals first, then the photos waiting for review, the ones that failed, and every cleared photo: what
went to each channel beside a small copy of the original with every face boxed and labelled (who, or
why they were obscured). The page embeds everything (images as data: URIs, inline CSS, no scripts, a
Content-Security-Policy that forbids any network request), so it can be opened offline anywhere.

It shows children unobscured, so it is written owner-only (0600) under ``.photoguard/reports/``
and never near the outbox. Every string from the database is escaped: file names come from staff.
"""

from __future__ import annotations

import html
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date

from photoguard.flow.outbox import TakedownItem, takedown_list
from photoguard.store.home import Home

THUMB_PX = 320
OUTPUT_THUMB_PX = 240
SHOWN_COLOUR = (22, 140, 60)
MIXED_COLOUR = (205, 120, 0)
OBSCURED_COLOUR = (200, 30, 40)

OUTCOME_WORDS = {
    "cleared": "Cleared",
    "released": "Released after review",
    "review": "Waiting for review",
    "rejected": "Rejected at review",
    "failed": "Failed",
}
EVENT_WORDS = {
    "resume_failed": "Could not finish a photo after an interruption (it went to failed/)",
    "templates_outdated": "Reference photos checked again for the new face model",
    "duplicate": "Skipped a copy of a photo already done",
    "released": "Released from review",
    "rejected": "Rejected at review",
    "released_undone": "Release taken back: back in review",
    "rejected_undone": "Rejection taken back: back in review",
    "second_look": "A face the first look missed, found before release and obscured",
    "decision_replaced": "Decided again at release (what the first look had decided)",
    "rerendered": "Re-made with a face obscured after a consent change",
    "removed": "Removed from the outbox after a consent change",
    "collected": "Collected from the outbox",
    "posted": "Marked posted",
    "taken_down": "Marked taken down",
    "purged": "Original deleted (end of archive period)",
    "housekeeping": "Daily clean-up by the watcher",
    "reprocessed": "Processed again with the roster and settings of the day",
    "reprocess_started": "Taken out of the outbox to be processed again",
    "templates_erased": "Face templates erased",
}
HIDDEN_EVENTS = {"processed", "roster_synced"}   # processed: shown as photos; roster_synced: bookkeeping


@dataclass
class ReportFace:
    idx: int
    box: tuple[int, int, int, int]          # oriented pixels of the original
    child_id: str | None
    name: str | None                        # children.name, else the id
    identity: str                           # faces.reason: 'matched', 'too small to identify', ...
    actions: dict[str, tuple[str, str]] = field(default_factory=dict)   # channel -> (shown/obscured, reason)

    @property
    def label(self) -> str:
        if self.child_id:
            return self.name or self.child_id
        if self.identity == "too small to identify":
            return "too small to identify"
        return "unknown"

    @property
    def colour(self) -> tuple[int, int, int]:
        shown = [a == "shown" for a, _ in self.actions.values()]
        if shown and all(shown):
            return SHOWN_COLOUR
        return MIXED_COLOUR if any(shown) else OBSCURED_COLOUR


@dataclass
class ReportOutput:
    channel: str
    path: str               # relative to the home
    removed_at: str | None
    file_sha256: str | None = None   # channels with the same picture share one image in the report


@dataclass
class ReportPhoto:
    sha256: str
    source: str
    outcome: str
    reason: str | None
    finished_at: str
    archive_path: str | None
    width: int | None
    height: int | None
    review_path: str | None
    faces: list[ReportFace] = field(default_factory=list)
    outputs: dict[str, ReportOutput] = field(default_factory=dict)


@dataclass
class ReportFailure:
    source: str
    reason: str
    at: str


@dataclass
class ReportEvent:
    at: str
    kind: str
    detail: str


@dataclass
class ReportData:
    since: date
    until: date | None
    channels: tuple[str, ...]
    photos: list[ReportPhoto]
    failed: list[ReportFailure]
    events: list[ReportEvent]
    in_progress: int
    takedowns: list[TakedownItem] = field(default_factory=list)   # every day's, not only this period's

    def count(self, *outcomes: str) -> int:
        return sum(p.outcome in outcomes for p in self.photos)

    def face_counts(self, channel: str) -> tuple[int, int]:
        """(shown, obscured) faces on one channel."""
        actions = [f.actions.get(channel, ("obscured", ""))[0] for p in self.photos for f in p.faces]
        return sum(a == "shown" for a in actions), sum(a != "shown" for a in actions)


# --- reading the database ----------------------------------------------------------------------


def _in_range(column: str, since: date, until: date | None) -> tuple[str, list[str]]:
    # Times are local ISO strings, so the first 10 characters are the local day.
    sql = f"substr({column}, 1, 10) >= ?"
    args = [since.isoformat()]
    if until is not None:
        sql += f" AND substr({column}, 1, 10) <= ?"
        args.append(until.isoformat())
    return sql, args


def gather_report(home: Home, conn: sqlite3.Connection, since: date, until: date | None = None) -> ReportData:
    """Everything the report shows, from the database (no images read yet)."""
    names = {r["id"]: r["name"] for r in conn.execute("SELECT id, name FROM children")}
    where, args = _in_range("finished_at", since, until)
    photos: list[ReportPhoto] = []
    for row in conn.execute(f"SELECT * FROM photos WHERE state = 'done' AND outcome != 'failed' AND {where} ORDER BY finished_at, source", args):
        review_path = None
        try:
            plan = json.loads(row["plan"]) if "plan" in row.keys() and row["plan"] else {}
            review_path = plan.get("published", {}).get("review")
        except (ValueError, AttributeError):
            pass
        photo = ReportPhoto(row["sha256"], row["source"], row["outcome"] or "failed", row["reason"], row["finished_at"],
                            row["archive_path"], row["width"], row["height"], review_path)
        for f in conn.execute("SELECT * FROM faces WHERE photo_sha256 = ? ORDER BY idx", (photo.sha256,)):
            try:
                box = tuple(int(v) for v in json.loads(f["box"]))[:4]
            except (ValueError, TypeError):
                box = (0, 0, 0, 0)
            child = f["child_id"]
            photo.faces.append(ReportFace(f["idx"], box, child, (names.get(child) or child) if child else None,
                                          f["reason"] or ""))
        by_idx = {face.idx: face for face in photo.faces}
        for a in conn.execute("SELECT * FROM face_actions WHERE photo_sha256 = ?", (photo.sha256,)):
            if a["face_idx"] in by_idx:
                by_idx[a["face_idx"]].actions[a["channel"]] = (a["action"], a["reason"])
        for o in conn.execute("SELECT * FROM outputs WHERE photo_sha256 = ?", (photo.sha256,)):
            photo.outputs[o["channel"]] = ReportOutput(o["channel"], o["path"], o["removed_at"], o["file_sha256"])
        # A file re-made after a consent change shows fewer faces than decided at processing: say what
        # the outbox copy shows now (the decision itself stays in the audit as it was).
        for f in conn.execute("SELECT channel, shown, made, seen_path, ended FROM outbox_files WHERE id IN "
                              "(SELECT MAX(id) FROM outbox_files WHERE photo_sha256 = ? GROUP BY channel)",
                              (photo.sha256,)):
            out = photo.outputs.get(f["channel"])
            if out is not None and f["seen_path"] and f["ended"] is None:
                out.path = f["seen_path"]   # renamed in the outbox: still there
            shown = set(json.loads(f["shown"] or "[]"))
            for face in photo.faces:
                if face.actions.get(f["channel"], ("", ""))[0] == "shown" and face.idx not in shown:
                    face.actions[f["channel"]] = ("obscured", f["made"])
        photos.append(photo)

    # Every failure has its event ("failed: <name>: <reason>"), also when the same bytes failed twice
    # (the journal keeps one row per content): list failures from the events only.
    failed: list[ReportFailure] = []
    photos = [p for p in photos if p.outcome != "failed"]
    ewhere, eargs = _in_range("at", since, until)
    events: list[ReportEvent] = []
    for e in conn.execute(f"SELECT * FROM events WHERE {ewhere} ORDER BY id", eargs):
        detail = e["detail"] or ""
        if e["kind"] == "processed" and detail.startswith("failed: "):
            name, _, reason = detail[len("failed: "):].partition(": ")
            failed.append(ReportFailure(name, reason or "(no reason recorded)", e["at"]))
        if e["kind"] in HIDDEN_EVENTS:
            continue
        events.append(ReportEvent(e["at"], e["kind"], detail))
    rwhere, rargs = _in_range("received_at", since, until)
    in_progress = conn.execute(f"SELECT COUNT(*) FROM photos WHERE state != 'done' AND {rwhere}", rargs).fetchone()[0]
    return ReportData(since, until, tuple(home.settings.channels), photos, failed, events, in_progress,
                      takedown_list(conn, home=home))


# --- images ------------------------------------------------------------------------------------


# --- HTML --------------------------------------------------------------------------------------


# --- writing -----------------------------------------------------------------------------------


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)
