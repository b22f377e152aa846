"""Answers teach: a face the manager confirms as a child becomes one of that child's reference photos.

Children change fast and one or two enrolment photos do not keep them recognisable for a term, so every
answer is a chance to learn. It is taken only when it cannot make things worse:

- the child's consent allows face matching today (no biometric data without it);
- the face passes the same checks as an enrolment photo (one clear face, large and sharp enough:
  ``reference_photos.check_photo`` on the face cut out of the archived original);
- it is at least ``match.ask_from`` alike the child's current references, so a mistaken answer (a
  stranger confirmed as Lena) cannot drag her template towards someone else.

Each child keeps the enrolment photos plus the ``MAX_LEARNED`` newest learned faces, so the template
follows a growing child and an old mistake drops out. The score stays the mean over all references.
Measured with ``photoguard evaluate term`` (docs/measurements.md): caps of 2, 4, 8 and all were within
half a point of each other; scoring by the nearest reference, or letting confident automatic matches
teach, showed children as someone else or gained nothing, so neither is done.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from photoguard.flow.pipeline import Processor
from photoguard.flow.references import ReferenceError, learn_from_face
from photoguard.photos.images import sha256_file
from photoguard.store.db import transaction
from photoguard.store.faces import face_from_row
from photoguard.store.localtime import now_iso
from photoguard.store.reference_photos import SECOND_FACE, check_photo, current_model, reason_on_page
from photoguard.store.roster import load_consents, load_templates, template_eligibility

MAX_LEARNED = 4
NOT_KEPT = "Not kept as a reference photo"   # how the words begin when an answer does not teach


@dataclass(frozen=True)
class Learned:
    kept: bool
    words: str                 # a sentence for the manager: kept, or why not
    path: Path | None = None   # the reference photo made (enrol/<id>/confirmed-....jpg)


@dataclass(frozen=True)
class LearnedFace:
    """A learned reference photo, as the child's page lists it."""
    child_id: str
    path: str                  # relative to enrol/
    photo_sha256: str
    source: str                # the photo it came from ("picnic.jpg")
    face: int                  # its face number in that photo, from 1
    learned_at: str
    similarity: float


def learn_answer(home, conn: sqlite3.Connection, processor: Processor, photo_sha256: str, face_idx: int,
                 child_id: str, *, actor: str, today: date | None = None,
                 max_learned: int = MAX_LEARNED) -> Learned:
    """Keep face ``face_idx`` of the photo as a reference photo of ``child_id`` if it may and should be
    kept (see the module's rules); say in words what happened either way."""
    today = today or date.today()
    consent = load_consents(conn).get(child_id)
    name = (consent.name if consent else "") or child_id
    why = template_eligibility(consent, today)
    if why is not None:
        return Learned(False, f"{NOT_KEPT} of {name}: {why}.")
    if conn.execute("SELECT 1 FROM learned_faces WHERE photo_sha256 = ? AND face_idx = ?",
                    (photo_sha256, face_idx)).fetchone():
        return Learned(False, f"This face is already one of {name}'s reference photos.")
    row = conn.execute("SELECT * FROM faces WHERE photo_sha256 = ? AND idx = ?", (photo_sha256, face_idx)).fetchone()
    if row is None:
        return Learned(False, f"{NOT_KEPT}: that face is not in the photo any more.")
    face = face_from_row(row)
    min_px = home.settings.min_face_px
    if face.width < min_px:
        return Learned(False, f"{NOT_KEPT} of {name}: the face is only {face.width} px wide "
                              f"(a reference photo needs {min_px} px).")
    try:
        path = learn_from_face(home, conn, photo_sha256, face.box, child_id)
    except ReferenceError as exc:
        return Learned(False, f"{NOT_KEPT} of {name}: {exc}")
    try:
        encoding, problem = check_photo(path, processor.detector, min_px)
        if problem is not None:
            return _drop(path, f"{NOT_KEPT} of {name}: {_on_a_photo(problem)}. Your answer still counts for "
                               "this photo.")
        refs = _references(conn, child_id)
        if not len(refs):
            return _drop(path, f"{NOT_KEPT}: {name} has no reference photos yet to compare it "
                               "with. Add two or three clear photos on their page first.")
        alike = float((refs @ np.asarray(encoding, dtype=np.float64)).mean())
        if not alike >= home.settings.match_ask_from:
            return _drop(path, f"{NOT_KEPT} of {name}: the face is not alike enough to their "
                               "reference photos to learn from (if it really is them, add a clear photo of them "
                               "on their page).")
        try:
            _record(conn, home, child_id, path, photo_sha256, face_idx, alike, encoding, actor, today)
        except ReferenceError:
            return _drop(path, f"{NOT_KEPT} of {name}: their consent changed meanwhile.")
    except BaseException:
        if path.exists() and not conn.execute("SELECT 1 FROM learned_faces WHERE path = ?",
                                              (path.relative_to(home.enrol).as_posix(),)).fetchone():
            path.unlink()
        raise
    dropped = _keep_newest(conn, home, child_id, max_learned)
    more = " The oldest face learnt from an answer was let go." if dropped else ""
    return Learned(True, f"Kept as one of {name}'s reference photos, so PhotoGuard knows {name} better.{more}", path)


def learned_faces(conn: sqlite3.Connection, child_id: str) -> list[LearnedFace]:
    """The child's learned reference photos, newest first."""
    rows = conn.execute(
        "SELECT l.*, p.source FROM learned_faces l LEFT JOIN photos p ON p.sha256 = l.photo_sha256 "
        "WHERE l.child_id = ? ORDER BY l.learned_at DESC, l.rowid DESC", (child_id,)).fetchall()
    return [LearnedFace(r["child_id"], r["path"], r["photo_sha256"], r["source"] or "a photo no longer on record",
                        r["face_idx"] + 1, r["learned_at"], r["similarity"]) for r in rows]


# An enrolment check's reason says what to do with a reference photo ("use a sharper photo"); for a face on
# an activity photo there is nothing to do: say only why the face cannot teach.
_ON_A_PHOTO = (("too blurry", "the face is too blurred to learn from"),
               ("no face found", "the face is not clear enough on its own to learn from"),
               ("face could not be measured", "the face is turned away or covered"),
               ("face only", "the face is too small to learn from"))


def _on_a_photo(problem: str) -> str:
    for start, words in _ON_A_PHOTO:
        if problem.startswith(start):
            return words
    if problem.startswith(SECOND_FACE):
        return "another face is too close to it"
    return reason_on_page(problem)


def _drop(path: Path, words: str) -> Learned:
    path.unlink(missing_ok=True)
    return Learned(False, words)


def _references(conn: sqlite3.Connection, child_id: str) -> np.ndarray:
    """The child's references as matching compares them now (the recent ones)."""
    return np.array([t.encoding for t in load_templates(conn) if t.child_id == child_id], dtype=np.float64)


def _record(conn: sqlite3.Connection, home, child_id: str, path: Path, photo_sha256: str, face_idx: int,
            alike: float, encoding: np.ndarray, actor: str, today: date) -> None:
    """The reference photo, its template and where it came from, as a sync would record them (so the next
    sync finds it done), in one transaction that checks the consent once more."""
    rel = path.relative_to(home.enrol).as_posix()
    sha = sha256_file(path)
    at = now_iso()
    with transaction(conn):
        if template_eligibility(load_consents(conn).get(child_id), today) is not None:
            raise ReferenceError("the consent changed meanwhile")
        conn.execute("INSERT OR REPLACE INTO reference_photos (child_id, path, sha256, status, reason, checked_at) "
                     "VALUES (?,?,?,?,?,?)", (child_id, rel, sha, "accepted", None, at))
        conn.execute("INSERT INTO templates (child_id, photo_sha256, encoding, created_at, model, taken_on) "
                     "VALUES (?,?,?,?,?,?)", (child_id, sha, np.asarray(encoding, dtype="<f8").tobytes(), at,
                                              current_model(), _photo_day(conn, photo_sha256, today)))
        conn.execute("INSERT INTO learned_faces (child_id, path, photo_sha256, face_idx, similarity, learned_at, actor) "
                     "VALUES (?,?,?,?,?,?,?)", (child_id, rel, photo_sha256, face_idx, alike, at, actor))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, child_id, detail, actor) VALUES (?,?,?,?,?,?)",
                     (at, "reference_learned", photo_sha256, child_id,
                      f"face {face_idx + 1} kept as a reference photo ({rel}), {alike:.2f} alike", actor))


def _photo_day(conn: sqlite3.Connection, photo_sha256: str, today: date) -> str:
    """The day the photo the face comes from came in (a "yes" about last month's photo is last month's face)."""
    row = conn.execute("SELECT substr(received_at, 1, 10) FROM photos WHERE sha256 = ?", (photo_sha256,)).fetchone()
    return row[0] if row and row[0] else today.isoformat()


def _keep_newest(conn: sqlite3.Connection, home, child_id: str, max_learned: int) -> int:
    """Let go of learned faces beyond the newest ``max_learned``: file, template and record."""
    rows = conn.execute("SELECT path FROM learned_faces WHERE child_id = ? ORDER BY learned_at DESC, rowid DESC",
                        (child_id,)).fetchall()
    old = [r["path"] for r in rows[max_learned:]]
    for rel in old:
        forget(conn, home, child_id, rel, why="a newer face was learnt")
    return len(old)


def forget(conn: sqlite3.Connection, home, child_id: str, rel: str, *, why: str, actor: str | None = None) -> bool:
    """Remove a learned reference photo: its file in enrol/<id>/, its template and its record."""
    row = conn.execute("SELECT * FROM learned_faces WHERE child_id = ? AND path = ?", (child_id, rel)).fetchone()
    if row is None:
        return False
    path = home.enrol / rel
    sha = conn.execute("SELECT sha256 FROM reference_photos WHERE child_id = ? AND path = ?",
                       (child_id, rel)).fetchone()
    with transaction(conn):
        conn.execute("DELETE FROM learned_faces WHERE child_id = ? AND path = ?", (child_id, rel))
        conn.execute("DELETE FROM reference_photos WHERE child_id = ? AND path = ?", (child_id, rel))
        if sha is not None:
            conn.execute("DELETE FROM templates WHERE child_id = ? AND photo_sha256 = ?", (child_id, sha["sha256"]))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, child_id, detail, actor) VALUES (?,?,?,?,?,?)",
                     (now_iso(), "reference_forgotten", row["photo_sha256"], child_id, f"{rel}: {why}", actor))
    if path.is_file() and not path.is_symlink():
        os.unlink(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return True
