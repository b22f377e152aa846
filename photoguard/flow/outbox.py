"""The outbox after publishing: which files are still there, collected or posted; re-checking them when a
consent changes; and the take-down list for photos already out in the world.

Collection is a known event, never a guess. PhotoGuard follows every file it put in an outbox by its
inode (renamed within the outbox), by its name (an app that saves an edit as a new file under the same
name) and by its content (a copy under another name). A file none of these finds any more has left the
outbox: it was collected, and that is recorded once. The manager can also mark a file posted
(``photoguard posted``, or the web app), whether it is still in the outbox or not.

When a consent goes (withdrawn, expired, a channel turned off), every file still in the outbox that shows
the child is re-made from the archived original with the child obscured, or removed; every file already
collected or posted that shows the child is on the take-down list until the manager marks it taken down.

History is appended, never rewritten: a re-made file is a new ``outbox_files`` row that replaces the old
one, and the old row keeps saying what it showed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from photoguard.photos.images import sha256_file
from photoguard.rules.consent import may_show
from photoguard.rules.decide import SHOWN
from photoguard.store import db
from photoguard.store.db import transaction
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

COLLECTED, REPLACED, REMOVED = "collected", "replaced", "removed"

# The library the CLI and the web app call (kept stable).
__all__ = [
    "OutboxError", "OutboxPhoto", "TakedownChild", "TakedownItem",
    "list_outbox", "outbox_photo", "find_outbox_photo", "mark_posted", "mark_all_posted", "takedown_list",
    "mark_taken_down",
    "sweep", "record_outbox_file", "when_words",
]


class OutboxError(Exception):
    """A photo could not be found in an outbox or cannot be marked; the message says what to do."""


@dataclass(frozen=True)
class OutboxPhoto:
    """A file PhotoGuard put in a channel's outbox, and where it is now."""
    id: int                  # stable (outbox_files.id): the web app serves the photo by this id
    channel: str
    name: str                # its file name now (the manager may have renamed it), else when it left
    path: Path | None        # where it is now; None once it has left the outbox
    source: str              # the photo's name as dropped into the inbox
    photo_sha256: str
    created: str             # when PhotoGuard put it there (ISO time)
    posted: str | None       # when the manager marked it posted
    posted_by: str | None
    collected: str | None    # when PhotoGuard noticed it had left the outbox
    folder: str = ""         # its folder inside outbox/<channel>/ ("Room 2/Sports day"), "" at the top

    @property
    def in_outbox(self) -> bool:
        return self.path is not None

    @property
    def shown_name(self) -> str:
        """The name a person reads: with its folder inside the channel's outbox, if any."""
        return f"{self.folder}/{self.name}" if self.folder else self.name


@dataclass(frozen=True)
class TakedownChild:
    child_id: str
    name: str                # the roster's name, else the id (a child erased from the roster)
    reason: str              # why the child may not be shown now: "no consent for facebook", ...


@dataclass(frozen=True)
class TakedownItem:
    """A photo out in the world (posted or collected) showing a child whose consent has gone."""
    file_id: int             # outbox_files.id: mark_taken_down takes this
    channel: str
    name: str                # the file's name in the outbox
    source: str              # the photo's name as dropped into the inbox
    photo_sha256: str
    out_since: str           # when it was marked posted, else when it was collected (ISO time)
    how: str                 # 'posted' or 'collected'
    children: tuple[TakedownChild, ...]

    def describe(self) -> str:
        who = "; ".join(f"{c.name} ({c.reason})" for c in self.children)
        return f"#{self.file_id} {self.channel}: {self.name} — {self.how} {when_words(self.out_since)} — shows {who}"


def when_words(iso: str | None) -> str:
    """'today 14:05' or '24 Nov 2026 14:05' in local time, for a person (see ``localtime``)."""
    from photoguard.store.localtime import when_words as words

    return words(iso)


# --- recording files put into the outbox ------------------------------------------------------------


def record_outbox_file(home: Home, conn: sqlite3.Connection, sha: str, channel: str, path: Path, *,
                       shown: Iterable[int] | None = None, made: str = "processed",
                       file_sha256: str | None = None, replaces: int | None = None) -> int:
    """Record a file just put into ``outbox/<channel>/``; call it in the transaction that records the output.

    ``shown``: the faces (``faces.idx``) left visible in the file; None = as decided for that channel
    (``face_actions``). Returns the file's id.
    """
    if shown is None:
        shown = _decided_shown(conn, sha, channel)
    return _insert_file(home, conn, sha, channel, Path(path), shown, made, file_sha256, replaces, follow=True)


def _decided_shown(conn: sqlite3.Connection, sha: str, channel: str) -> list[int]:
    """The faces shown on ``channel`` as decided when the photo was processed."""
    return [r[0] for r in conn.execute(
        "SELECT face_idx FROM face_actions WHERE photo_sha256 = ? AND channel = ? AND action = ?", (sha, channel, SHOWN))]


def _insert_file(home: Home, conn: sqlite3.Connection, sha: str, channel: str, path: Path, shown: Iterable[int],
                 made: str, file_sha256: str | None, replaces: int | None, follow: bool) -> int:
    """``follow``: the file at ``path`` is ours, so follow its inode from now on."""
    device = inode = None  # not followed by inode: found by name or content, else collected at the next sweep
    if follow:
        try:
            st = os.stat(path, follow_symlinks=False)
            device, inode = st.st_dev, st.st_ino
        except FileNotFoundError:
            pass
    if file_sha256 is None:
        file_sha256 = _hash_if_there(path)
    cur = conn.execute(
        "INSERT INTO outbox_files (photo_sha256, channel, path, file_sha256, device, inode, shown, made, replaces, "
        "created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (sha, channel, str(path.relative_to(home.root)), file_sha256, device, inode,
         json.dumps(sorted(set(shown))), made, replaces, now_iso()))
    return int(cur.lastrowid)


def _hash_if_there(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def _adopt_untracked(home: Home, conn: sqlite3.Connection) -> None:
    """Outputs recorded without an outbox file row (a home from an earlier version, or a release that only
    wrote ``outputs``): start following them now."""
    rows = conn.execute(
        "SELECT o.* FROM outputs o WHERE o.removed_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_files f "
        "WHERE f.photo_sha256 = o.photo_sha256 AND f.channel = o.channel AND f.path = o.path "
        "AND (f.file_sha256 IS o.file_sha256 OR f.created_at >= o.created_at))").fetchall()
    for o in rows:
        path = home.root / o["path"]
        shown = _decided_shown(conn, o["photo_sha256"], o["channel"])
        # A file at that name with other bytes is not followed by its inode (it may not be ours).
        ours = o["file_sha256"] is None or _hash_if_there(path) == o["file_sha256"]
        _insert_file(home, conn, o["photo_sha256"], o["channel"], path, shown, "recorded", o["file_sha256"], None,
                     follow=ours)


# --- where our files are now ------------------------------------------------------------------------


def _scan(folder: Path) -> dict[Path, os.stat_result]:
    """The regular files in one channel's outbox, subfolders included (a file moved into
    ``outbox/facebook/done/`` is still in the outbox), not our own dot-named temporary files."""
    files: dict[Path, os.stat_result] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                files[path] = st
    return files


def _locate(home: Home, rows: list[sqlite3.Row]) -> dict[int, Path | None]:
    """Where each of our current files is in its channel's outbox, or None when it has left.

    By inode first (renamed), then by the name we gave it (saved over by an editor), then by content
    (copied to another name and the original taken away). Newest first: an inode number can be reused
    by a later file once the one it belonged to has gone. Each file in the folder is ours at most once.
    """
    found: dict[int, Path] = {}
    by_channel: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        by_channel.setdefault(row["channel"], []).append(row)
    for channel, group in by_channel.items():
        group = sorted(group, key=lambda r: r["id"], reverse=True)
        files = _scan(home.outbox_for(channel))
        by_inode = {(st.st_dev, st.st_ino): p for p, st in files.items()}
        taken: set[Path] = set()

        def claim(row: sqlite3.Row, path: Path | None) -> None:
            if path is not None and path not in taken and row["id"] not in found:
                found[row["id"]] = path
                taken.add(path)

        for row in group:
            if row["inode"] is not None:
                claim(row, by_inode.get((row["device"], row["inode"])))
        for row in group:
            if row["id"] not in found and (home.root / row["path"]) in files:
                claim(row, home.root / row["path"])
        missing = [r for r in group if r["id"] not in found and r["file_sha256"]]
        if missing:
            hashes = {p: _hash_if_there(p) for p in files if p not in taken}
            for row in missing:
                claim(row, next((p for p, h in hashes.items() if h == row["file_sha256"] and p not in taken), None))
    return {row["id"]: found.get(row["id"]) for row in rows}


def _current(conn: sqlite3.Connection, channel: str | None = None) -> list[sqlite3.Row]:
    sql = ("SELECT f.*, COALESCE(p.source, f.path) AS source FROM outbox_files f "
           "LEFT JOIN photos p ON p.sha256 = f.photo_sha256 WHERE f.ended IS NULL")
    args: tuple = ()
    if channel is not None:
        sql += " AND f.channel = ?"
        args = (channel,)
    return conn.execute(sql + " ORDER BY f.id", args).fetchall()


def sweep(home: Home, conn: sqlite3.Connection) -> dict[int, Path | None]:
    """Record every file of ours that has left its outbox as collected (once, with the time it was noticed).

    Returns where each file still in an outbox is now (id -> path). Holds the database's write lock
    while it looks, so a re-render in another process is never mistaken for a collection.
    """
    with transaction(conn):
        _adopt_untracked(home, conn)
        rows = _current(conn)
        where = _locate(home, rows)
        now, root = now_iso(), str(home.root)
        for row in rows:
            found = where[row["id"]]
            if found is None:
                conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                             (COLLECTED, now, row["id"]))
                _event(conn, "collected", row["photo_sha256"],
                       f"{row['channel']}: {_last_name(row)}: left the outbox")
            elif str(found) != f"{root}/{row['seen_path'] or row['path']}":
                # Renamed: remember the name the manager gave it, to name it by that later.
                conn.execute("UPDATE outbox_files SET seen_path = ? WHERE id = ?",
                             (str(found.relative_to(home.root)), row["id"]))
    return {k: v for k, v in where.items() if v is not None}


def _last_name(row: sqlite3.Row) -> str:
    """The file's name as last seen in the outbox."""
    return Path(row["seen_path"] or row["path"]).name


def _event(conn: sqlite3.Connection, kind: str, sha: str | None, detail: str, child: str | None = None) -> None:
    conn.execute("INSERT INTO events (at, kind, photo_sha256, child_id, detail) VALUES (?,?,?,?,?)",
                 (now_iso(), kind, sha, child, detail))


# --- the outbox as the manager sees it --------------------------------------------------------------


def _photo(row: sqlite3.Row, path: Path | None) -> OutboxPhoto:
    return OutboxPhoto(
        id=row["id"], channel=row["channel"], name=path.name if path else _last_name(row), path=path,
        source=row["source"], photo_sha256=row["photo_sha256"], created=row["created_at"],
        posted=row["posted_at"], posted_by=row["posted_by"],
        collected=row["ended_at"] if row["ended"] == COLLECTED else None, folder=_folder(row))


def _folder(row: sqlite3.Row) -> str:
    """The file's folder inside its channel's outbox, as last seen ("outbox/facebook/Room 2/x.jpg" -> "Room 2")."""
    parts = Path(row["seen_path"] or row["path"]).parts
    return "/".join(parts[2:-1]) if len(parts) > 3 and parts[0] == "outbox" else ""


def _check_channel(home: Home, channel: str) -> None:
    if channel not in home.settings.channels:
        raise OutboxError(f"unknown channel '{channel}'; channels are {', '.join(home.settings.channels)} "
                          "(set in photoguard.toml).")


def list_outbox(home: Home, conn: sqlite3.Connection, channel: str | None = None) -> list[OutboxPhoto]:
    """The photos in the outbox now (one channel, or every channel), newest first.

    Notes any file that has left the outbox as collected first (see ``sweep``)."""
    if channel is not None:
        _check_channel(home, channel)
    where = sweep(home, conn)
    rows = [r for r in _current(conn, channel) if r["id"] in where]
    return [_photo(r, where[r["id"]]) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


def outbox_photo(home: Home, conn: sqlite3.Connection, file_id: int) -> OutboxPhoto:
    """One outbox file by id, with where it is now (``path`` None once it has left the outbox).

    Read only; the path is always a regular file inside that channel's outbox folder. Anything but a
    known number (text from a request included) raises OutboxError."""
    try:
        number = int(file_id)
    except (TypeError, ValueError):
        raise OutboxError(f"{str(file_id)[:40]!r} is not an outbox photo number; see `photoguard posted --list`.") from None
    row = conn.execute("SELECT f.*, COALESCE(p.source, f.path) AS source FROM outbox_files f "
                       "LEFT JOIN photos p ON p.sha256 = f.photo_sha256 WHERE f.id = ?", (number,)).fetchone()
    if row is None:
        raise OutboxError(f"there is no outbox photo number {number}; see `photoguard posted --list`.")
    path = None
    if row["ended"] is None:
        path = _where_last_seen(home, conn, row) or _locate(home, _current(conn, row["channel"])).get(row["id"])
    return _photo(row, path)


def _where_last_seen(home: Home, conn: sqlite3.Connection, row: sqlite3.Row) -> Path | None:
    """The file still where it was last seen, with its inode, and no newer file claims that inode
    (a quick answer for serving one photo; else the caller looks through the folder)."""
    if row["inode"] is None:
        return None
    path = home.root / (row["seen_path"] or row["path"])
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (row["device"], row["inode"]):
        return None
    newer = conn.execute("SELECT 1 FROM outbox_files WHERE channel = ? AND device = ? AND inode = ? AND id > ? "
                         "AND ended IS NULL", (row["channel"], row["device"], row["inode"], row["id"])).fetchone()
    return None if newer else path


def find_outbox_photo(home: Home, conn: sqlite3.Connection, name: str, channel: str) -> OutboxPhoto:
    """A photo of ``channel`` by its file name now (or its name without ``.jpg``), else by the name it had
    when it left the outbox (the latest such)."""
    _check_channel(home, channel)
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".jpg", ".jpeg")) else name
    if "/" in name:   # "Room 2/x.jpg": that folder only
        in_outbox = [p for p in list_outbox(home, conn, channel)
                     if name == p.shown_name or stem == p.shown_name.rsplit(".", 1)[0]]
    else:
        in_outbox = [p for p in list_outbox(home, conn, channel) if p.name == name or Path(p.name).stem == stem]
    if len(in_outbox) == 1:
        return in_outbox[0]
    if len(in_outbox) > 1:
        raise OutboxError(f"more than one photo in outbox/{channel} is called {name}: "
                          + ", ".join(f"#{p.id} {p.shown_name}" for p in in_outbox) + "; give the number instead.")
    gone = [r for r in conn.execute(
        "SELECT f.*, COALESCE(p.source, f.path) AS source FROM outbox_files f LEFT JOIN photos p "
        "ON p.sha256 = f.photo_sha256 WHERE f.channel = ? AND f.ended = ? ORDER BY f.id DESC", (channel, COLLECTED))
        if any(Path(p).name == name or Path(p).stem == stem for p in (r["path"], r["seen_path"]) if p)]
    if gone:
        return _photo(gone[0], None)
    raise OutboxError(f"no photo called {name} is or was in outbox/{channel}. "
                      f"See what is there with `photoguard posted --list --channel {channel}`.")


def mark_posted(home: Home, conn: sqlite3.Connection, photo: int | str, channel: str, actor: str,
                when: datetime | None = None) -> OutboxPhoto:
    """The manager posted this photo on ``channel``: record who and when (once; marking again changes nothing).

    ``photo``: the outbox photo's id, or its file name. A photo may be marked while still in the outbox
    or after it was collected. ``when`` (default: now) is when it was posted: if PhotoGuard has re-made
    the file since, the copy that was in the outbox then is the one marked (and it goes on the take-down
    list if it shows a child whose consent has gone). Raises OutboxError with what to do."""
    _check_channel(home, channel)
    if isinstance(photo, int):
        item = outbox_photo(home, conn, photo)
        if item.channel != channel:
            raise OutboxError(f"outbox photo #{photo} ({item.name}) is in outbox/{item.channel}, not {channel}.")
    else:
        item = find_outbox_photo(home, conn, photo, channel)
    moment = (when or datetime.now()).astimezone()
    row = conn.execute("SELECT * FROM outbox_files WHERE id = ?", (item.id,)).fetchone()
    while row["replaces"] is not None and datetime.fromisoformat(row["created_at"]) > moment:
        row = conn.execute("SELECT * FROM outbox_files WHERE id = ?", (row["replaces"],)).fetchone()
    if row["posted_at"] is None:
        with transaction(conn):
            conn.execute("UPDATE outbox_files SET posted_at = ?, posted_by = ? WHERE id = ? AND posted_at IS NULL",
                         (moment.isoformat(timespec="seconds"), actor, row["id"]))
            _event(conn, "posted", row["photo_sha256"], f"{channel}: {_last_name(row)}: posted by {actor}")
    return outbox_photo(home, conn, row["id"])


def mark_all_posted(home: Home, conn: sqlite3.Connection, ids: Iterable[int], channel: str, actor: str) -> list[OutboxPhoto]:
    """Mark every photo of ``ids`` posted on ``channel`` at once (the manager posted what she downloaded):
    only those she was shown, never one that arrived meanwhile. Photos already marked stay as they were."""
    done = []
    for file_id in dict.fromkeys(ids):
        if outbox_photo(home, conn, file_id).posted is None:
            done.append(mark_posted(home, conn, file_id, channel, actor))
    return done


# --- take-down list ---------------------------------------------------------------------------------


def takedown_list(conn: sqlite3.Connection, child_id: str | None = None, *, home: Home | None = None,
                  today: date | None = None) -> list[TakedownItem]:
    """Photos posted or collected that show a child whose consent does not allow that channel today,
    not yet marked taken down; oldest first. Worked out from today's consents each time: a consent
    given back takes the photo off the list. With ``home``, files that left the outbox since the last
    look are recorded collected first (see ``sweep``)."""
    from photoguard.store.roster import load_consents

    if home is not None and not isinstance(conn, db.Snapshot):   # a full disk: the list as last recorded
        sweep(home, conn)
    today = today or date.today()
    consents = load_consents(conn)
    names = {r["id"]: r["name"] or r["id"] for r in conn.execute("SELECT id, name FROM children")}
    # One query for every face visible in every file out in the world and not yet taken down.
    rows = conn.execute(
        "SELECT f.*, COALESCE(p.source, f.path) AS source, fa.idx AS face_idx, fa.child_id FROM outbox_files f "
        "JOIN json_each(f.shown) j JOIN faces fa ON fa.photo_sha256 = f.photo_sha256 AND fa.idx = j.value "
        "LEFT JOIN photos p ON p.sha256 = f.photo_sha256 "
        "WHERE (f.ended = ? OR f.posted_at IS NOT NULL) AND f.id NOT IN (SELECT file_id FROM takedowns) "
        "ORDER BY COALESCE(f.posted_at, f.ended_at), f.id, fa.idx", (COLLECTED,)).fetchall()
    files: dict[int, sqlite3.Row] = {}
    children: dict[int, list[TakedownChild]] = {}
    for row in rows:
        child = row["child_id"]
        verdict = may_show(consents.get(child), row["channel"], today) if child else None
        if verdict is None or not verdict.allowed:
            files.setdefault(row["id"], row)
            children.setdefault(row["id"], []).append(TakedownChild(
                child or "unknown", names.get(child, child or "an unknown face"),
                verdict.reason if verdict else "not identified"))
    items = []
    for file_id, row in files.items():
        found = children[file_id]
        if child_id is not None and all(c.child_id != child_id for c in found):
            continue
        posted = row["posted_at"] is not None
        name = f"{_folder(row)}/{_last_name(row)}" if _folder(row) else _last_name(row)
        items.append(TakedownItem(file_id, row["channel"], name, row["source"], row["photo_sha256"],
                                  row["posted_at"] if posted else row["ended_at"], "posted" if posted else "collected",
                                  tuple(found)))
    return items


def mark_taken_down(conn: sqlite3.Connection, item: TakedownItem | int, actor: str,
                    when: datetime | None = None) -> None:
    """The manager has taken this photo down (from the channel it was posted on). Recorded once."""
    file_id = item.file_id if isinstance(item, TakedownItem) else int(item)
    row = conn.execute("SELECT * FROM outbox_files WHERE id = ?", (file_id,)).fetchone()
    if row is None:
        raise OutboxError(f"there is no outbox photo number {file_id}; see `photoguard takedown`.")
    at = (when or datetime.now()).astimezone().isoformat(timespec="seconds")
    with transaction(conn):
        done = conn.execute("INSERT OR IGNORE INTO takedowns (file_id, done_at, done_by) VALUES (?,?,?)",
                            (file_id, at, actor)).rowcount
        if done:
            _event(conn, "taken_down", row["photo_sha256"],
                   f"{row['channel']}: {_last_name(row)}: taken down by {actor}")


# --- consent changes after photos were cleared ------------------------------------------------------
