"""The roster: enrol/children.csv (consent per child) and enrol/<id>/ reference photos -> SQLite.

``parse_roster`` reads the CSV as Excel and LibreOffice write it. ``sync_roster`` stores the
consents, records every change in ``consent_history``, erases the templates of every child who
may no longer be matched, and encodes new reference photos (the face detector is only loaded when
there is something to encode).

Fail closed throughout: a row that cannot be read, a duplicated id, an unreadable yes/no or date is
"no consent" for that child, and the rest of the roster still syncs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoguard.photos.taken import taken_on
from photoguard.rules.consent import ChildConsent, may_show
from photoguard.store import db
from photoguard.store.reference_photos import (MIN_GOOD_PHOTOS, SECOND_FACE, _accepts_largest, _check_rules,
                                               _fingerprint, _is_link, _photo_files, check_photo, child_folder,
                                               current_model)
from photoguard.store.roster_csv import RosterProblem, parse_roster

if TYPE_CHECKING:
    from photoguard.engine.detect import FaceDetector
    from photoguard.engine.identify import Template
    from photoguard.store.home import Home


# ---------------------------------------------------------------- CSV


# ---------------------------------------------------------------- database


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _encoding_bytes(encoding: np.ndarray) -> bytes:
    return np.asarray(encoding, dtype="<f8").reshape(128).tobytes()


def _consent_from_row(row: sqlite3.Row) -> ChildConsent:
    problem = row["problem"]
    try:
        channels = {str(k): v is True or v == 1 for k, v in json.loads(row["channels"]).items()}
    except (ValueError, AttributeError):
        channels, problem = {}, problem or "stored channel consents unreadable: run photoguard enrol"
    expires = None
    if row["expires"]:
        try:
            expires = date.fromisoformat(row["expires"])
        except ValueError:
            problem = problem or "stored expiry date unreadable: run photoguard enrol"
    return ChildConsent(child_id=row["id"], name=row["name"], face_matching=row["face_matching"] == 1,
                        channels=channels, expires=expires, problem=problem)


def load_consents(conn: sqlite3.Connection) -> dict[str, ChildConsent]:
    """Every child on the roster as last synced (rows with a problem included: they mean no consent)."""
    return {row["id"]: _consent_from_row(row) for row in conn.execute("SELECT * FROM children ORDER BY id")}


def load_templates(conn: sqlite3.Connection, model: str | None = None, recent_only: bool = True) -> list[Template]:
    """The stored templates of each child on the roster made by ``model`` (default: the current engine),
    only those taken within a year of her newest (``identify.recent_references``) unless ``recent_only``
    is False. A template of another model is never returned, so never compared; the next sync re-encodes it."""
    from photoguard.engine.identify import Template, recent_references

    rows = conn.execute(
        "SELECT t.child_id, t.encoding, COALESCE(t.taken_on, substr(t.created_at, 1, 10)) AS taken "
        "FROM templates t JOIN children c ON c.id = t.child_id "
        "WHERE length(t.encoding) = 1024 AND t.model = ? ORDER BY t.child_id, t.id",
        (model or current_model(),)).fetchall()
    templates = [Template(r["child_id"], np.frombuffer(r["encoding"], dtype="<f8").astype(np.float64),
                          _day(r["taken"])) for r in rows]
    return recent_references(templates) if recent_only else templates


def compared_photos(conn: sqlite3.Connection, child_id: str) -> set[str]:
    """The sha256 of each of the child's reference photos that matching compares now (``load_templates``)."""
    from photoguard.engine.identify import Template, recent_references

    rows = conn.execute(
        "SELECT photo_sha256, COALESCE(taken_on, substr(created_at, 1, 10)) AS taken FROM templates "
        "WHERE child_id = ? AND model = ? AND length(encoding) = 1024 ORDER BY id",
        (child_id, current_model())).fetchall()
    dated = [Template(child_id, np.zeros(0), _day(r["taken"])) for r in rows]
    kept = {id(t) for t in recent_references(dated)}
    return {r["photo_sha256"] for r, t in zip(rows, dated) if id(t) in kept}


def _gone_or_changed(path: Path, sha: str) -> bool:
    try:
        return not os.path.lexists(path) or _fingerprint(path) != sha
    except OSError:
        return True


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


# ---------------------------------------------------------------- sync


def template_eligibility(child: ChildConsent | None, on: date) -> str | None:
    """None if templates may be kept for this child, else why not (no biometric data without consent)."""
    if child is None:
        return "not on the roster"
    if child.problem:
        return "roster row has a problem"
    if child.face_matching is not True:
        return "no consent to face matching"
    if not child.any_channel():
        return "no consent for any channel"
    if child.expired(on):
        return f"consent expired {child.expires.isoformat()}"
    return None


@dataclass(frozen=True)
class ConsentChange:
    child_id: str
    field: str          # 'added', 'removed', 'name', 'face_matching', 'channel:<name>', 'expires', 'problem'
    old: str | None
    new: str | None


@dataclass(frozen=True)
class PhotoCheck:
    path: str           # relative to enrol/, e.g. "amy/beach.jpg"
    status: str         # 'accepted' or 'rejected'
    reason: str | None


@dataclass
class ChildSummary:
    consent: ChildConsent
    line: int | None
    not_matched: str | None                 # why no templates are kept (None = templates allowed)
    photos: list[PhotoCheck] = field(default_factory=list)
    photo_files: int = 0                    # files in enrol/<id>/ (also when not used)
    templates: int = 0
    warning: str | None = None

    @property
    def child_id(self) -> str:
        return self.consent.child_id

    @property
    def accepted(self) -> list[PhotoCheck]:
        return [p for p in self.photos if p.status == "accepted"]

    @property
    def rejected(self) -> list[PhotoCheck]:
        return [p for p in self.photos if p.status == "rejected"]


@dataclass
class SyncResult:
    csv: Path
    children: list[ChildSummary]
    problems: list[RosterProblem]            # bad rows: no consent for them until fixed
    warnings: list[RosterProblem]            # ignored/missing columns, folders without a roster line
    changes: list[ConsentChange]             # recorded in consent_history
    reduced: set[str]                        # children who may be shown on fewer channels than before
    photos_checked: int = 0                  # photos loaded, detected and encoded in this sync
    photos_unchanged: int = 0                # photos skipped because their content was already checked
    templates_erased: int = 0
    scrub_pending: bool = False              # the WAL could not be emptied (another process is reading)
    seconds: float = 0.0


ProgressFn = Callable[[int, int, str], None]   # (index from 1, total, "amy/photo.jpg")


def _yn(value: bool | None) -> str:
    return "yes" if value else "no"


def _summary(c: ChildConsent, channels: tuple[str, ...]) -> str:
    parts = [f"face_matching={_yn(c.face_matching)}"]
    parts += [f"{ch}={_yn(c.channels.get(ch))}" for ch in channels]
    parts.append(f"expires={c.expires.isoformat() if c.expires else 'never'}")
    if c.problem:
        parts.append(f"problem={c.problem}")
    return " ".join(parts)


def _diff(old: dict[str, ChildConsent], new: dict[str, ChildConsent], channels: tuple[str, ...]) -> list[ConsentChange]:
    out: list[ConsentChange] = []
    for cid in sorted(old.keys() - new.keys()):
        out.append(ConsentChange(cid, "removed", _summary(old[cid], channels), None))
    for cid in sorted(new.keys() - old.keys()):
        out.append(ConsentChange(cid, "added", None, _summary(new[cid], channels)))
    for cid in sorted(old.keys() & new.keys()):
        a, b = old[cid], new[cid]
        if a.name != b.name:
            out.append(ConsentChange(cid, "name", a.name, b.name))
        if a.face_matching != b.face_matching:
            out.append(ConsentChange(cid, "face_matching", _yn(a.face_matching), _yn(b.face_matching)))
        for ch in list(channels) + sorted(set(a.channels) - set(channels)):
            before, after = _yn(a.channels.get(ch)), _yn(b.channels.get(ch))
            if before != after:
                out.append(ConsentChange(cid, f"channel:{ch}", before, after))
        if a.expires != b.expires:
            out.append(ConsentChange(cid, "expires", a.expires.isoformat() if a.expires else "never",
                                     b.expires.isoformat() if b.expires else "never"))
        if a.problem != b.problem:
            out.append(ConsentChange(cid, "problem", a.problem or "none", b.problem or "none"))
    return out


def _was_reduced(old: ChildConsent, new: ChildConsent | None, channels: set[str], then: date, today: date) -> bool:
    return any(may_show(old, ch, then).allowed and not may_show(new, ch, today).allowed for ch in channels)


def _last_sync(conn: sqlite3.Connection) -> tuple[date | None, str | None]:
    """The day the roster was last synced for, and the photo-check rules used then."""
    row = conn.execute("SELECT detail FROM events WHERE kind = 'roster_synced' ORDER BY id DESC LIMIT 1").fetchone()
    try:
        detail = json.loads(row["detail"])
        return date.fromisoformat(detail["today"]), detail.get("checks")
    except (TypeError, ValueError, KeyError):
        return None, None


def sync_roster(
    home: Home,
    conn: sqlite3.Connection,
    *,
    today: date | None = None,
    progress: ProgressFn | None = None,
    detector: FaceDetector | Callable[[], FaceDetector] | None = None,
    accept_largest: bool | frozenset[str] = False,
) -> SyncResult:
    """Bring the database in line with children.csv and enrol/<id>/ photos.

    ``accept_largest``: True, or the reference photos (paths as "amy/poster.jpg") whose second face the
    manager says is a poster or a picture: checked again, and their largest face used.

    Order matters for failing closed: consents and the erasing of templates are committed first,
    before any (slow) encoding; erased templates are then scrubbed from the file. Raises RosterError
    (changing nothing) when the CSV as a whole is unusable.
    """
    started = time.monotonic()
    today = today or date.today()
    settings = home.settings
    channels = tuple(settings.channels)
    parsed = parse_roster(home.roster_csv, channels)
    new = {row.child_id: row for row in parsed.rows}
    old = load_consents(conn)
    last_day, last_rules = _last_sync(conn)
    then = last_day or today
    rules = _check_rules(settings)
    changes = _diff(old, new, channels)
    every_channel = set(channels).union(*(c.channels for c in old.values()))
    reduced = {cid for cid, c in old.items() if _was_reduced(c, new.get(cid), every_channel, then, today)}
    not_matched = {cid: template_eligibility(c, today) for cid, c in new.items()}
    allowed = {cid for cid, why in not_matched.items() if why is None}
    now = _now()
    erased = 0

    learned_files: list[str] = []
    with db.transaction(conn):
        for cid in old.keys() - new.keys():
            conn.execute("DELETE FROM children WHERE id = ?", (cid,))
        for cid, c in new.items():
            conn.execute(
                "INSERT INTO children (id, name, face_matching, channels, expires, problem, csv_line, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
                "face_matching=excluded.face_matching, channels=excluded.channels, expires=excluded.expires, "
                "problem=excluded.problem, csv_line=excluded.csv_line, "
                "updated_at=CASE WHEN children.name IS excluded.name AND children.face_matching IS excluded.face_matching "
                "AND children.channels IS excluded.channels AND children.expires IS excluded.expires "
                "AND children.problem IS excluded.problem THEN children.updated_at ELSE excluded.updated_at END",
                (cid, c.name, int(c.face_matching), json.dumps({ch: bool(c.channels.get(ch)) for ch in channels}),
                 c.expires.isoformat() if c.expires else None, c.problem, parsed.lines.get(cid), now))
        for ch in changes:
            conn.execute("INSERT INTO consent_history (child_id, changed_at, field, old, new) VALUES (?,?,?,?,?)",
                         (ch.child_id, now, ch.field, ch.old, ch.new))
        # No biometric data without consent: erase now, before anything slow happens.
        holders = {r[0] for r in conn.execute(
            "SELECT child_id FROM templates UNION SELECT child_id FROM reference_photos "
            "UNION SELECT child_id FROM learned_faces")}
        for cid in sorted(holders - allowed):
            n = conn.execute("DELETE FROM templates WHERE child_id = ?", (cid,)).rowcount
            conn.execute("DELETE FROM reference_photos WHERE child_id = ?", (cid,))
            # Faces PhotoGuard cut out of photos when the manager confirmed them: its own files, erased too.
            learned_files += [r[0] for r in conn.execute("SELECT path FROM learned_faces WHERE child_id = ?", (cid,))]
            conn.execute("DELETE FROM learned_faces WHERE child_id = ?", (cid,))
            if n:
                erased += n
                conn.execute("INSERT INTO events (at, kind, child_id, detail) VALUES (?,?,?,?)",
                             (now, "templates_erased", cid, f"{n} templates: {not_matched.get(cid) or 'not on the roster'}"))
        # Templates of another embedding model (an older PhotoGuard) are never compared with today's:
        # they are erased here and their photos, still in enrol/<id>/, are encoded again below.
        model = current_model()
        for cid, n in conn.execute("SELECT child_id, COUNT(*) FROM templates WHERE model != ? GROUP BY child_id",
                                   (model,)).fetchall():
            conn.execute("DELETE FROM templates WHERE child_id = ? AND model != ?", (cid, model))
            erased += n
            conn.execute("INSERT INTO events (at, kind, child_id, detail) VALUES (?,?,?,?)",
                         (now, "templates_outdated", cid, f"{n} templates of an older face model: encoded again"))
        conn.execute("INSERT INTO events (at, kind, detail) VALUES (?,?,?)", (now, "roster_synced", json.dumps({"today": today.isoformat(), "checks": rules})))

    for rel in learned_files:
        path = home.enrol / rel
        if path.is_file() and not path.is_symlink():
            os.unlink(path)

    # Photos: what is in each allowed child's folder now, and what needs checking.
    files: dict[str, list[tuple[Path, str, str]]] = {}   # child -> (file, rel path, sha256)
    todo: list[tuple[str, Path, str, str, bool]] = []
    unchanged = 0
    for cid in sorted(allowed):
        listing = [(p, p.relative_to(home.enrol).as_posix(), _fingerprint(p)) for p in _photo_files(child_folder(home.enrol, cid))]
        files[cid] = listing
        current = {rel: sha for _, rel, sha in listing}
        shas = set(current.values())
        known = {r["path"]: r for r in conn.execute("SELECT * FROM reference_photos WHERE child_id = ?", (cid,))}
        have = {r[0] for r in conn.execute("SELECT DISTINCT photo_sha256 FROM templates WHERE child_id = ?", (cid,))}
        with db.transaction(conn):
            for rel, row in known.items():
                if current.get(rel) != row["sha256"]:
                    conn.execute("DELETE FROM reference_photos WHERE child_id = ? AND path = ?", (cid, rel))
                    conn.execute("DELETE FROM learned_faces WHERE child_id = ? AND path = ?", (cid, rel))
            for sha in have - shas:   # the photo was removed or replaced
                erased += conn.execute("DELETE FROM templates WHERE child_id = ? AND photo_sha256 = ?", (cid, sha)).rowcount
        have &= shas
        for path, rel, sha in listing:
            row = known.get(rel)
            # The largest face is taken only from a photo already rejected for a second face, as it is
            # now: a photo nobody has been told about (new, or replaced since) is checked in full.
            largest = (_accepts_largest(accept_largest, rel) and row is not None and row["sha256"] == sha
                       and (row["reason"] or "").startswith(SECOND_FACE))
            if row is not None and row["sha256"] == sha and not largest and (
                    (row["status"] == "rejected" and rules == last_rules) or (row["status"] == "accepted" and sha in have)):
                unchanged += 1
            else:
                todo.append((cid, path, rel, sha, largest))

    checked = 0
    for i, (cid, path, rel, sha, largest) in enumerate(todo, 1):
        if progress is not None:
            progress(i, len(todo), rel)
        exists = conn.execute("SELECT 1 FROM templates WHERE child_id = ? AND photo_sha256 = ?", (cid, sha)).fetchone()
        encoding, reason = None, None
        if not exists or _is_link(path):   # the same picture twice in one folder is encoded once
            if detector is None:
                from photoguard.engine.detect import FaceDetector

                detector = FaceDetector(threshold=settings.detect_threshold)
            elif not hasattr(detector, "detect"):
                detector = detector()  # a caller's own detector, loaded only now that it is needed
            encoding, reason = check_photo(path, detector, settings.min_face_px, largest)
            checked += 1
        day = taken_on(path, today).isoformat() if encoding is not None else None
        with db.transaction(conn):
            # Another sync may have withdrawn this child's consent while we were encoding ...
            row = conn.execute("SELECT * FROM children WHERE id = ?", (cid,)).fetchone()
            if row is None or template_eligibility(_consent_from_row(row), today) is not None:
                continue
            # ... or the manager removed or replaced the photo (that sync found nothing of it to erase yet).
            if _gone_or_changed(path, sha):
                continue
            conn.execute(
                "INSERT OR REPLACE INTO reference_photos (child_id, path, sha256, status, reason, checked_at) "
                "VALUES (?,?,?,?,?,?)", (cid, rel, sha, "rejected" if reason else "accepted", reason, _now()))
            # Another sync (the pages and the watcher at once) may have stored this photo meanwhile: once only.
            if encoding is not None and not conn.execute(
                    "SELECT 1 FROM templates WHERE child_id = ? AND photo_sha256 = ? AND model = ?",
                    (cid, sha, model)).fetchone():
                conn.execute("INSERT INTO templates (child_id, photo_sha256, encoding, created_at, model, taken_on) "
                             "VALUES (?,?,?,?,?,?)", (cid, sha, _encoding_bytes(encoding), _now(), model,
                                                      day))

    if erased:
        db.scrub(conn)
    else:
        # Cheap; also finishes the job if a previous sync was killed or blocked before scrubbing.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # A process still reading an old snapshot keeps the WAL (and erased bytes in it) alive.
    wal = home.database.with_name(home.database.name + "-wal")
    scrub_pending = wal.exists() and wal.stat().st_size > 0

    warnings = list(parsed.warnings)
    roster_keys = {cid.lower() for cid in new}
    if home.enrol.is_dir():
        for folder in sorted(home.enrol.iterdir()):
            if folder.is_dir() and not folder.name.startswith(".") and folder.name.lower() not in roster_keys:
                warnings.append(RosterProblem(
                    folder, None, f"no line for '{folder.name}' in {home.roster_csv.name}: its photos are not used"))

    summaries: list[ChildSummary] = []
    for c in sorted(new.values(), key=lambda c: (parsed.lines.get(c.child_id, 0), c.child_id)):
        cid = c.child_id
        s = ChildSummary(consent=c, line=parsed.lines.get(cid), not_matched=not_matched[cid])
        s.photo_files = len(files[cid]) if cid in files else len(_photo_files(child_folder(home.enrol, cid)))
        if cid in allowed:
            s.photos = [PhotoCheck(r["path"], r["status"], r["reason"]) for r in conn.execute(
                "SELECT path, status, reason FROM reference_photos WHERE child_id = ? ORDER BY path", (cid,))]
            s.templates = len(compared_photos(conn, cid))   # those matching compares now
            if s.templates < MIN_GOOD_PHOTOS:
                s.warning = (f"only {s.templates} good reference photo{'s' if s.templates != 1 else ''}: "
                             f"add at least {MIN_GOOD_PHOTOS} to enrol/{cid}/ so the child is recognised reliably")
        summaries.append(s)

    return SyncResult(
        csv=parsed.path, children=summaries, problems=parsed.problems, warnings=warnings, changes=changes,
        reduced=reduced, photos_checked=checked, photos_unchanged=unchanged, templates_erased=erased,
        scrub_pending=scrub_pending, seconds=time.monotonic() - started)


# ---------------------------------------------------------------- listing


# ---------------------------------------------------------------- in the manager's words


def roster_version(conn: sqlite3.Connection) -> tuple:
    """Changes whenever a consent or a template changes (any process's sync), so workers reload in time."""
    return tuple(conn.execute(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM consent_history), (SELECT COUNT(*) FROM templates), "
        "(SELECT COALESCE(MAX(id), 0) FROM templates), (SELECT COUNT(*) FROM children)").fetchone())
