"""The roster: enrol/children.csv (consent per child) and enrol/<id>/ reference photos -> SQLite.

``parse_roster`` reads the CSV as Excel and LibreOffice write it. ``sync_roster`` stores the
consents, records every change in ``consent_history``, erases the templates of every child who
may no longer be matched, and encodes new reference photos (the face detector is only loaded when
there is something to encode).

Fail closed throughout: a row that cannot be read, a duplicated id, an unreadable yes/no or date is
"no consent" for that child, and the rest of the roster still syncs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoguard.engine.detect import FaceDetector
from photoguard.engine.identify import Template
from photoguard.photos.images import PHOTO_SUFFIXES, sha256_file
from photoguard.rules.consent import ChildConsent, may_show
from photoguard.store import db
from photoguard.store.home import Home

if TYPE_CHECKING:
    from photoguard.engine.detect import FaceDetector
    from photoguard.engine.identify import Template
    from photoguard.store.home import Home

# How a row's problem with its end date begins: the words that tell "not readable" from "no end date".
UNREADABLE_EXPIRY = "expires is '"
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# An id names the folder enrol/<id>/ and a name is shown on every page: both short enough for any file
# system and any page. A roster line longer than any child's line is not read at all (a paste gone
# wrong), so that no field in it can exceed the CSV reader's own limit and stop the whole roster.
MAX_ID_CHARS = 64
MAX_NAME_CHARS = 100
MAX_LINE_CHARS = 2000
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}
IGNORED_FILES = {"thumbs.db", "desktop.ini"}
LINKED_PHOTO = ("a link to a file elsewhere, not a photo in the folder: copy the photo itself into the "
                "child's folder and delete the link")
MIN_GOOD_PHOTOS = 3
# In a reference photo, another face at least this fraction of the largest face's width is a rival.
RIVAL_FACE_RATIO = 0.4
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Sharpness = variance of the Laplacian of the face (grey, SHARPNESS_WIDTH px wide, fixed contrast).
# Measured on the facekit faces (astronaut, hopper; faces 90-450 px, JPEG q60, brightness 0.6-1.4):
# sharp 148-1060; Gaussian blur sigma 1.0 (in 128 px-face units) 37-230, sigma 1.5 16-56, sigma 2.5
# 6-22. Blur of sigma 1.5 already moves the encoding 0.19-0.25 (match threshold 0.45), 2.5 by ~0.3-0.37.
# 35 rejects sigma >= 1.5 on the smooth face and >= 2.5 on the textured one, 4x below the sharpest.
SHARPNESS_WIDTH = 128
MIN_SHARPNESS = 35.0


class RosterError(Exception):
    """The roster file cannot be used at all; the message names the file and what to do."""


@dataclass(frozen=True)
class RosterProblem:
    file: Path
    line: int | None          # 1-based line in the CSV; None for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.message}"

    def words(self) -> str:
        """As a page says it: 'Line 7 of children.csv: no id ...'."""
        where = f"Line {self.line} of {self.file.name}" if self.line is not None else self.file.name
        return f"{where}: {self.message}"


def roster_file_problems(path: Path, channels: tuple[str, ...]) -> list[str]:
    """What is wrong in the roster file, in words for the manager's page (empty when nothing is)."""
    try:
        parsed = parse_roster(path, channels)
    except RosterError as exc:
        return [str(exc).replace(f"{path}:", f"{path.name}, line ").replace(str(path), path.name)]
    return [p.words() for p in (*parsed.problems, *parsed.warnings)]


@dataclass
class RosterParse:
    """What the CSV says. ``rows`` includes rows with a ``problem`` (they mean: no consent)."""
    path: Path
    channels: tuple[str, ...]
    rows: list[ChildConsent] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)          # child id -> CSV line
    problems: list[RosterProblem] = field(default_factory=list)  # bad rows (no consent for them)
    warnings: list[RosterProblem] = field(default_factory=list)  # columns ignored or missing


# ---------------------------------------------------------------- CSV


def _decode(path: Path, raw: bytes, warnings: list[RosterProblem]) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise RosterError(
            f"{path}: not a text file in a known encoding. Save it from Excel as "
            "'CSV UTF-8 (Comma delimited)' or from LibreOffice as CSV with UTF-8."
        )
    warnings.append(RosterProblem(path, None, "file is not UTF-8; read it as Windows-1252. "
                                  "Save it as 'CSV UTF-8' so names with accents come out right."))
    return text


def _delimiter(header_line: str) -> str:
    # Excel in many European locales writes ';'. Pick the separator that splits the header most.
    best, best_n = ",", 0
    for sep in (",", ";", "\t"):
        n = len(next(csv.reader([header_line], delimiter=sep), []))
        if n > best_n:
            best, best_n = sep, n
    return best


def _norm_header(cell: str) -> str:
    return cell.strip().lower().replace(" ", "_").replace("-", "_")


def _yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in YES:
        return True
    if v in NO:
        return False
    return None


def id_problem(child_id: str) -> str | None:
    """What is wrong with ``child_id`` as an id, in words (None when nothing is)."""
    if not child_id:
        return "no id: fill in the child's id (letters, digits, '-' or '_')"
    if len(child_id) > MAX_ID_CHARS:
        return (f"the id '{child_id[:20]}…' is {len(child_id)} characters long; an id is at most {MAX_ID_CHARS} "
                "(it names the folder enrol/<id>/). Shorten it")
    if not set(child_id) <= ID_CHARS:
        return (f"id '{child_id}' may use only letters, digits, '-' and '_' (it names the folder enrol/<id>/). "
                "Change it")
    return None


def name_problem(name: str) -> str | None:
    """What is wrong with a child's name, in words (None when nothing is)."""
    if len(name) > MAX_NAME_CHARS:
        return f"the name is {len(name)} characters long; write at most {MAX_NAME_CHARS}"
    if any(ch in name for ch in "\r\n"):
        return "the name must be on one line"
    return None


def is_comment(line: str) -> bool:
    """A roster line starting with '#' (or '"#', as a spreadsheet may save it) is a note, not a child."""
    return line.lstrip(' \t"').startswith("#")


def _readable(reader, path: Path, result: RosterParse) -> Iterator[list[str]]:
    """The reader's rows up to one it cannot split into cells; the lines from there on are not read (so
    nobody on them has consent) and the problem says so, instead of the whole roster stopping."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            result.problems.append(RosterProblem(
                path, reader.line_num, "from this line on the file cannot be read as a table (a stray quote?), so "
                "the children on the lines below are not on the roster. Open it in Excel and save it again"))
            return
        yield cells


def parse_roster(path: Path, channels: tuple[str, ...]) -> RosterParse:
    """Read the roster CSV. Raises RosterError only when the whole file is unusable."""
    path = Path(path)
    result = RosterParse(path=path, channels=tuple(channels))
    if not path.exists():
        raise RosterError(
            f"{path} not found. Create it with a header line like: "
            f"id,name,face_matching,{','.join(channels)},expires"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RosterError(f"cannot read {path}: {exc.strerror}. Close it in Excel and check its permissions.")
    text = _decode(path, raw, result.warnings)
    # Lines starting with '#' (or '"#' as a spreadsheet may save them) are comments, e.g. the starter
    # file's notes and example row; blanked, not removed, so problems keep their line numbers.
    text = "\n".join("" if is_comment(line) else line for line in text.splitlines())
    kept = []
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_LINE_CHARS:
            result.problems.append(RosterProblem(
                path, number, f"this line is {len(line):,} characters long, longer than any child's line "
                f"({MAX_LINE_CHARS:,} at most); it is not read. Delete it or write the child's line again."))
            line = ""
        kept.append(line.replace("\0", ""))
    text = "\n".join(kept)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip(" ,;\t")), None)
    if first is None:
        raise RosterError(
            f"{path} is empty. Put a header line in it (id,name,face_matching,"
            f"{','.join(channels)},expires) and one line per child."
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(lines[first]))
    header: list[str] = []
    header_line = 0
    prev_line = 0
    for cells in _readable(reader, path, result):
        start = prev_line + 1
        prev_line = reader.line_num
        if any(c.strip() for c in cells):
            header, header_line = [_norm_header(c) for c in cells], start
            break

    if "id" not in header:
        raise RosterError(
            f"{path}:{header_line}: the header has no 'id' column (found: {', '.join(h for h in header if h)}). "
            "The first line must name the columns, e.g. id,name,face_matching,"
            f"{','.join(channels)},expires"
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name:
            continue
        if name in seen:
            raise RosterError(
                f"{path}:{header_line}: column '{name}' appears twice in the header. Delete one of them."
            )
        seen[name] = i
    known = {"id", "name", "face_matching", "expires", *channels}
    for name in header:
        if name and name not in known:
            result.warnings.append(RosterProblem(
                path, header_line, f"unknown column '{name}' ignored (channels in photoguard.toml: {', '.join(channels)})"))
    if "face_matching" not in seen:
        result.warnings.append(RosterProblem(
            path, header_line, "no 'face_matching' column: no child can be matched, so no child is shown. Add the column."))
    for channel in channels:
        if channel not in seen:
            result.warnings.append(RosterProblem(
                path, header_line, f"no '{channel}' column: nobody has consent for {channel}. Add the column if parents gave it."))
    if "expires" not in seen:
        result.warnings.append(RosterProblem(
            path, header_line, "no 'expires' column: consents have no end date."))

    def cell(cells: list[str], name: str) -> str:
        i = seen.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    rows: list[tuple[int, ChildConsent]] = []
    for cells in _readable(reader, path, result):
        line = prev_line + 1
        prev_line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        child_id = cell(cells, "id")
        wrong = id_problem(child_id)
        if wrong:
            result.problems.append(RosterProblem(
                path, line, f"{wrong}." if not child_id else f"{wrong}; until then this child is not on the roster."))
            continue
        problems: list[str] = []
        name = cell(cells, "name")
        if name_problem(name):
            problems.append(name_problem(name))
            name = name[:MAX_NAME_CHARS]
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            problems.append("more cells than the header has columns (a stray comma or semicolon?)")
        face = _yes_no(cell(cells, "face_matching"))
        if face is None:
            problems.append(f"face_matching is '{cell(cells, 'face_matching')}': write yes or no")
        consent: dict[str, bool] = {}
        for channel in channels:
            value = _yes_no(cell(cells, channel))
            if value is None:
                problems.append(f"{channel} is '{cell(cells, channel)}': write yes or no")
            consent[channel] = value is True
        expires: date | None = None
        raw_expires = cell(cells, "expires")
        if raw_expires:
            try:
                if not _ISO_DATE.fullmatch(raw_expires):
                    raise ValueError
                expires = date.fromisoformat(raw_expires)
            except ValueError:
                problems.append(f"{UNREADABLE_EXPIRY}{raw_expires}': write the date as YYYY-MM-DD, e.g. 2026-08-31")
                expires = None
        problem = "; ".join(problems) or None
        if problem:
            result.problems.append(RosterProblem(path, line, f"child '{child_id}': {problem}. Until fixed: no consent."))
        rows.append((line, ChildConsent(
            child_id=child_id,
            name=name,
            face_matching=face is True,
            channels=consent,
            expires=expires,
            problem=problem,
        )))

    # Duplicate ids (compared ignoring case: enrol/Amy and enrol/amy are one folder on Windows and
    # macOS). Refusing the whole sync would keep the OLD consents, including any just withdrawn in
    # this same file, so instead every copy of the id becomes "no consent" and the rest syncs.
    by_key: dict[str, list[int]] = {}
    for line, row in rows:
        by_key.setdefault(row.child_id.lower(), []).append(line)
    emitted: set[str] = set()
    for line, row in rows:
        key = row.child_id.lower()
        dup_lines = by_key[key]
        if len(dup_lines) > 1:
            if key in emitted:
                continue
            emitted.add(key)
            where = ", ".join(str(n) for n in dup_lines)
            msg = f"id '{row.child_id}' is on lines {where}; each child must be on one line only"
            result.problems.append(RosterProblem(path, dup_lines[0], f"{msg}. Until fixed: no consent for this child."))
            row = ChildConsent(child_id=row.child_id, name=row.name, face_matching=False,
                               channels={c: False for c in channels}, expires=row.expires, problem=msg)
        result.rows.append(row)
        result.lines[row.child_id] = line
    result.problems.sort(key=lambda p: (p.line or 0))
    return result


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


def current_model() -> str:
    """The embedding model templates must come from to be compared (name and model file hash)."""
    from photoguard.engine.sface import model_id

    return model_id()


def load_templates(conn: sqlite3.Connection, model: str | None = None) -> list[Template]:
    """Every stored template of a child on the roster made by ``model`` (default: the current engine).
    A template of another model is never returned, so never compared; the next sync re-encodes it."""
    from photoguard.engine.identify import Template

    rows = conn.execute(
        "SELECT t.child_id, t.encoding FROM templates t JOIN children c ON c.id = t.child_id "
        "WHERE length(t.encoding) = 1024 AND t.model = ? ORDER BY t.child_id, t.id",
        (model or current_model(),)).fetchall()
    return [Template(r["child_id"], np.frombuffer(r["encoding"], dtype="<f8").astype(np.float64)) for r in rows]


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


def _check_rules(settings) -> str:
    """Changes when the rules for a good reference photo change: rejected photos are then checked again."""
    return (f"min_face_px={settings.min_face_px};sharpness={MIN_SHARPNESS};rival={RIVAL_FACE_RATIO};"
            f"threshold={settings.detect_threshold};model={current_model()}")


def child_folder(enrol: Path, child_id: str) -> Path:
    """enrol/<id>/, also when the folder's name differs in case (Amy vs amy, as typed in Excel)."""
    exact = enrol / child_id
    try:
        if exact.is_dir() or not enrol.is_dir():
            return exact
        for entry in enrol.iterdir():
            if entry.is_dir() and entry.name.lower() == child_id.lower():
                return entry
    except OSError:   # a name no folder can have (too long for the file system): there is no such folder
        pass
    return exact


def _photo_files(folder: Path) -> list[Path]:
    """The files in a child's folder, links to files included (so that they are listed and refused)."""
    try:
        if not folder.is_dir():
            return []
    except OSError:
        return []
    return sorted(p for p in folder.iterdir()
                  if (p.is_file() or (p.is_symlink() and not p.is_dir()))
                  and not p.name.startswith(".") and p.name.lower() not in IGNORED_FILES)


def _is_link(path: Path) -> bool:
    """``path`` or its child folder is a symbolic link: it may lead anywhere on the computer."""
    return path.is_symlink() or path.parent.is_symlink()


def _fingerprint(path: Path) -> str:
    """The photo's sha256; for a link, of where it points (a link's target is never read)."""
    if _is_link(path):
        return hashlib.sha256(b"link:" + os.fsencode(os.readlink(path) if path.is_symlink() else path)).hexdigest()
    return sha256_file(path)


def sharpness(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the face, grey, resized to SHARPNESS_WIDTH px and normalised to a
    fixed contrast, so a dark or a large photo scores like a bright or small one."""
    import cv2

    left, top, right, bottom = box
    crop = rgb[max(0, top):bottom, max(0, left):right]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    scale = SHARPNESS_WIDTH / grey.shape[1]
    size = (SHARPNESS_WIDTH, max(1, round(grey.shape[0] * scale)))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC).astype(np.float64)
    grey = (grey - grey.mean()) / max(grey.std(), 1.0) * 50.0
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


SECOND_FACE = "a second face"   # how a rejection for another face begins (``enrol --accept-largest`` re-checks them)


def rival_words(rivals: list, width: int, height: int) -> str:
    """"a second face, top right, at 58 % confidence: ..." — where the other faces are, never pixels."""
    from photoguard.photos.places import where_in_photo

    rivals = sorted(rivals, key=lambda f: -f.width)
    places = [f"{where_in_photo(f.box, width, height)}, at {round(float(f.score) * 100)} % confidence" for f in rivals]
    what = f"{SECOND_FACE}, {places[0]}"
    if len(places) > 1:
        what += f" (and {len(places) - 1} more: " + "; ".join(places[1:]) + ")"
    return (f"{what}: use a photo of this child alone, or if the other face is a poster or a picture, "
            f"not a person, {_ACCEPT_LARGEST_COMMAND}")


_ACCEPT_LARGEST_COMMAND = "run `photoguard enrol --accept-largest` to use the largest face"


def reason_on_page(reason: str | None) -> str:
    """A reference photo's rejection as the web page says it: the page has a button where the command
    line has ``--accept-largest``."""
    return (reason or "").replace(_ACCEPT_LARGEST_COMMAND, "use the button below to take the largest face")


def check_photo(path: Path, detector: FaceDetector, min_face_px: int,
                accept_largest: bool = False) -> tuple[np.ndarray | None, str | None]:
    """(encoding, None) for a usable reference photo, else (None, why not and what to do).

    ``accept_largest``: the manager has looked at the photo and says the other faces are not children
    (a poster, a picture on the wall): the largest face is taken as the child's."""
    from photoguard.engine.identify import encode_faces
    from photoguard.photos.images import ImageError, load_image

    if _is_link(path):
        return None, LINKED_PHOTO
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return None, "not a JPEG, PNG or HEIC photo: remove it from the folder"
    try:
        rgb = load_image(path).rgb
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # one odd file must not stop the enrolment of every other child
        return None, f"cannot read the photo ({type(exc).__name__}: {exc}): replace it with a JPEG, PNG or HEIC photo"
    faces = detector.detect(rgb)
    if not faces:
        return None, "no face found: use a photo where the child's face is clearly visible"
    face = max(faces, key=lambda f: f.width)
    # The detector's threshold is low on purpose (recall first), so a badge or a pattern can give
    # a small extra box. Only a face big enough to be mistaken for the child's counts as a second face.
    rivals = [f for f in faces if f is not face and f.width >= face.width * RIVAL_FACE_RATIO]
    if rivals and not accept_largest:
        return None, rival_words(rivals, rgb.shape[1], rgb.shape[0])
    if face.width < min_face_px:
        return None, f"face only {face.width} px wide, needs at least {min_face_px} px: use a closer photo"
    sharp = sharpness(rgb, face.box)
    if sharp < MIN_SHARPNESS:
        return None, f"too blurry (sharpness {sharp:.0f}, needs {MIN_SHARPNESS:.0f}): use a sharper photo"
    encoding = encode_faces(rgb, [face])[0]
    if encoding is None:
        return None, "face could not be measured (turned away or covered?): use a photo facing the camera"
    return encoding, None


def _accepts_largest(accept_largest: bool | frozenset[str], rel: str) -> bool:
    return accept_largest is True or (isinstance(accept_largest, frozenset) and rel in accept_largest)


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
            "SELECT child_id FROM templates UNION SELECT child_id FROM reference_photos")}
        for cid in sorted(holders - allowed):
            n = conn.execute("DELETE FROM templates WHERE child_id = ?", (cid,)).rowcount
            conn.execute("DELETE FROM reference_photos WHERE child_id = ?", (cid,))
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
        with db.transaction(conn):
            # Another sync may have withdrawn this child's consent while we were encoding.
            row = conn.execute("SELECT * FROM children WHERE id = ?", (cid,)).fetchone()
            if row is None or template_eligibility(_consent_from_row(row), today) is not None:
                continue
            conn.execute(
                "INSERT OR REPLACE INTO reference_photos (child_id, path, sha256, status, reason, checked_at) "
                "VALUES (?,?,?,?,?,?)", (cid, rel, sha, "rejected" if reason else "accepted", reason, _now()))
            if encoding is not None:
                conn.execute("INSERT INTO templates (child_id, photo_sha256, encoding, created_at, model) "
                             "VALUES (?,?,?,?,?)", (cid, sha, _encoding_bytes(encoding), _now(), model))

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
            s.templates = conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = ?", (cid,)).fetchone()[0]
            if s.templates < MIN_GOOD_PHOTOS:
                s.warning = (f"only {s.templates} good reference photo{'s' if s.templates != 1 else ''}: "
                             f"add at least {MIN_GOOD_PHOTOS} to enrol/{cid}/ so the child is recognised reliably")
        summaries.append(s)

    return SyncResult(
        csv=parsed.path, children=summaries, problems=parsed.problems, warnings=warnings, changes=changes,
        reduced=reduced, photos_checked=checked, photos_unchanged=unchanged, templates_erased=erased,
        scrub_pending=scrub_pending, seconds=time.monotonic() - started)


# ---------------------------------------------------------------- listing


@dataclass(frozen=True)
class ChildRow:
    consent: ChildConsent
    line: int | None
    templates: int
    photos_accepted: int
    photos_rejected: int
    updated_at: str


@dataclass(frozen=True)
class HistoryEntry:
    changed_at: str
    field: str
    old: str | None
    new: str | None


def list_children(conn: sqlite3.Connection) -> list[ChildRow]:
    """The roster as last synced, in CSV order, with template and photo counts."""
    consents = load_consents(conn)
    rows = conn.execute(
        "SELECT c.id, c.csv_line, c.updated_at, "
        "(SELECT COUNT(*) FROM templates t WHERE t.child_id = c.id) AS templates, "
        "(SELECT COUNT(*) FROM reference_photos p WHERE p.child_id = c.id AND p.status = 'accepted') AS ok, "
        "(SELECT COUNT(*) FROM reference_photos p WHERE p.child_id = c.id AND p.status = 'rejected') AS bad "
        "FROM children c ORDER BY c.csv_line, c.id").fetchall()
    return [ChildRow(consents[r["id"]], r["csv_line"], r["templates"], r["ok"], r["bad"], r["updated_at"]) for r in rows]


def child_history(conn: sqlite3.Connection, child_id: str) -> list[HistoryEntry]:
    """Every recorded change of this child's consent, oldest first (kept after the child leaves)."""
    return [HistoryEntry(r["changed_at"], r["field"], r["old"], r["new"]) for r in conn.execute(
        "SELECT changed_at, field, old, new FROM consent_history WHERE child_id = ? ORDER BY id", (child_id,))]


def expiring(conn: sqlite3.Connection, within_days: int, today: date | None = None) -> list[tuple[ChildConsent, int]]:
    """Children whose consent ends within ``within_days`` days (already expired ones too), with the days
    left (0 = last valid day is today, negative = expired that many days ago); soonest first."""
    today = today or date.today()
    out = [(c, (c.expires - today).days) for c in load_consents(conn).values()
           if c.expires is not None and (c.expires - today).days <= within_days]
    return sorted(out, key=lambda item: (item[1], item[0].child_id))


# ---------------------------------------------------------------- in the manager's words


@dataclass(frozen=True)
class ChildStanding:
    """One child of the roster as the manager reads it (``children``, ``enrol`` and the web page alike)."""
    face_matching: bool
    channels: dict[str, bool]    # what the line allows; every channel "no" while the line has a problem
    expires: str                 # "2026-08-31", "-" (no end date) or "not readable"
    status: str                  # "ok", "PROBLEM", "EXPIRED", or why the child is not matched
    problems: list[str]          # what needs the manager, in words, each saying what to do

    @property
    def has_problem(self) -> bool:
        return bool(self.problems)


def child_standing(consent: ChildConsent, templates: int, channels: tuple[str, ...] | list[str],
                   on: date) -> ChildStanding:
    """What a line of the roster means today. Fail closed in words too: a line with a problem shows "no"
    for every channel, an expiry that cannot be read is never "no end date", and a child who may be
    matched but has no usable reference photo is a problem (she can never be recognised, so never shown)."""
    problems: list[str] = []
    expiry_unreadable = bool(consent.problem) and UNREADABLE_EXPIRY in consent.problem
    if consent.problem:
        problems.append(f"the line in children.csv needs fixing: {consent.problem}. Until then: no consent")
    why = template_eligibility(consent, on)
    if why is None and templates == 0:
        problems.append(f"no usable reference photo — add one in enrol/{consent.child_id}/ "
                        "(until then this child cannot be recognised, so is always obscured)")
    if problems:
        status = "PROBLEM"
    elif why is None:
        status = "ok"
    elif consent.expired(on):
        status = "EXPIRED"
    else:
        status = why
    ok_line = not consent.problem
    return ChildStanding(
        face_matching=ok_line and consent.face_matching is True,
        channels={ch: ok_line and consent.channels.get(ch) is True for ch in channels},
        expires="not readable" if expiry_unreadable else (consent.expires.isoformat() if consent.expires else "-"),
        status=status, problems=problems)


def near_ids(conn: sqlite3.Connection, child_id: str, limit: int = 3) -> list[str]:
    """Roster ids (and ids of children who left) that look like ``child_id``: for a typo, "did you mean"."""
    import difflib

    known = {r[0] for r in conn.execute("SELECT id FROM children UNION SELECT DISTINCT child_id FROM consent_history")}
    by_lower: dict[str, str] = {k.lower(): k for k in sorted(known)}
    close = difflib.get_close_matches(child_id.lower(), list(by_lower), n=limit, cutoff=0.6)
    starts = [k for k in by_lower if k.startswith(child_id.lower()) and k not in close] if child_id else []
    return [by_lower[k] for k in [*close, *starts][:limit]]


def summary_words(summary: str | None) -> str:
    """A consent summary as stored in the history ("face_matching=yes facebook=no expires=never
    problem=...") as a sentence: "face matching yes, Facebook no, no end date, problem: ..."."""
    if not summary:
        return ""
    head, _, problem = summary.partition(" problem=")
    if summary.startswith("problem="):
        head, problem = "", summary[len("problem="):]
    words = []
    for part in head.split(" "):
        key, _, value = part.partition("=")
        if key == "expires":
            unreadable = value == "never" and UNREADABLE_EXPIRY in problem
            words.append("end date not readable" if unreadable else "no end date" if value == "never" else f"ends {value}")
        elif key == "face_matching":
            words.append(f"face matching {value}")
        elif key:
            words.append(f"{key.capitalize()} {value}")
    if problem:
        words.append(f"problem: {problem}")
    return ", ".join(words)


def history_words(entry: HistoryEntry) -> str:
    """One change of a child's consent in words (the time apart: see ``localtime.when_words``)."""
    def value(v: str | None) -> str:
        return {"never": "no end date", "none": "none"}.get(v or "", v or "")

    if entry.field == "added":
        return f"added to the roster: {summary_words(entry.new)}"
    if entry.field == "removed":
        return f"taken off the roster (was: {summary_words(entry.old)})"
    if entry.field.startswith("channel:"):
        return f"{entry.field[8:].capitalize()}: {entry.old} -> {entry.new}"
    name = {"expires": "end date"}.get(entry.field, entry.field.replace("_", " "))
    return f"{name}: {value(entry.old)} -> {value(entry.new)}"


def roster_version(conn: sqlite3.Connection) -> tuple:
    """Changes whenever a consent or a template changes (any process's sync), so workers reload in time."""
    return tuple(conn.execute(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM consent_history), (SELECT COUNT(*) FROM templates), "
        "(SELECT COALESCE(MAX(id), 0) FROM templates), (SELECT COUNT(*) FROM children)").fetchone())
