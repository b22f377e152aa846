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
its old outbox copies are taken out: every photo stays in exactly one place. The old copies leave the
outbox before the faces on file are rewritten; a reprocess interrupted in between leaves the photo
archived (never lost, never shown as decided before) and the next ``reprocess`` finishes it.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from photoguard.flow.outbox import COLLECTED, REPLACED, _event, _hash_if_there, sweep
from photoguard.flow.pipeline import Processor
from photoguard.flow.recheck import recheck_outbox
from photoguard.flow.results import _DISK_FULL, DiskFull
from photoguard.photos.durable import display_name
from photoguard.photos.intake import Snapshot, Source
from photoguard.photos.save import fsync_dir
from photoguard.rules.decide import SHOWN
from photoguard.store.db import transaction
from photoguard.store.roster import roster_version
from photoguard.store.localtime import now_iso

REPROCESSED = "reprocessed"
STARTED = "reprocess_started"


class ReprocessError(Exception):
    """What to reprocess could not be worked out; the message says what to do."""


@dataclass(frozen=True)
class Redo:
    source: str          # the photo's name as dropped
    sha256: str
    outcome: str         # 'cleared' / 'review' (done again), 'skipped' (left as it was), 'failed' (left as it was)
    detail: str
    # Why it was left as it was: 'review' (waiting there), 'decided' (released or rejected by a person),
    # 'purged', 'posted', 'collected', 'changed' (someone edited its outbox copy); '' when done again.
    why: str = ""
    # Who each channel's copy in the outbox showed before and after (child ids), for the pages' words.
    before: tuple[tuple[str, tuple[str, ...]], ...] = ()
    after: tuple[tuple[str, tuple[str, ...]], ...] = ()

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
        # Times are kept to the second: a photo finished in the second the references arrived counts as
        # before them (doing a photo again costs time, never safety).
        for r in rows:
            if r["sha256"] in seen or (r["sha256"] in unknown and (first is None or (r["finished_at"] or "") <= first)):
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
    chosen = {row["sha256"]: row for row in photos}
    for row in interrupted(processor.conn):
        chosen.setdefault(row["sha256"], row)   # a reprocess that did not finish is finished first
    return [_one(processor, sha, today) for sha in chosen]


def redo_photo(processor: Processor, sha: str, today: date | None = None) -> Redo:
    """Process one photo again (the caller holds the home's lock); the Check again requests of the pages."""
    return _one(processor, sha, today or date.today())


def _shown_in_outbox(conn: sqlite3.Connection, sha: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per channel, the children the photo's copy in the outbox shows (as made, from its record): the newest
    copy, also one taken out by a reprocess that did not finish (what the manager last had to post)."""
    faces = {r["idx"]: r["child_id"] for r in conn.execute("SELECT idx, child_id FROM faces WHERE photo_sha256 = ?",
                                                            (sha,))}
    shown = []
    for r in conn.execute("SELECT channel, shown, ended FROM outbox_files WHERE id IN (SELECT MAX(id) FROM "
                          "outbox_files WHERE photo_sha256 = ? GROUP BY channel) ORDER BY channel", (sha,)):
        if r["ended"] in (None, REPLACED):
            who = {faces.get(i) for i in json.loads(r["shown"] or "[]")} - {None}
            shown.append((r["channel"], tuple(sorted(who))))
    return tuple(shown)


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


def _one(processor: Processor, sha: str, today: date) -> Redo:
    conn, home = processor.conn, processor.home
    # Where our copies are now, looked at just before this photo (each takes seconds): one that left
    # the outbox meanwhile is recorded collected, and the photo is then left as it is.
    where = sweep(home, conn)
    row = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    name = display_name(row["source"])
    if row["outcome"] == "review":
        return Redo(name, sha, "skipped", "is waiting in review: decide on it there (`photoguard review show "
                    f"{Path(name).stem}`); it is not processed again", "review")
    if row["outcome"] in ("released", "rejected"):
        return Redo(name, sha, "skipped", f"was {row['outcome']} at review by a person; it is not processed again",
                    "decided")
    archived = home.root / row["archive_path"] if row["archive_path"] else None
    if archived is None or not archived.is_file():
        return Redo(name, sha, "skipped", "its original is no longer archived (deleted after "
                    f"{home.settings.archive_retention_days} days), so it cannot be processed again", "purged")
    out = conn.execute("SELECT channel, path, seen_path, ended, posted_at FROM outbox_files WHERE photo_sha256 = ? "
                       "AND (ended = ? OR posted_at IS NOT NULL)", (sha, COLLECTED)).fetchall()
    if out:
        where = ", ".join(sorted({f"{r['channel']} ({'posted' if r['posted_at'] else 'collected'})" for r in out}))
        return Redo(name, sha, "skipped", f"a copy has already left the outbox — {where} — so it is not processed "
                    "again (a copy out in the world cannot be replaced; `photoguard takedown` lists any that show "
                    "a child whose consent has gone)", "posted" if any(r["posted_at"] for r in out) else "collected")
    before = _shown_words(conn, sha, processor.settings.channels)
    shown_before = _shown_in_outbox(conn, sha)
    started = time.monotonic()

    # 1. The old copies leave the outbox first, with a 'reprocess_started' event: the faces on file are
    # then never rewritten while a copy that relies on them is still in the outbox. Recorded (committed)
    # before anything is deleted: a run killed in between is listed by ``interrupted`` and the next run
    # deletes what is left. Only our own bytes are deleted, and a copy taken meanwhile stops the photo.
    live = conn.execute("SELECT * FROM outbox_files WHERE photo_sha256 = ? AND ended IS NULL", (sha,)).fetchall()
    paths = {f["id"]: where.get(f["id"]) or home.root / (f["seen_path"] or f["path"]) for f in live}
    held = {f["id"]: _hash_if_there(paths[f["id"]]) for f in live}
    taken = [f for f in live if held[f["id"]] is None]
    if taken:
        # Taken in the moment since the look above: out in the world, so it stays on the take-down
        # list's watch, and the photo is left as it is, like any photo with a collected copy.
        with transaction(conn):
            for f in taken:
                conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                             (COLLECTED, now_iso(), f["id"]))
        return Redo(name, sha, "skipped", "a copy was taken from the outbox just now — "
                    f"{', '.join(sorted(f['channel'] for f in taken))} — so it is not processed again", "collected")
    changed = [f for f in live if f["file_sha256"] and held[f["id"]] != f["file_sha256"]]
    if changed:
        files = ", ".join(sorted(f"{f['channel']}/{paths[f['id']].name}" for f in changed))
        return Redo(name, sha, "skipped", f"its copy in the outbox was changed by someone ({files}); PhotoGuard "
                    "does not delete a file it did not make. Move that file out of the outbox (keep it if you "
                    f"want it), then run `photoguard reprocess {name}` again", "changed")
    replaced = [f"{f['channel']}/{paths[f['id']].name}" for f in live]
    with transaction(conn):
        for f in live:
            conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                         (REPLACED, now_iso(), f["id"]))
        conn.execute("UPDATE outputs SET removed_at = ? WHERE photo_sha256 = ? AND removed_at IS NULL", (now_iso(), sha))
        _event(conn, STARTED, sha, f"{name}: taken out of the outbox to be made again: {', '.join(replaced) or 'none'}")
    _delete_replaced(conn, home, sha)

    # 2. Decided again by the pipeline from the archived original, linked (not copied) into staging as the
    # snapshot: archiving it again afterwards finds the same file already in place.
    staging = processor.staging / sha
    staging.mkdir(mode=0o700, exist_ok=True)
    snapshot = staging / "original"
    if os.path.lexists(snapshot):
        snapshot.unlink()
    os.link(archived, snapshot)
    st = os.stat(archived)
    snap = Snapshot(snapshot, sha, Source(str(archived), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    # The drop's folder (inbox/Room 2/Sports day -> outbox/<channel>/Room 2/Sports day) and name are
    # where the photo came from, not the archive it is read from now.
    dropped = (json.loads(row["plan"] or "{}").get("folder") or ".", row["source_path"] or name)
    # Decided with today's consents: another process (the Children page, the watcher) may have changed one
    # since this processor read them, perhaps while the photos before this one were made again.
    if roster_version(conn) != processor.roster_version:
        processor.reload_roster()
    decided_with = processor.roster_version
    try:
        prepared = processor._decide_and_stage(snap, name, sha, today, dropped)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        # Every further photo would lose its outbox copies the same way: stop here (this one is finished
        # by the next run, its original still archived).
        processor._clear_staging(sha)
        raise DiskFull(errno.ENOSPC, f"no space left on the disk of {home.root} while making {name} again; "
                       "free some space and run `photoguard reprocess` again (it finishes this photo first)") from exc
    except Exception as exc:  # noqa: BLE001 — the original stays archived; the next reprocess tries again
        prepared = f"{type(exc).__name__}: {exc}"
    if isinstance(prepared, str):
        processor._clear_staging(sha)
        return Redo(name, sha, "failed", f"could not be made again ({prepared}); its outbox copies were taken out "
                    f"and the original stays archived — run `photoguard reprocess {name}` again", "failed", shown_before)

    # 3. Published like any photo: the outbox (or review), the audit, the journal.
    try:
        result = processor._finish_publishing(archived, sha, started, prepared)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise DiskFull(errno.ENOSPC, f"no space left on the disk of {home.root} while publishing {name}; free "
                       "some space and run PhotoGuard again (it finishes publishing this photo first)") from exc
    if roster_version(conn) != decided_with:
        # A consent changed while this photo was being made: its own outbox pass skipped the copies this
        # photo had taken out, so the copies just published are checked against it now.
        processor.reload_roster()
        recheck_outbox(processor, today)
    after = _shown_words(conn, sha, processor.settings.channels)
    if result.status == "review":
        detail = f"now held for review ({result.reason}); its outbox copies were taken out"
    else:
        detail = f"processed again with today's roster and settings — now shows {after}"
    with transaction(conn):
        _event(conn, REPROCESSED, sha, f"{name}: before: {before}; after: {after}; "
               f"replaced {', '.join(replaced) or 'no outbox copy'}")
    return Redo(name, sha, result.status, detail, "", shown_before, _shown_in_outbox(conn, sha))


def _delete_replaced(conn: sqlite3.Connection, home, sha: str) -> None:
    """Delete every copy of the photo recorded as replaced that is still in the outbox with the very bytes
    PhotoGuard made (a file changed or put there by someone else is left)."""
    for f in conn.execute("SELECT * FROM outbox_files WHERE photo_sha256 = ? AND ended = ?", (sha, REPLACED)):
        path = home.root / (f["seen_path"] or f["path"])
        if f["file_sha256"] and _hash_if_there(path) == f["file_sha256"]:
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)


def interrupted(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Photos whose reprocess took their copies out of the outbox but did not finish (killed, disk full)."""
    return conn.execute(
        "SELECT p.* FROM photos p WHERE p.state = 'done' AND p.outcome = 'cleared' AND p.archive_path IS NOT NULL "
        "AND (SELECT MAX(id) FROM events WHERE photo_sha256 = p.sha256 AND kind = ?) > "
        "COALESCE((SELECT MAX(id) FROM events WHERE photo_sha256 = p.sha256 AND kind = ?), 0) "
        "ORDER BY p.finished_at", (STARTED, REPROCESSED)).fetchall()


def to_json(redo: Redo) -> str:
    return json.dumps({"photo": redo.source, "sha256": redo.sha256, "outcome": redo.outcome, "detail": redo.detail})
