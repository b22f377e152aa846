"""The outbox follows the consents: every file still there that shows a child whose consent no longer allows it
is made again from the archived original, or removed.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from photoguard.flow.outbox import REMOVED, REPLACED, _current, _event, record_outbox_file, sweep
from photoguard.flow.pipeline import Processor
from photoguard.photos.images import load_image, sha256_file
from photoguard.photos.save import encode_stripped_jpeg, fsync_dir
from photoguard.rules.consent import may_show
from photoguard.store.db import transaction
from photoguard.store.faces import face_from_row
from photoguard.store.home import OUTBOX_FILE
from photoguard.store.localtime import now_iso


@dataclass(frozen=True)
class Recheck:
    """What the re-check did to one outbox file after a consent change."""
    source: str
    channel: str
    path: str                # relative to the home
    action: str              # 'rerendered' or 'removed'
    reason: str

    def describe(self) -> str:
        parts = Path(self.path).parts
        inside = "/".join(parts[2:]) if len(parts) > 2 and parts[0] == "outbox" else Path(self.path).name
        return f"outbox {self.channel}/{inside}: {self.action} — {self.reason}"


def recheck_outbox(processor: Processor, today: date | None = None) -> list[Recheck]:
    """Re-make every file still in an outbox that shows a child whose consent no longer allows it, and
    every copy still waiting to be posted that obscures a recognised child whose consent now allows it.

    Run after every roster sync, at the start of every run (consents expire overnight) and after
    resuming. Files that left the outbox are recorded collected first; those go on the take-down list
    instead. A file is rebuilt from the archived original with the stored faces; if the original is
    gone, or re-rendering fails or is not safe, it is removed.
    """
    from photoguard.store.roster import roster_version

    today = today or date.today()
    conn, home = processor.conn, processor.home
    if roster_version(conn) != processor.roster_version:
        processor.reload_roster()
    where = sweep(home, conn)
    children: dict[str, dict[int, str | None]] = {}
    stale: dict[str, list[tuple[sqlite3.Row, Path, dict[int, str]]]] = {}
    for row in _current(conn):
        path = where.get(row["id"])
        if path is None:
            continue
        sha = row["photo_sha256"]
        if sha not in children:
            children[sha] = {f["idx"]: f["child_id"] for f in conn.execute(
                "SELECT idx, child_id FROM faces WHERE photo_sha256 = ?", (sha,))}
        withdrawn = {}
        shown = set(json.loads(row["shown"] or "[]"))
        for idx in shown:
            child = children[sha].get(idx)
            verdict = may_show(processor.consents.get(child), row["channel"], today) if child else None
            if verdict is None or not verdict.allowed:
                withdrawn[idx] = verdict.reason if verdict else "not identified"
        given = _given_back(conn, processor, row, shown, children[sha], today)
        if withdrawn or given:
            stale.setdefault(sha, []).append((row, path, withdrawn, given))
    changes: list[Recheck] = []
    for sha, files in sorted(stale.items()):
        changes += _OutboxFix(processor, sha).apply(files)
    return changes


def _given_back(conn: sqlite3.Connection, processor: Processor, row: sqlite3.Row, shown: set[int],
                children: dict[int, str | None], today: date) -> dict[int, str]:
    """Faces of a copy still waiting to be posted that were obscured only for want of consent (a child
    recognised or confirmed, not a face PhotoGuard or the manager was unsure of) and whose consent for that
    channel is now given: they may be shown. Only in a copy PhotoGuard cleared by itself: a copy a person
    released is published exactly as she saw it, and a copy posted in any version stays as it was posted."""
    given = {}
    for action in conn.execute("SELECT face_idx FROM face_actions WHERE photo_sha256 = ? AND channel = ? "
                               "AND action = 'obscured' AND consent IS NOT NULL", (row["photo_sha256"], row["channel"])):
        idx = action["face_idx"]
        child = children.get(idx)
        if idx in shown or not child:
            continue
        verdict = may_show(processor.consents.get(child), row["channel"], today)
        if verdict.allowed:
            given[idx] = verdict.reason
    if not given:
        return {}
    cleared = conn.execute("SELECT 1 FROM photos WHERE sha256 = ? AND outcome = 'cleared'", (row["photo_sha256"],))
    posted = conn.execute("SELECT 1 FROM outbox_files WHERE photo_sha256 = ? AND channel = ? AND posted_at IS NOT NULL",
                          (row["photo_sha256"], row["channel"]))
    return given if cleared.fetchone() and not posted.fetchone() else {}


class _OutboxFix:
    """Re-make one photo's outbox files; the original is decoded once and each rendering encoded once,
    then written as a separate file per channel."""

    def __init__(self, processor: Processor, sha: str) -> None:
        self.processor, self.sha = processor, sha
        self.conn, self.home = processor.conn, processor.home
        self.photo = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        self.faces = [face_from_row(f) for f in self.conn.execute(
            "SELECT box, score, landmarks FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,))]
        self._original: np.ndarray | None = None
        self._encoded: dict[tuple[bool, ...], tuple[bytes | None, str | None]] = {}

    def apply(self, files: list[tuple[sqlite3.Row, Path, dict[int, str], dict[int, str]]]) -> list[Recheck]:
        changes = []
        for row, path, withdrawn, given in files:
            try:
                change = self._fix(row, path, withdrawn, given)
            except Exception as exc:  # noqa: BLE001 — fail closed: a file we cannot fix is taken out
                if not withdrawn:
                    continue   # it only shows fewer faces than it may: it stays as it is
                change = self._remove(row, path, withdrawn, f"{self._why(withdrawn)}; "
                                                            f"re-rendering failed ({type(exc).__name__}: {exc})")
            if change is not None:
                changes.append(change)
        return changes

    def _encode(self, shown: tuple[bool, ...]) -> tuple[bytes | None, str | None]:
        """The JPEG with only ``shown`` faces visible, or why it is not safe."""
        if shown not in self._encoded:
            if self._original is None:
                self._original = load_image(self.home.root / self.photo["archive_path"]).rgb
            seed = int(self.photo["seed"]) if self.photo["seed"] else secrets.randbits(63)
            rendered = self.processor.render(self._original, self.faces, shown, seed)
            problem = self.processor.verify(rendered, self.faces, shown, self._original)
            self._encoded[shown] = ((None, problem) if problem else
                                    (encode_stripped_jpeg(self.processor.published(rendered)), None))
        return self._encoded[shown]

    def _fix(self, row: sqlite3.Row, path: Path, withdrawn: dict[int, str], given: dict[int, str]) -> Recheck | None:
        why = self._why(withdrawn)
        archived = self.photo["archive_path"] if self.photo else None
        if not archived or not (self.home.root / archived).exists():
            if not withdrawn:
                return None
            return self._remove(row, path, withdrawn, f"{why}; the original is no longer archived")
        before = set(json.loads(row["shown"] or "[]"))
        shown = tuple((i in before and i not in withdrawn) or i in given for i in range(len(self.faces)))
        data, problem = self._encode(shown)
        if data is None and not withdrawn:
            return None
        if data is None:
            return self._remove(row, path, withdrawn, f"{why}; re-rendering was not safe: {problem}")
        # A file of its own for this channel, written beside the old one and put in its place (an editor
        # may have renamed it: the new copy takes the name it has now).
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OUTBOX_FILE)
        os.fchmod(fd, OUTBOX_FILE)   # whatever the umask, as every other outbox copy
        try:
            with open(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            reason = "; ".join(filter(None, (
                f"re-rendered with the face obscured: {why}" if withdrawn else "",
                f"re-made showing {self._why(given)}" if given else "")))
            with transaction(self.conn):
                if not self._end(row, REPLACED):
                    return None
                os.replace(tmp, path)
                fsync_dir(path.parent)
                file_hash = sha256_file(path)
                record_outbox_file(self.home, self.conn, self.sha, row["channel"], path,
                                   shown=[i for i, keep in enumerate(shown) if keep], made=reason,
                                   file_sha256=file_hash, replaces=row["id"])
                self.conn.execute("UPDATE outputs SET path = ?, file_sha256 = ? WHERE photo_sha256 = ? AND channel = ?",
                                  (str(path.relative_to(self.home.root)), file_hash, self.sha, row["channel"]))
                _event(self.conn, "rerendered", self.sha, f"{row['channel']}: {path.name}: {reason}",
                       self._child(withdrawn or given))
        finally:
            tmp.unlink(missing_ok=True)
        return Recheck(self._source(row), row["channel"], str(path.relative_to(self.home.root)), "rerendered", reason)

    def _remove(self, row: sqlite3.Row, path: Path, withdrawn: dict[int, str], why: str) -> Recheck | None:
        reason = f"removed: {why}"
        with transaction(self.conn):
            if not self._end(row, REMOVED):
                return None
            try:
                path.unlink()
                fsync_dir(path.parent)
            except FileNotFoundError:
                pass
            self.conn.execute("UPDATE outputs SET removed_at = ? WHERE photo_sha256 = ? AND channel = ?",
                              (now_iso(), self.sha, row["channel"]))
            _event(self.conn, "removed", self.sha, f"{row['channel']}: {path.name}: {reason}", self._child(withdrawn))
        return Recheck(self._source(row), row["channel"], str(path.relative_to(self.home.root)), "removed", reason)

    def _end(self, row: sqlite3.Row, how: str) -> bool:
        """End the copy's record; False if another process (a Check again, a release) ended it meanwhile:
        its file is then no longer this copy, and is left alone."""
        return self.conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                                 (how, now_iso(), row["id"])).rowcount == 1

    def _why(self, withdrawn: dict[int, str]) -> str:
        """"grace: no consent for facebook" (the child's id, or the face's number if not identified)."""
        children = {r["idx"]: r["child_id"] for r in self.conn.execute(
            "SELECT idx, child_id FROM faces WHERE photo_sha256 = ?", (self.sha,))}
        return "; ".join(sorted({f"{children.get(i) or f'face {i + 1}'}: {why}" for i, why in withdrawn.items()}))

    def _child(self, withdrawn: dict[int, str]) -> str | None:
        ids = {r[0] for r in self.conn.execute(
            f"SELECT child_id FROM faces WHERE photo_sha256 = ? AND idx IN ({','.join('?' * len(withdrawn))})",
            (self.sha, *withdrawn)) if r[0]}
        return ids.pop() if len(ids) == 1 else None

    def _source(self, row: sqlite3.Row) -> str:
        return self.photo["source"] if self.photo else row["path"]
