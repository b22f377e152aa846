"""Reading enrol/children.csv as Excel and LibreOffice write it: one child per line, every problem said on its
line, a bad line never stops the rest.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from photoguard.rules.consent import ChildConsent

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


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
