"""``photoguard reprocess``: run archived originals through today's roster and settings again.

For a child enrolled late, a consent given since, a changed threshold. A photo is decided again by the
pipeline itself (``Processor._decide_and_stage`` / ``_finish_publishing``), from its archived original:

- its copies still in the outbox are replaced by the new ones (history is appended: the old
  ``outbox_files`` rows end as "replaced", a ``reprocessed`` event says what each channel showed before);
- a photo with a copy already collected or posted is not processed again: the copy out in the world
  cannot be replaced, and the faces it shows stay on record for the take-down list;
- a photo waiting in review, or released or rejected there by a person, is left to the review;
- a photo whose original has been purged cannot be processed again.

If the new decision needs a person (a face only the second look found), the photo goes to review and
its old outbox copies are taken out: every photo stays in exactly one place.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .db import transaction
from .durable import display_name
from .images import fsync_dir
from .intake import Snapshot, Source
from .outbox import COLLECTED, REPLACED, _current, sweep
from .pipeline import SHOWN, Processor, now_iso

REPROCESSED = "reprocessed"


class ReprocessError(Exception):
    """What to reprocess could not be worked out; the message says what to do."""


@dataclass(frozen=True)
class Redo:
    source: str          # the photo's name as dropped
    sha256: str
    outcome: str         # 'cleared' / 'review' (done again), 'skipped' (left as it was), 'failed' (left as it was)
    detail: str

    def describe(self) -> str:
        return f"{self.source}: {self.detail}"


def select_photos(conn: sqlite3.Connection, names: Sequence[str] = (), since: date | None = None,
                  child: str | None = None, before_enrolment: bool = False) -> list[sqlite3.Row]:
    """The processed photos asked for (every one that was not a failure), oldest first.

    ``names``: the names they were dropped with (with or without the extension); ``since``: processed
    on or after that day; ``child``: photos the child was recognised in, and photos with a face nobody was
    recognised in that were processed before the child's reference photos were on file;
    ``before_enrolment``: photos processed while no child was enrolled. Raises ReprocessError for a name
    that matches nothing."""
    rows = conn.execute("SELECT * FROM photos WHERE state = 'done' AND outcome IS NOT 'failed' "
                        "ORDER BY finished_at, rowid").fetchall()
    chosen: dict[str, sqlite3.Row] = {}
    for name in names:
        stem = Path(name).stem
        found = [r for r in rows if r["source"] == name or Path(r["source"]).stem == stem]
        if not found:
            raise ReprocessError(f"no processed photo is called {name}. The names are the ones the photos had "
                                 "in the inbox; see them with `photoguard report` or `photoguard status`.")
        chosen.update((r["sha256"], r) for r in found)
    if since is not None:
        chosen.update((r["sha256"], r) for r in rows if (r["finished_at"] or "")[:10] >= since.isoformat())
    if before_enrolment:
        chosen.update((r["sha256"], r) for r in rows if r["templates_used"] == 0)
    if child is not None:
        if conn.execute("SELECT 1 FROM children WHERE id = ?", (child,)).fetchone() is None:
            raise ReprocessError(f"there is no child with the id {child} on the roster; see `photoguard children`.")
        first = conn.execute("SELECT MIN(created_at) FROM templates WHERE child_id = ?", (child,)).fetchone()[0]
        seen = {r[0] for r in conn.execute("SELECT DISTINCT photo_sha256 FROM faces WHERE child_id = ?", (child,))}
        unknown = {r[0] for r in conn.execute("SELECT DISTINCT photo_sha256 FROM faces WHERE child_id IS NULL")}
        for r in rows:
            if r["sha256"] in seen or (r["sha256"] in unknown and (first is None or (r["finished_at"] or "") < first)):
                chosen[r["sha256"]] = r
    return sorted(chosen.values(), key=lambda r: (r["finished_at"] or "", r["sha256"]))


def before_enrolment_count(conn: sqlite3.Connection) -> int:
    """Photos cleared while no child was enrolled, still archived, now that children are: for ``status``."""
    if not conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0]:
        return 0
    return conn.execute("SELECT COUNT(*) FROM photos WHERE state = 'done' AND outcome = 'cleared' "
                        "AND templates_used = 0 AND archive_path IS NOT NULL").fetchone()[0]


def reprocess(processor: Processor, photos: Sequence[sqlite3.Row], today: date | None = None) -> list[Redo]:
    """Process each photo again (the caller holds the home's lock and has synced the roster)."""
    today = today or date.today()
    # Where our copies are now; one that left the outbox since the last look is recorded collected.
    where = sweep(processor.home, processor.conn)
    return [_one(processor, row["sha256"], today, where) for row in photos]


def _shown_words(conn: sqlite3.Connection, sha: str, channels: Sequence[str]) -> str:
    """'facebook: ada, grace; instagram: nobody' — who each channel showed, from the decision on file."""
    parts = []
    for channel in channels:
        who = [r[0] or f"face {r[1] + 1}" for r in conn.execute(
            "SELECT f.child_id, f.idx FROM face_actions a JOIN faces f ON f.photo_sha256 = a.photo_sha256 "
            "AND f.idx = a.face_idx WHERE a.photo_sha256 = ? AND a.channel = ? AND a.action = ? ORDER BY f.idx",
            (sha, channel, SHOWN))]
        parts.append(f"{channel}: {', '.join(who) or 'nobody'}")
    return "; ".join(parts)


def _one(processor: Processor, sha: str, today: date, where: dict[int, Path]) -> Redo:
    conn, home = processor.conn, processor.home
    row = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    name = display_name(row["source"])
    if row["outcome"] == "review":
        return Redo(name, sha, "skipped", "is waiting in review: decide on it there (`photoguard review show "
                    f"{Path(name).stem}`); it is not processed again")
    if row["outcome"] in ("released", "rejected"):
        return Redo(name, sha, "skipped", f"was {row['outcome']} at review by a person; it is not processed again")
    archived = home.root / row["archive_path"] if row["archive_path"] else None
    if archived is None or not archived.is_file():
        return Redo(name, sha, "skipped", "its original is no longer archived (deleted after "
                    f"{home.settings.archive_retention_days} days), so it cannot be processed again")
    out = conn.execute("SELECT channel, path, seen_path, ended, posted_at FROM outbox_files WHERE photo_sha256 = ? "
                       "AND (ended = ? OR posted_at IS NOT NULL)", (sha, COLLECTED)).fetchall()
    if out:
        where = ", ".join(sorted({f"{r['channel']} ({'posted' if r['posted_at'] else 'collected'})" for r in out}))
        return Redo(name, sha, "skipped", f"a copy has already left the outbox — {where} — so it is not processed "
                    "again (a copy out in the world cannot be replaced; `photoguard takedown` lists any that show "
                    "a child whose consent has gone)")
    before = _shown_words(conn, sha, processor.settings.channels)
    started = time.monotonic()

    # The archived original, linked (not copied) into staging as the snapshot the pipeline decides on:
    # archiving it again afterwards finds the same file already in place.
    staging = processor.staging / sha
    staging.mkdir(mode=0o700, exist_ok=True)
    snapshot = staging / "original"
    if os.path.lexists(snapshot):
        snapshot.unlink()
    os.link(archived, snapshot)
    st = os.stat(archived)
    snap = Snapshot(snapshot, sha, Source(str(archived), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    try:
        prepared = processor._decide_and_stage(snap, name, sha, today)
    except Exception as exc:  # noqa: BLE001 — nothing was changed: the photo stays as it was
        processor._clear_staging(sha)
        return Redo(name, sha, "failed", f"could not be processed again ({type(exc).__name__}: {exc}); "
                    "it was left as it was")
    if isinstance(prepared, str):
        processor._clear_staging(sha)
        return Redo(name, sha, "failed", f"could not be processed again ({prepared}); it was left as it was")

    # Decided and staged ('publishing'): take the old copies out of the outbox, then publish the new ones.
    with transaction(conn):
        replaced = []
        for file in _current(conn):
            if file["photo_sha256"] != sha:
                continue
            path = where.get(file["id"]) or home.root / (file["seen_path"] or file["path"])
            try:
                path.unlink()
                fsync_dir(path.parent)
            except FileNotFoundError:
                pass
            conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                         (REPLACED, now_iso(), file["id"]))
            replaced.append(f"{file['channel']}/{path.name}")
        conn.execute("UPDATE outputs SET removed_at = ? WHERE photo_sha256 = ? AND removed_at IS NULL", (now_iso(), sha))
    result = processor._finish_publishing(archived, sha, started, prepared)
    after = _shown_words(conn, sha, processor.settings.channels)
    if result.status == "review":
        detail = f"now held for review ({result.reason}); its outbox copies were taken out"
    else:
        detail = f"processed again with today's roster and settings — now shows {after}"
    with transaction(conn):
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                     (now_iso(), REPROCESSED, sha, f"{name}: before: {before}; after: {after}; "
                      f"replaced {', '.join(replaced) or 'no outbox copy'}"))
    return Redo(name, sha, result.status, detail)


def to_json(redo: Redo) -> str:
    return json.dumps({"photo": redo.source, "sha256": redo.sha256, "outcome": redo.outcome, "detail": redo.detail})
