"""Photos that are not published: failed (moved to failed/ with a note), refused, duplicates, given up and
abandoned; nothing is lost on the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

from photoguard.flow.results import PRIVATE_DIR, PhotoResult
from photoguard.photos.durable import display_name, drop_folder, move_durably, same_entry, write_note
from photoguard.photos.intake import Snapshot, Source, is_inside, release_source
from photoguard.store.db import transaction
from photoguard.store.localtime import now_iso, when_words


class SetAside:
    """How the Processor sets a photo aside."""

    def _fail(self, entry: Path, name: str, sha: str | None, reason: str, started: float,
              source: Source | None = None) -> PhotoResult:
        """Move ``entry`` (our snapshot, or an inbox entry that could not be snapshotted) to failed/ with
        a note beside it, then let go of the dropped file."""
        came_from = drop_folder(source.path if source is not None else entry, self.home.inbox)

        def note(dest: Path) -> None:
            where = f"It was dropped in inbox/{came_from.as_posix()}/. " if came_from.parts else ""
            write_note(dest.with_name(dest.name + ".txt"),
                       f"{name} could not be processed: {reason}\n"
                       f"{where}It was not shared. Fix or re-export the photo and drop it into the inbox again.\n")

        dest = move_durably(entry, self.home.failed, before_unlink=note, name=name, companions=(".txt",))
        if source is not None:
            release_source(source, self.home.inbox)
        if sha is not None:
            self._clear_staging(sha)
        seconds = time.monotonic() - started
        with transaction(self.conn):
            self._event("processed", sha, detail=f"failed: {name}: {reason}")
            if sha is not None:
                # Kept for the report and audit, but not as "done" content: the same bytes dropped again
                # are tried again (a failure may have been passing).
                self.conn.execute(
                    "UPDATE photos SET state = 'done', outcome = 'failed', reason = ?, finished_at = ?, seconds = ?, "
                    "archive_path = NULL, plan = ? WHERE sha256 = ?",
                    (reason, now_iso(), seconds, json.dumps({"failed": str(dest.relative_to(self.home.root))}), sha))
        return PhotoResult(name, "failed", sha, {"failed": str(dest)}, [], reason, seconds)

    def _refuse(self, path: Path, reason: str, started: float, sha: str | None = None) -> PhotoResult:
        """A file that cannot even be snapshotted (a link, a FIFO, too large, unreadable). In the inbox the
        entry itself goes to failed/ (a link as the link: its target is never touched); anywhere else it
        is not ours and stays where it is."""
        name = display_name(path.name)
        if is_inside(path, self.home.inbox):
            return self._fail(path, name, sha, reason, started)
        with transaction(self.conn):
            self._event("processed", sha, detail=f"failed: {name}: {reason}")
        return PhotoResult(name, "failed", sha, {}, [], f"{reason} (left where it is)", time.monotonic() - started)

    def _duplicate(self, snap: Snapshot, name: str, row: sqlite3.Row, started: float) -> PhotoResult:
        sha = snap.sha256
        folder = self.home.archive / "duplicates"
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        os.chmod(folder, PRIVATE_DIR)

        def note(dest: Path) -> None:
            write_note(dest.with_name(dest.name + ".txt"),
                       f"{name} has the same content as {row['source']}, processed {when_words(row['finished_at'])} "
                       f"({row['outcome']}); this copy was not processed again.\n")

        moved = move_durably(snap.path, folder, before_unlink=note, name=name, companions=(".txt",))
        release_source(snap.source, self.home.inbox)
        self._clear_staging(sha)
        with transaction(self.conn):
            self._event("duplicate", sha, detail=f"{name} = {row['source']}")
        return PhotoResult(name, "duplicate", sha, {"archive": str(moved)}, [],
                           f"same photo as {row['source']} (already processed)", time.monotonic() - started)

    def give_up(self, path: Path, sha: str, reason: str) -> PhotoResult | None:
        """Send a file that breaks processing every time to failed/. None (and the file left where it
        is) when outputs for these bytes already exist: failing it then would put the photo in two
        places; the next resume finishes it instead."""
        row = self.conn.execute("SELECT state, outcome FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        if row is not None and (row["state"] == "publishing" or (row["state"] == "done" and row["outcome"] != "failed")):
            return None
        self._clear_staging(sha)
        return self._refuse(path, reason, time.monotonic(), sha if row is not None else None)

    def abandon(self, sha: str, why: str, cause: str | None = None) -> PhotoResult:
        """A journal entry that cannot be finished (resume failed on it): take back what it had put in the
        outbox or review, put its snapshot (or the dropped file) in failed/ with the reason."""
        row = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        plan = json.loads(row["plan"] or "{}")
        name = display_name(row["source"] or sha[:12])
        for rel in (plan.get("published") or {}).values():
            target = self.home.root / rel
            staged = [Path(f) for f in (plan.get("files") or {}).values()]
            # Only our own links (the staged file's inode), never a file another photo has put there since.
            if any(same_entry(target, f) for f in staged):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
        source = Source.from_json(plan["source"]) if plan.get("source") else None
        snapshot = Path(plan["snapshot"]) if plan.get("snapshot") else None
        # The technical cause goes in the history; the note in failed/ is for the manager.
        self._event("resume_failed", sha, detail=f"{name}: {why}")
        reason = ("PhotoGuard could not finish it after an interruption"
                  + (f" ({cause.lower()})" if cause else "") + "; it was not shared")
        if snapshot is not None and os.path.lexists(snapshot):
            return self._fail(snapshot, name, sha, reason, time.monotonic(), source)
        archived = self.home.root / row["archive_path"] if row["archive_path"] else None
        if archived is not None and os.path.lexists(archived):   # the snapshot had already been archived
            return self._fail(archived, name, sha, reason, time.monotonic(), source)
        if source is not None and source.unchanged() and is_inside(Path(source.path), self.home.inbox):
            return self._fail(Path(source.path), name, sha, reason, time.monotonic())
        self._clear_staging(sha)
        with transaction(self.conn):
            self._event("processed", sha, detail=f"failed: {name}: {reason}")
            self.conn.execute("UPDATE photos SET state = 'done', outcome = 'failed', reason = ?, finished_at = ? "
                              "WHERE sha256 = ?", (reason, now_iso(), sha))
        return PhotoResult(name, "failed", sha, {}, [], reason)

    def _clear_staging(self, sha: str) -> None:
        shutil.rmtree(self.staging / sha, ignore_errors=True)
