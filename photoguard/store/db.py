"""The SQLite database under ``.photoguard/``: roster, templates, consent history, journal and audit.

One schema for every stage so that the watcher, ``enrol`` and the report all read the same file.
The file is owner-only (0600) and deleted rows are overwritten (secure_delete), because it holds
biometric templates.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS children (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    face_matching INTEGER NOT NULL DEFAULT 0,
    channels TEXT NOT NULL DEFAULT '{}',      -- JSON {channel: 0/1}
    expires TEXT,                             -- YYYY-MM-DD or NULL
    problem TEXT,                             -- why the CSV row was not usable (then: no consent)
    csv_line INTEGER,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- never reused: the roster version depends on it
    child_id TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    field TEXT NOT NULL,                      -- 'added', 'removed', 'face_matching', 'expires', 'channel:<name>', 'name', 'problem'
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS consent_history_child ON consent_history(child_id, changed_at);
CREATE TABLE IF NOT EXISTS reference_photos (
    child_id TEXT NOT NULL,
    path TEXT NOT NULL,                       -- relative to enrol/
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,                     -- 'accepted' or 'rejected'
    reason TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (child_id, path)
);
-- Reference photos PhotoGuard made from faces the manager confirmed (enrol/<id>/confirmed-*.jpg): which
-- photo and face each came from. Deleted with the file (a newer one, the manager, or consent withdrawn).
CREATE TABLE IF NOT EXISTS learned_faces (
    child_id TEXT NOT NULL,
    path TEXT NOT NULL,                       -- relative to enrol/, as in reference_photos
    photo_sha256 TEXT NOT NULL,               -- the photo the face is from
    face_idx INTEGER NOT NULL,
    similarity REAL NOT NULL,                 -- how alike the child's references it was when learnt
    learned_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (child_id, path)
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- never reused: a replaced photo changes the roster version
    child_id TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    encoding BLOB NOT NULL,                   -- 128 float64, little-endian
    created_at TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',           -- the embedding that made it: 'name:sha256 of the model file' ('' = dlib, before SFace)
    taken_on TEXT                             -- day the reference photo was taken (its own date, else the file's); NULL = before this was kept
);
CREATE INDEX IF NOT EXISTS templates_child ON templates(child_id);

-- The journal: one row per distinct photo content. received -> processing -> done.
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY,
    source TEXT NOT NULL,                     -- original file name as dropped
    state TEXT NOT NULL,                      -- 'received', 'processing', 'done'
    outcome TEXT,                             -- 'cleared', 'review', 'failed'
    reason TEXT,
    archive_path TEXT,                        -- relative to the home
    received_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    width INTEGER,
    height INTEGER,
    source_path TEXT,                         -- where it was taken from (to resume after a crash)
    plan TEXT,                                -- JSON: staged files and where they were published
    seed TEXT,                                -- obscuring noise seed, so a re-render matches other channels
    templates_used INTEGER                    -- templates on the roster when it was decided (0 = before any child was enrolled)
);
CREATE TABLE IF NOT EXISTS faces (
    photo_sha256 TEXT NOT NULL,
    idx INTEGER NOT NULL,
    box TEXT NOT NULL,                        -- JSON [left, top, right, bottom] in oriented pixels
    score REAL,
    child_id TEXT,                            -- NULL = unknown
    distance REAL,                            -- 1 - similarity to the child (SFace cosine); older rows: dlib distance
    reason TEXT,                              -- why identified / unknown
    asked_about TEXT,                         -- not sure enough to show: the child the manager is asked about
    landmarks TEXT,                           -- JSON [[x, y] x 5] eyes, nose, mouth corners (NULL: none found)
    PRIMARY KEY (photo_sha256, idx)
);
-- As decided when the photo was processed; what each outbox file really showed is in outbox_files.
CREATE TABLE IF NOT EXISTS face_actions (
    photo_sha256 TEXT NOT NULL,
    face_idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    action TEXT NOT NULL,                     -- 'shown' or 'obscured'
    reason TEXT NOT NULL,
    consent TEXT,                             -- JSON snapshot of the consent used
    PRIMARY KEY (photo_sha256, face_idx, channel)
);
-- The current outbox file per photo and channel (its history: outbox_files).
CREATE TABLE IF NOT EXISTS outputs (
    photo_sha256 TEXT NOT NULL,
    channel TEXT NOT NULL,
    path TEXT NOT NULL,                       -- relative to the home
    file_sha256 TEXT,                         -- of the file we put there: another file under that name is not ours
    created_at TEXT NOT NULL,
    removed_at TEXT,
    PRIMARY KEY (photo_sha256, channel)
);
-- Every file PhotoGuard put into an outbox, one row per file (a re-rendered copy is a new row that
-- "replaces" the old one). Rows are appended; the lifecycle columns are set once, never changed:
-- the history of what was published stays as it happened.
CREATE TABLE IF NOT EXISTS outbox_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- stable: the web app serves outbox photos by this id
    photo_sha256 TEXT NOT NULL,
    channel TEXT NOT NULL,
    path TEXT NOT NULL,                       -- where PhotoGuard put it, relative to the home
    seen_path TEXT,                           -- where it was last seen, if renamed since (relative to the home)
    file_sha256 TEXT,                         -- of the bytes PhotoGuard wrote
    device INTEGER,                           -- with inode: follows the file when renamed in the outbox
    inode INTEGER,
    shown TEXT NOT NULL DEFAULT '[]',         -- JSON list of faces.idx left visible in this file
    made TEXT NOT NULL,                       -- why it was made: 'processed', 'released', 're-rendered: ...'
    replaces INTEGER,                         -- the outbox_files.id this file replaced
    created_at TEXT NOT NULL,
    ended TEXT,                               -- 'collected' (left the outbox), 'replaced', 'removed'
    ended_at TEXT,
    posted_at TEXT,                           -- the manager marked it posted
    posted_by TEXT
);
CREATE INDEX IF NOT EXISTS outbox_files_photo ON outbox_files(photo_sha256, channel);
CREATE INDEX IF NOT EXISTS outbox_files_inode ON outbox_files(inode);
-- Photos posted or collected that showed a child whose consent has gone, marked taken down by the manager.
CREATE TABLE IF NOT EXISTS takedowns (
    file_id INTEGER PRIMARY KEY,              -- outbox_files.id
    done_at TEXT NOT NULL,
    done_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,                       -- 'processed', 'duplicate', 'released', 'rejected', 'rerendered', 'removed', 'purged', 'templates_erased', ...
    photo_sha256 TEXT,
    child_id TEXT,
    detail TEXT,
    actor TEXT                                -- who did it (the OS user, or the web app's "manager"); NULL = PhotoGuard
);
CREATE INDEX IF NOT EXISTS events_at ON events(at);

-- What the manager changed on a photo held for review. Appended, never rewritten: an undo is a row too.
CREATE TABLE IF NOT EXISTS review_edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_sha256 TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,                       -- 'obscure', 'confirm', 'box', 'undo'
    face_idx INTEGER,                         -- faces.idx it is about ('box': the row it added)
    child_id TEXT,                            -- 'confirm': who the manager says it is
    undoes INTEGER                            -- 'undo': the id of the edit taken back
);
CREATE INDEX IF NOT EXISTS review_edits_photo ON review_edits(photo_sha256, id);
-- Releases and rejections from review, so the last one can be taken back while its files are uncollected.
CREATE TABLE IF NOT EXISTS review_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_sha256 TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,                       -- 'released' or 'rejected'
    channels TEXT NOT NULL DEFAULT '[]',      -- JSON: the channels released to
    files TEXT NOT NULL DEFAULT '{}',         -- JSON {channel: outbox_files.id} of the files it put in the outbox
    undone_at TEXT,
    undone_by TEXT
);
"""


class Snapshot(sqlite3.Connection):
    """A read-only look at the database as it was last written whole, for when the disk is full: SQLite
    cannot even open a WAL database for reading then (it needs room for its shared-memory file)."""


# Below this much free space a database that cannot be opened is taken to be on a full disk.
FULL_DISK_BYTES = 1 << 20


def disk_is_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_DISK_BYTES


def connect(path: Path, *, snapshot_when_full: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the database, owner-only, with deleted bytes overwritten.

    ``snapshot_when_full``: on a full disk, give a read-only ``Snapshot`` instead of failing (for pages and
    ``status``, which must still say what is going on); a write through it fails."""
    path = Path(path)
    try:
        return _connect(path)
    except sqlite3.OperationalError:
        if not (snapshot_when_full and path.exists() and disk_is_full(path.parent)):
            raise
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?immutable=1", uri=True, isolation_level=None,
                           factory=Snapshot)
    conn.row_factory = sqlite3.Row
    return conn


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    if fresh:
        # Create with 0600 from the start so there is no moment where others can read it.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        _set_up(conn)
    except BaseException:
        conn.close()
        raise
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)
    return conn


def _set_up(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA secure_delete = ON")
    # Only what is not so already is written: opening the database to read it writes nothing.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    if not set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA)) <= have:
        conn.executescript(SCHEMA)
    _add_missing_columns(conn)
    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# Columns added after a table first shipped: (table, column, declaration). A home made by an older
# version gets them at its next connect; CREATE TABLE above already has them for a new home.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("events", "actor", "TEXT"),
    ("templates", "model", "TEXT NOT NULL DEFAULT ''"),
    ("photos", "templates_used", "INTEGER"),
    ("faces", "asked_about", "TEXT"),
    ("faces", "landmarks", "TEXT"),
    ("templates", "taken_on", "TEXT"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        have = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing. (The connection is in autocommit mode, where ``with conn:`` is not a transaction.)"""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def scrub(conn: sqlite3.Connection) -> None:
    """After deleting biometric rows: push them out of the WAL and rebuild the file without them."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
