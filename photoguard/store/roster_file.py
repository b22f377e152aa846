"""Editing enrol/children.csv for the manager, in her own format, then syncing as ``enrol`` does.

The CSV stays the source of truth that ``photoguard enrol`` reads. A change rewrites only the line of
the child concerned (or adds one at the end); every other byte of the file is kept: encoding and BOM,
delimiter, line endings, column order, extra columns, comments, blank lines and the order of rows.
The file is replaced atomically, so Excel, ``enrol`` or the watcher never read half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from photoguard.photos.save import fsync_dir
from photoguard.store.home import Home
from photoguard.store.roster_csv import (MAX_ID_CHARS, MAX_LINE_CHARS, NO, YES, _delimiter, _norm_header, _yes_no,
                                         id_problem, is_comment, name_problem)

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r|$)")


class RosterFileError(Exception):
    """The roster file cannot be changed as asked; the message says what to do."""


@dataclass
class ChildEntry:
    """One child's line of the roster, as the form shows it."""
    child_id: str
    name: str = ""
    face_matching: bool = False
    channels: dict[str, bool] = field(default_factory=dict)
    expires: date | None = None


@dataclass
class _Record:
    raw: str                  # the record's text exactly as in the file, line ending included
    cells: list[str]


@dataclass
class _RosterFile:
    path: Path
    encoding: str             # 'utf-8-sig', 'utf-8', 'utf-16' or 'cp1252'
    newline: str
    delimiter: str
    records: list[_Record]
    header_at: int | None     # index into records
    fingerprint: str          # sha256 of the bytes read
    yes: str = "yes"
    no: str = "no"

    @property
    def header(self) -> list[str]:
        return [_norm_header(c) for c in self.records[self.header_at].cells] if self.header_at is not None else []


def fingerprint(path: Path) -> str:
    """Identifies the file's current content: a form carries it so a change made meanwhile is not overwritten."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return "none"


def _split_records(text: str, delimiter: str) -> list[_Record]:
    """The file as records, each with its exact text. A line longer than any child's line (which the
    roster does not read either) is kept as it is, unread, and never stops a change to another line."""
    records: list[_Record] = []
    chunk: list[str] = []
    for line in (m.group(0) for m in _LINE.finditer(text) if m.group(0)):
        if len(line) > MAX_LINE_CHARS:
            records += _parse(chunk, delimiter)
            records.append(_Record(line, []))
            chunk = []
        else:
            chunk.append(line)
    return records + _parse(chunk, delimiter)


def _parse(lines: list[str], delimiter: str) -> list[_Record]:
    reader = csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delimiter)
    records, used = [], 0
    try:
        for cells in reader:
            end = reader.line_num
            records.append(_Record("".join(lines[used:end]), cells))
            used = end
    except csv.Error:   # what is left cannot be split into cells: kept as it is, unread
        pass
    if used < len(lines):   # trailing blank lines the reader skipped
        records.extend(_Record(line, []) for line in lines[used:])
    return records


def _read(path: Path) -> _RosterFile:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _RosterFile(path, "utf-8-sig", "\r\n", ",", [], None, "none")
    except OSError as exc:
        raise RosterFileError(f"cannot read {path}: {exc.strerror}. Close it in Excel and try again.")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, text = "utf-16", raw.decode("utf-16")
    else:
        try:
            text = raw.decode("utf-8-sig")
            encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        except UnicodeDecodeError:
            encoding, text = "cp1252", raw.decode("cp1252", errors="replace")
    newline = next((m.group(0) for m in re.finditer(r"\r\n|\n|\r", text)), "\r\n")
    # Comment lines (the starter file from `init` begins with some) are neither the header nor a child.
    first = next((line for line in text.splitlines() if line.strip(" ,;\t") and not is_comment(line)), "")
    delimiter = _delimiter(first) if first else ","
    records = _split_records(text, delimiter)
    header_at = next((i for i, r in enumerate(records) if any(c.strip() for c in r.cells) and not is_comment(r.raw)),
                     None)
    doc = _RosterFile(path, encoding, newline, delimiter, records, header_at, hashlib.sha256(raw).hexdigest())
    # Write yes/no the way the manager does ("Yes", "Y", "1" ...), taken from the first she wrote.
    if header_at is not None:
        header = doc.header
        flags = [i for i, h in enumerate(header) if h != "id" and h != "name" and h != "expires"]
        values = [r.cells[i].strip() for r in records[header_at + 1:] for i in flags if i < len(r.cells)]
        doc.yes = next((v for v in values if v.lower() in YES), "yes")
        doc.no = next((v for v in values if v and v.lower() in NO), "no")
    return doc


def _row_index(doc: _RosterFile, child_id: str) -> int | None:
    if doc.header_at is None or "id" not in doc.header:
        return None
    col = doc.header.index("id")
    for i in range(doc.header_at + 1, len(doc.records)):
        cells = doc.records[i].cells
        if col < len(cells) and cells[col].strip().lower() == child_id.lower():
            return i
    return None


def read_child(home: Home, child_id: str) -> ChildEntry | None:
    """The child's line as the CSV says it now (the form starts from the file, not the database)."""
    doc = _read(home.roster_csv)
    i = _row_index(doc, child_id)
    if i is None:
        return None
    header, cells = doc.header, doc.records[i].cells

    def cell(name: str) -> str:
        j = header.index(name) if name in header else None
        return cells[j].strip() if j is not None and j < len(cells) else ""

    expires = None
    try:
        expires = date.fromisoformat(cell("expires")) if cell("expires") else None
    except ValueError:
        expires = None
    return ChildEntry(child_id=cell("id"), name=cell("name"), face_matching=_yes_no(cell("face_matching")) is True,
                      channels={ch: _yes_no(cell(ch)) is True for ch in home.settings.channels}, expires=expires)


def _format(doc: _RosterFile, cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=doc.delimiter, lineterminator=doc.newline).writerow(cells)
    return buf.getvalue()


def _ensure_columns(doc: _RosterFile, names: list[str]) -> None:
    if doc.header_at is None:
        doc.records.append(_Record("", list(names)))
        doc.header_at = len(doc.records) - 1
        doc.records[doc.header_at].raw = _format(doc, names)
        return
    header_rec = doc.records[doc.header_at]
    missing = [n for n in names if n not in doc.header]
    if missing:
        header_rec.cells = [*header_rec.cells, *missing]
        header_rec.raw = _format(doc, header_rec.cells)


def _validate(entry: ChildEntry) -> None:
    if id_problem(entry.child_id):
        if entry.child_id and len(entry.child_id) > MAX_ID_CHARS:
            raise RosterFileError(f"The child's id is {len(entry.child_id)} characters long: write at most "
                                  f"{MAX_ID_CHARS} (for example amy-b). It names the folder of the child's reference photos.")
        raise RosterFileError("The child's id may use only letters, digits, '-' and '_' (for example amy-b). "
                              "It names the folder of the child's reference photos.")
    wrong = name_problem(entry.name)
    if wrong:
        raise RosterFileError(f"{wrong[0].upper()}{wrong[1:]}.")


def _write(doc: _RosterFile, expect: str | None) -> None:
    if expect is not None and fingerprint(doc.path) != expect:
        raise RosterFileError(f"{doc.path.name} was changed somewhere else (in Excel?) since this page was opened. "
                              "Nothing was saved: open the page again and make the change once more.")
    text = "".join(r.raw for r in doc.records)
    encoding = doc.encoding
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        # A new name the old Windows encoding cannot hold: UTF-8 with a BOM, which Excel also reads.
        data = text.encode("utf-8-sig")
    doc.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.path.with_name(f".{doc.path.name}.{os.getpid()}.tmp")
    mode = doc.path.stat().st_mode & 0o777 if doc.path.exists() else 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, doc.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(doc.path.parent)


def save_child(home: Home, entry: ChildEntry, *, new: bool, expect: str | None = None) -> None:
    """Add the child's line (``new``) or rewrite it in place, keeping every other line as it is."""
    _validate(entry)
    doc = _read(home.roster_csv)
    channels = list(home.settings.channels)
    _ensure_columns(doc, ["id", "name", "face_matching", *channels, "expires"])
    header = doc.header
    i = _row_index(doc, entry.child_id)
    if new and i is not None:
        raise RosterFileError(f"There is already a child with the id '{entry.child_id}'. Choose another id, "
                              "or open that child's page to change it.")
    if not new and i is None:
        raise RosterFileError(f"'{entry.child_id}' is not in {home.roster_csv.name} any more. "
                              "Open the list of children again.")
    cells = list(doc.records[i].cells) if i is not None else []
    cells += [""] * (len(header) - len(cells))
    values = {"id": entry.child_id, "name": entry.name.strip(),
              "face_matching": doc.yes if entry.face_matching else doc.no,
              "expires": entry.expires.isoformat() if entry.expires else ""}
    values.update({ch: doc.yes if entry.channels.get(ch) else doc.no for ch in channels})
    for name, value in values.items():
        cells[header.index(name)] = value
    line = _format(doc, cells)
    if i is None:
        if doc.records and not doc.records[-1].raw.endswith(("\n", "\r")):
            doc.records[-1].raw += doc.newline
        doc.records.append(_Record(line, cells))
    else:
        old = doc.records[i].raw
        ending = old[len(old.rstrip("\r\n")):]
        doc.records[i] = _Record(line.rstrip("\r\n") + ending, cells)
    _write(doc, expect)


def remove_child(home: Home, child_id: str, *, expect: str | None = None) -> None:
    """Take the child's line out of the roster (``enrol`` then erases their consent and templates)."""
    doc = _read(home.roster_csv)
    i = _row_index(doc, child_id)
    if i is None:
        raise RosterFileError(f"'{child_id}' is not in {home.roster_csv.name}. Open the list of children again.")
    del doc.records[i]
    _write(doc, expect)
