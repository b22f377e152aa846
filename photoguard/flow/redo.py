"""Check again: from the manager's pages, a photo or a day's photos decided again with today's roster and
settings (``reprocess``), and what came of it in words.

The web app never processes a photo while a watcher holds the home's lock. A request is a small JSON file
in ``.photoguard/redo-requests/`` (written whole: temp file, fsync, rename) and whoever holds the lock does
it: the watcher between new photos (``flow/upkeep``) or, when no watcher runs, ``photoguard serve`` in a
thread that holds the lock for the time of it (``run_waiting``). Each photo is done by
``reprocess.redo_photo`` and recorded in ``.photoguard/redo-outcomes/<id>.json`` before the next one; the
request file is deleted only once the outcome is written in full. A process killed half way leaves the
request, and the next holder of the lock goes on with the photos not recorded yet (a photo killed in the
middle of being made again is finished by reprocess itself: its original stays archived).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from photoguard.flow.redo_words import photo_line, summary
from photoguard.flow.reprocess import Redo, redo_photo
from photoguard.flow.watch_support import _disk_full
from photoguard.photos.durable import _write_text_atomic, display_name
from photoguard.photos.save import fsync_dir
from photoguard.store.db import transaction
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

REQUESTS = "redo-requests"
OUTCOMES = "redo-outcomes"
ACTOR = "manager (web)"
ASKED, CHECKED = "check_again_asked", "checked_again"   # events (the audit)
KEEP = 30                                              # outcome files kept, the newest


class RedoError(Exception):
    """What to check again cannot be asked for; the message says what to do."""


@dataclass(frozen=True)
class RedoRequest:
    id: str                       # sorts in the order asked
    asked_at: str
    asked: str                    # what the manager asked for, in words ("picnic.jpg", "the 4 photos of 24 Nov")
    photos: tuple[str, ...] = ()  # sha256 of each photo
    day: str | None = None        # YYYY-MM-DD: every photo that came in that day


@dataclass
class RedoOutcome:
    """A request as the pages show it: waiting, being done (how far), or done (in words)."""
    id: str
    asked_at: str
    asked: str
    state: str = "waiting"                             # 'waiting', 'working', 'done'
    todo: list[str] | None = None                      # the photos chosen (sha256), once work began
    done: list[dict] = field(default_factory=list)     # reprocess.Redo as a dict, one per photo done
    words: str = ""                                    # the whole outcome in a sentence, once done
    lines: list[str] = field(default_factory=list)     # a sentence per photo, once done
    finished_at: str | None = None
    problem: str | None = None                         # why it cannot go on now, in words

    @property
    def progress(self) -> str:
        if self.state == "done":
            return self.words
        if self.todo is None:
            return f"Waiting to check {self.asked} again."
        return f"Checking {self.asked} again: {len(self.done)} of {len(self.todo)} done."


def _folder(home: Home, name: str) -> Path:
    folder = home.state / name
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _write_json(path: Path, data: dict) -> None:
    """Whole or not at all: a temp file, fsync, rename, fsync of the folder."""
    _write_text_atomic(path, json.dumps(data, ensure_ascii=False), private=True)


def _day_words(day: date, today: date) -> str:
    return "today" if day == today else "yesterday" if (today - day).days == 1 else f"on {day:%d %b %Y}"


def day_photos(conn: sqlite3.Connection, day: date) -> list[str]:
    """The photos that came in on ``day`` (local time) and were finished, oldest first (sha256)."""
    return [r[0] for r in conn.execute(
        "SELECT sha256 FROM photos WHERE state = 'done' AND outcome IS NOT 'failed' AND substr(received_at, 1, 10) = ? "
        "ORDER BY received_at, rowid", (day.isoformat(),))]


def days_with_photos(conn: sqlite3.Connection, limit: int = 31) -> list[tuple[date, int]]:
    """(day, photos that came in that day), newest first: the days a manager may check again."""
    rows = conn.execute(
        "SELECT substr(received_at, 1, 10) AS day, COUNT(*) FROM photos WHERE state = 'done' AND outcome IS NOT 'failed' "
        "GROUP BY day ORDER BY day DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for day, count in rows:
        try:
            out.append((date.fromisoformat(day), count))
        except (TypeError, ValueError):
            continue
    return out


def ask(home: Home, conn: sqlite3.Connection, photos: Sequence[str] = (), day: date | None = None,
        today: date | None = None) -> RedoRequest:
    """Write down a request to check photos again (by sha256) or a day's photos; RedoError if there is nothing
    to check. An identical request not yet begun is not asked twice."""
    today = today or date.today()
    photos = tuple(dict.fromkeys(photos))
    if photos:
        rows = [conn.execute("SELECT source, state, outcome FROM photos WHERE sha256 = ?", (sha,)).fetchone()
                for sha in photos]
        if any(r is None or r["state"] != "done" or r["outcome"] == "failed" for r in rows):
            raise RedoError("PhotoGuard has no finished photo like that to check again. Open Ready to post again "
                            "and press Check again beside the photo there.")
        asked = display_name(rows[0]["source"]) if len(rows) == 1 else f"{len(rows)} photos"
    elif day is not None:
        count = len(day_photos(conn, day))
        if not count:
            raise RedoError(f"No photo came in {_day_words(day, today)}, so there is nothing to check again.")
        asked = f"the {count} photo{'' if count == 1 else 's'} that came in {_day_words(day, today)}"
    else:
        raise RedoError("Choose a photo or a day to check again.")
    for waiting in pending(home):
        if waiting.photos == photos and waiting.day == (day.isoformat() if day else None) and outcome(home, waiting.id) is None:
            return waiting
    request = RedoRequest(f"{time.time_ns():020d}-{secrets.token_hex(3)}", now_iso(), asked, photos,
                          day.isoformat() if day else None)
    _write_json(_folder(home, REQUESTS) / f"{request.id}.json", asdict(request))
    with transaction(conn):
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                     (now_iso(), ASKED, photos[0] if len(photos) == 1 else None, f"check again: {asked}", ACTOR))
    return request


def pending(home: Home) -> list[RedoRequest]:
    """The requests not done yet, oldest first. A file that cannot be read is set aside (renamed .unreadable)."""
    folder = home.state / REQUESTS
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(RedoRequest(str(data["id"]), str(data["asked_at"]), str(data["asked"]),
                                   tuple(str(s) for s in data.get("photos") or ()), data.get("day")))
        except FileNotFoundError:
            continue   # done meanwhile
        except (OSError, ValueError, KeyError, TypeError):
            path.rename(path.with_suffix(".unreadable"))
    return out


def outcome(home: Home, request_id: str) -> RedoOutcome | None:
    path = home.state / OUTCOMES / f"{request_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RedoOutcome(**data)
    except (OSError, ValueError, TypeError):
        return None


def recent(home: Home, limit: int = 5) -> list[RedoOutcome]:
    """The newest requests first: waiting ones, the one being done, and the last ones done."""
    found: dict[str, RedoOutcome] = {}
    folder = home.state / OUTCOMES
    if folder.is_dir():
        for path in sorted(folder.glob("*.json"), reverse=True)[:limit]:
            got = outcome(home, path.stem)
            if got is not None:
                found[got.id] = got
    for request in pending(home):
        found.setdefault(request.id, RedoOutcome(request.id, request.asked_at, request.asked))
    return [found[k] for k in sorted(found, reverse=True)[:limit]]


def _save(home: Home, got: RedoOutcome) -> None:
    _write_json(_folder(home, OUTCOMES) / f"{got.id}.json", asdict(got))


def note_problem(home: Home, problem: str) -> None:
    """Why the oldest request cannot be done now (a roster that cannot be read...), for the pages."""
    waiting = pending(home)
    if waiting:
        got = outcome(home, waiting[0].id) or RedoOutcome(waiting[0].id, waiting[0].asked_at, waiting[0].asked)
        got.problem = problem
        _save(home, got)


def _choose(conn: sqlite3.Connection, request: RedoRequest) -> list[str]:
    if request.day:
        return day_photos(conn, date.fromisoformat(request.day))
    return list(request.photos)


def _name_of(conn: sqlite3.Connection, sha: str) -> str:
    row = conn.execute("SELECT source FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    return display_name(row["source"]) if row else "a photo no longer on record"


def _one(processor, sha: str, today: date | None) -> Redo:
    row = processor.conn.execute("SELECT state, outcome FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    if row is None or row["state"] != "done" or row["outcome"] == "failed":
        return Redo(_name_of(processor.conn, sha), sha, "skipped", "not finished by PhotoGuard", "unfinished")
    return redo_photo(processor, sha, today)


def work_one(processor, log: logging.Logger | None = None, today: date | None = None) -> bool:
    """Check the next photo of the oldest request again (or finish the request). False when none waits.

    The caller holds the home's lock and has the roster synced. Each photo's outcome is written down before
    the next is begun."""
    home, conn = processor.home, processor.conn
    waiting = pending(home)
    if not waiting:
        return False
    request = waiting[0]
    got = outcome(home, request.id) or RedoOutcome(request.id, request.asked_at, request.asked)
    got.problem = None
    if got.state != "done":
        if got.todo is None:
            got.todo, got.state = _choose(conn, request), "working"
            _save(home, got)
        done = {item["sha256"] for item in got.done}
        left = [sha for sha in got.todo if sha not in done]
        if left:
            try:
                redo = _one(processor, left[0], today)
            except Exception as exc:
                if _disk_full(exc):
                    raise   # the photo is finished once there is room: its original stays archived
                # Said for this photo, and the others go on (a photo that breaks every time must not
                # stop the watcher or come round again and again).
                if log is not None:
                    log.error(f"check again: a photo could not be made again ({type(exc).__name__})")
                redo = Redo(_name_of(conn, left[0]), left[0], "failed", type(exc).__name__, "failed")
            got.done.append(asdict(redo))
            _save(home, got)
        if len(left) <= 1:
            _finish(home, conn, got, log)
    if got.state == "done":
        (home.state / REQUESTS / f"{request.id}.json").unlink(missing_ok=True)
        fsync_dir(home.state / REQUESTS)
    return True


def _finish(home: Home, conn: sqlite3.Connection, got: RedoOutcome, log: logging.Logger | None) -> None:
    names = {r["id"]: r["name"] for r in conn.execute("SELECT id, name FROM children") if r["name"]}
    got.words = summary(got.done, names)
    got.lines = [photo_line(item, names) for item in got.done]
    got.state, got.finished_at = "done", now_iso()
    with transaction(conn):
        sha = got.done[0]["sha256"] if len(got.done) == 1 else None
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                     (now_iso(), CHECKED, sha, got.words, ACTOR))
    _save(home, got)
    if log is not None:
        counts: dict[str, int] = {}
        for item in got.done:
            counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
        log.info(f"checked again as the manager asked ({got.asked}): "
                 + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for old in sorted((home.state / OUTCOMES).glob("*.json"), reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)


def run_waiting(root: Path, log: logging.Logger | None = None,
                opener: Callable[[Home], object] | None = None) -> None:
    """Take the home's lock, do every waiting request, let the lock go: ``serve``'s side, when no watcher runs.
    Returns at once when another process holds the lock (a watcher does the requests itself). Never raises:
    what stops it is written where the pages show it."""
    from photoguard.flow.batch import open_processor, resume_interrupted
    from photoguard.store.home import open_home
    from photoguard.store.lock import CHECKING_AGAIN, HomeBusy, hold_lock
    from photoguard.store.roster_csv import RosterError

    while True:
        try:
            home = open_home(root)   # today's settings, as `photoguard reprocess` would read them
        except Exception as exc:  # noqa: BLE001 — said on the page, never a crash of the web app
            if log is not None:
                log.error("check again: the home could not be opened (%s)", type(exc).__name__)
            return
        if not pending(home):
            return
        try:
            with hold_lock(home, CHECKING_AGAIN):
                processor = (opener or (lambda h: open_processor(h, echo=lambda _: None)))(home)
                try:
                    # A photo a stopped web app left half made is finished first, as a watcher would at start.
                    resume_interrupted(processor)
                    while work_one(processor, log):
                        pass
                finally:
                    processor.conn.close()
        except HomeBusy:
            return
        except RosterError as exc:
            note_problem(home, f"Waiting: the children's list cannot be read ({exc}). Fix it on the Children page, "
                               "then open this page again.")
            return
        except Exception as exc:  # noqa: BLE001 — logged by kind only: its message may name a child
            if log is not None:
                log.error("check again stopped: %s", type(exc).__name__)
            note_problem(home, "Waiting: something stopped PhotoGuard checking again (the details are in web.log in "
                               "the logs folder). Open this page again to try once more.")
            return
