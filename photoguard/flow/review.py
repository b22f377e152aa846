"""Photos held for review: what the manager sees, what she changes, and releasing or rejecting them.

One library for the CLI and the web app. The queue and every decision live in the database; the copy in
``review/`` is only there to look at and is never published (anyone with access to the folder could swap
it). A release renders each channel's picture again from the archived original with the recorded faces,
the manager's changes and today's consents (the consent rule decides, not the click), looks at it once
more, and publishes exactly what :func:`render_preview` shows.

Faces are numbered from 1 in the order the manager sees them (``ReviewFace.number``). ``name`` is the
review name (``review/<name>.jpg``) or the photo's sha256 (the web app's id). ``actor`` is who did it:
the CLI passes the computer user (:func:`os_actor`); the default is the web app's "manager".
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from photoguard.engine.detect import FaceBox
from photoguard.engine.identify import Identity
from photoguard.flow.pipeline import Processor
from photoguard.flow.review_words import (CONFIRMED_BY_MANAGER, DRAWN_REASON, OBSCURED_BY_MANAGER, UNCONFIRMED,
                                          _edit_words, _identity_words, _kind, _outcome_words, _question, _who)
from photoguard.photos.images import load_image
from photoguard.photos.places import where_in_photo
from photoguard.photos.save import encode_stripped_jpeg, fsync_dir
from photoguard.rules.consent import ChildConsent
from photoguard.rules.decide import OBSCURED, SHOWN, Action, decide
from photoguard.store.db import transaction
from photoguard.store.faces import face_from_row
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso

WEB_ACTOR = "manager"


class ReviewError(Exception):
    """A review item could not be found, changed, released or taken back; the message says what to do."""


def os_actor() -> str:
    """Who is doing it from the command line: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class ReviewItem:
    """A photo waiting for a person."""
    name: str               # what the manager types: the review copy's name without .jpg
    sha256: str             # the photo's id in the database (the web app's id for it)
    source: str             # the file name as dropped into the inbox
    reason: str             # why it is held, in words
    held_at: str            # when it was held (ISO time)
    image: Path | None      # review/<name>.jpg, a copy to look at (never published), if it is there

    @property
    def created(self) -> str:
        """The name the web app's first review page used for ``held_at``."""
        return self.held_at


@dataclass(frozen=True)
class ChannelOutcome:
    channel: str
    shown: bool
    why: str                # "consent for facebook", "no consent for instagram", "not recognised: too small to identify"


@dataclass(frozen=True)
class ReviewFace:
    number: int                          # 1, 2, ... as the manager sees them
    box: tuple[int, int, int, int]       # left, top, right, bottom in pixels of the upright photo
    kind: str                            # 'face', 'second look' (the first look missed it) or 'drawn'
    child_id: str | None                 # who it is taken to be (engine or manager); None = unknown
    who: str                             # "Ada Lovelace", "unknown" or "an area you marked"
    where: str                           # "bottom left"
    reason: str                          # "a face the first look missed, bottom left"
    channels: tuple[ChannelOutcome, ...]
    edit: str | None                     # the manager's change to it, in words, if any
    question: str | None = None          # not sure enough to show: "is this Ada?" (or "is this Ada or Eve?")
    asked_about: str | None = None       # ... the child the answer is taken to be until the manager picks another

    def shown_on(self) -> list[str]:
        return [c.channel for c in self.channels if c.shown]


@dataclass(frozen=True)
class ReviewDetail:
    item: ReviewItem
    width: int
    height: int
    channels: tuple[str, ...]
    faces: tuple[ReviewFace, ...]
    edits: tuple[str, ...]               # the manager's changes so far, in words, oldest first
    problem: str | None                  # why it cannot be released (e.g. the original is gone), or None
    held_only_to_ask: bool = False       # held only to ask who someone is: every channel is ticked to release


# --- the queue ---------------------------------------------------------------------------------------


def _item(home: Home, row: sqlite3.Row) -> ReviewItem:
    plan = json.loads(row["plan"]) if row["plan"] else {}
    copy = plan.get("published", {}).get("review") if isinstance(plan, dict) else None
    name = Path(copy).stem if copy else (Path(row["source"]).stem or row["sha256"][:12])
    image = home.root / copy if copy else home.review / f"{name}.jpg"
    return ReviewItem(name, row["sha256"], row["source"], _held_words(row["reason"]), row["finished_at"] or "",
                      image if image.exists() else None)


def _held_words(reason: str | None) -> str:
    return reason or "held for a person to look at"


def review_queue(home: Home, conn: sqlite3.Connection) -> list[ReviewItem]:
    """Photos waiting for review, oldest first."""
    rows = conn.execute("SELECT * FROM photos WHERE state = 'done' AND outcome = 'review' "
                        "ORDER BY finished_at, rowid").fetchall()
    return [_item(home, row) for row in rows]


def list_review(home: Home) -> list[ReviewItem]:
    """:func:`review_queue` with a connection of its own."""
    from photoguard.store.db import connect

    conn = connect(home.database)
    try:
        return review_queue(home, conn)
    finally:
        conn.close()


def find_item(home: Home, conn: sqlite3.Connection, name: str) -> ReviewItem:
    """The waiting photo called ``name`` (its review name, with or without .jpg, or its sha256)."""
    queue = review_queue(home, conn)
    stem = Path(name).stem if name.lower().endswith(".jpg") else name
    for item in queue:
        if stem in (item.name, item.sha256):
            return item
    known = ", ".join(i.name for i in queue) or "none"
    raise ReviewError(f"no photo named '{name}' is waiting for review (waiting: {known}). "
                      "See `photoguard review list`.")


# --- decisions: recorded faces + the manager's changes + today's consents ------------------------------


@dataclass
class _Plan:
    photo: sqlite3.Row
    rows: list[sqlite3.Row]                 # faces, by idx
    faces: list[FaceBox]
    identities: list[Identity]
    edits: dict[int, sqlite3.Row]           # face idx -> the manager's last obscure/confirm
    decision: dict[str, list[Action]]
    consents: dict[str, ChildConsent]
    seed: int

    def shown(self, channel: str) -> tuple[bool, ...]:
        return tuple(a == SHOWN for a, _, _ in self.decision[channel])


def _live_edits(conn: sqlite3.Connection, sha: str) -> list[sqlite3.Row]:
    rows = conn.execute("SELECT * FROM review_edits WHERE photo_sha256 = ? ORDER BY id", (sha,)).fetchall()
    undone = {r["undoes"] for r in rows if r["kind"] == "undo"}
    return [r for r in rows if r["kind"] != "undo" and r["id"] not in undone]


def _plan(home: Home, conn: sqlite3.Connection, item: ReviewItem, today: date) -> _Plan:
    from photoguard.store.roster import load_consents

    photo = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()
    rows = conn.execute("SELECT * FROM faces WHERE photo_sha256 = ? ORDER BY idx", (item.sha256,)).fetchall()
    edits: dict[int, sqlite3.Row] = {}
    for edit in _live_edits(conn, item.sha256):
        if edit["kind"] in ("obscure", "confirm"):
            edits[edit["face_idx"]] = edit
    identities = []
    for row in rows:
        edit = edits.get(row["idx"])
        if row["reason"] == DRAWN_REASON:
            identities.append(Identity(None, None, None, DRAWN_REASON))
        elif edit is not None and edit["kind"] == "obscure":
            identities.append(Identity(None, None, None, OBSCURED_BY_MANAGER))
        elif edit is not None:
            identities.append(Identity(edit["child_id"], None, None, CONFIRMED_BY_MANAGER))
        elif (row["reason"] or "").startswith(CONFIRMED_BY_MANAGER):
            # Confirmed and released, then the release and the confirmation were taken back: the row still
            # names the child the manager gave, which nobody now vouches for.
            identities.append(Identity(None, None, None, UNCONFIRMED))
        else:
            identities.append(Identity(row["child_id"], row["distance"], None, row["reason"] or ""))
    consents = load_consents(conn)
    decision = decide(identities, consents, home.settings.channels, today)
    seed = photo["seed"]
    if not seed:  # a photo held by an older version: fix the noise now so preview and release match
        seed = str(secrets.randbits(63))
        conn.execute("UPDATE photos SET seed = ? WHERE sha256 = ? AND seed IS NULL", (seed, item.sha256))
        seed = conn.execute("SELECT seed FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()["seed"]
    faces = [face_from_row(r) for r in rows]
    return _Plan(photo, rows, faces, identities, edits, decision, consents, int(seed))


def _archived(home: Home, photo: sqlite3.Row) -> Path:
    rel = photo["archive_path"]
    if not rel or not (home.root / rel).exists():
        raise ReviewError(f"the original of {photo['source']} is no longer in the archive, so it cannot be "
                          f"released; reject it with `photoguard review reject`.")
    return home.root / rel


def review_detail(home: Home, conn: sqlite3.Connection, name: str, today: date | None = None) -> ReviewDetail:
    """Everything the manager needs to decide: each face numbered, who it is taken to be, why, where, and
    what will happen to it on each channel today."""
    today = today or date.today()
    item = find_item(home, conn, name)
    plan = _plan(home, conn, item, today)
    width, height = plan.photo["width"] or 0, plan.photo["height"] or 0
    channels = tuple(home.settings.channels)
    faces = []
    for i, (row, identity) in enumerate(zip(plan.rows, plan.identities)):
        box = tuple(int(v) for v in json.loads(row["box"]))
        where = where_in_photo(box, width, height) if width and height else "somewhere in the photo"
        outcomes = tuple(ChannelOutcome(c, plan.decision[c][i][0] == SHOWN, _outcome_words(plan.decision[c][i], identity, plan.consents))
                         for c in channels)
        edit = plan.edits.get(row["idx"])
        edit_words = None
        if edit is not None and edit["kind"] == "obscure":
            edit_words = "you chose to obscure it"
        elif edit is not None:
            edit_words = f"you confirmed it is {_who(edit['child_id'], plan.consents)}"
        elif row["reason"] == DRAWN_REASON:
            edit_words = "you marked this area"
        who = "an area you marked" if row["reason"] == DRAWN_REASON else _who(identity.child_id, plan.consents)
        words, question, asked = _identity_words(row, identity, plan.consents), None, None
        if edit is None and identity.child_id is None and identity.reason != UNCONFIRMED:
            question, asked, asked_words = _question(row, plan.consents, channels, today)
            words = asked_words or words
            if question is not None:
                outcomes = tuple(ChannelOutcome(o.channel, o.shown, "until you say who it is") for o in outcomes)
        faces.append(ReviewFace(i + 1, box, _kind(row), identity.child_id, who, where, f"{words}, {where}",
                                outcomes, edit_words, question, asked))
    try:
        _archived(home, plan.photo)
        problem = None
    except ReviewError as exc:
        problem = str(exc)
    edits = tuple(_edit_words(e, plan.consents) for e in _live_edits(conn, item.sha256))
    held_only_to_ask = bool(json.loads(plan.photo["plan"] or "{}").get("held_only_to_ask"))
    return ReviewDetail(item, width, height, channels, tuple(faces), edits, problem, held_only_to_ask)


# --- the manager's changes ---------------------------------------------------------------------------


def _face_row(conn: sqlite3.Connection, item: ReviewItem, number: int) -> sqlite3.Row:
    rows = conn.execute("SELECT * FROM faces WHERE photo_sha256 = ? ORDER BY idx", (item.sha256,)).fetchall()
    if not 1 <= number <= len(rows):
        raise ReviewError(f"{item.name} has no face {number}: its faces are numbered 1 to {len(rows)} "
                          f"(see `photoguard review show {item.name}`).")
    return rows[number - 1]


def _record_edit(conn: sqlite3.Connection, item: ReviewItem, actor: str, kind: str, face_idx: int | None,
                 child_id: str | None = None, undoes: int | None = None) -> None:
    conn.execute("INSERT INTO review_edits (photo_sha256, at, actor, kind, face_idx, child_id, undoes) "
                 "VALUES (?,?,?,?,?,?,?)", (item.sha256, now_iso(), actor, kind, face_idx, child_id, undoes))


def obscure_face(home: Home, conn: sqlite3.Connection, name: str, face: int, *, actor: str = WEB_ACTOR) -> str:
    """Obscure face number ``face`` on every channel, whoever it is."""
    item = find_item(home, conn, name)
    row = _face_row(conn, item, face)
    with transaction(conn):
        _record_edit(conn, item, actor, "obscure", row["idx"])
    _refresh_copy(home, conn, item)
    return f"{item.name}: face {face} will be obscured on every channel"


def confirm_face(home: Home, conn: sqlite3.Connection, name: str, face: int, child_id: str, *, actor: str = WEB_ACTOR,
                 today: date | None = None, learn: bool = True, processor: Processor | None = None) -> str:
    """The manager says face ``face`` is ``child_id``. It is then shown only on the channels that child's
    consent allows today (the consent rule decides); everywhere else it stays obscured.

    The answer also teaches (``learn``): the face becomes one of the child's reference photos when it may
    and should (``learning.learn_answer``); the sentence returned says whether it was kept."""
    from photoguard.flow.learning import learn_answer
    from photoguard.rules.consent import may_show
    from photoguard.store.roster import load_consents

    today = today or date.today()
    item = find_item(home, conn, name)
    row = _face_row(conn, item, face)
    consents = load_consents(conn)
    if child_id not in consents:
        raise ReviewError(f"there is no child '{child_id}' on the roster; check the id with `photoguard children`.")
    if row["reason"] == DRAWN_REASON:
        raise ReviewError(f"face {face} of {item.name} is an area you marked; it is always obscured.")
    plan = _plan(home, conn, item, today)
    for other, identity in zip(plan.rows, plan.identities):
        if other["idx"] != row["idx"] and identity.child_id == child_id:
            raise ReviewError(f"face {other['idx'] + 1} of {item.name} is already taken to be {_who(child_id, consents)}; "
                              f"obscure face {other['idx'] + 1} first if that is wrong.")
    with transaction(conn):
        _record_edit(conn, item, actor, "confirm", row["idx"], child_id)
    proc = _processor(home, conn, processor)
    _refresh_copy(home, conn, item, proc)
    allowed = [c for c in home.settings.channels if may_show(consents[child_id], c, today).allowed]
    where = ", ".join(c.capitalize() for c in allowed) if allowed else "no channel (no consent today)"
    rest = ", obscured elsewhere" if allowed and len(allowed) < len(home.settings.channels) else ""
    said = f"{item.name}: face {face} is {_who(child_id, consents)}; shown on {where}{rest}."
    if learn:
        said += " " + learn_answer(home, conn, proc, item.sha256, row["idx"], child_id, actor=actor, today=today).words
    return said


def add_box(home: Home, conn: sqlite3.Connection, name: str, box: Sequence[int], *, actor: str = WEB_ACTOR) -> str:
    """Mark an area (a face or anything identifying the detector missed) to be obscured on every channel.
    It becomes a numbered face of the photo, recorded and re-checked like any other."""
    item = find_item(home, conn, name)
    photo = conn.execute("SELECT width, height FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()
    width, height = photo["width"] or 0, photo["height"] or 0
    try:
        left, top, right, bottom = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise ReviewError("an area is four numbers: left, top, right, bottom") from None
    left, right = sorted((max(0, min(width, left)), max(0, min(width, right))))
    top, bottom = sorted((max(0, min(height, top)), max(0, min(height, bottom))))
    if right - left < 4 or bottom - top < 4:
        raise ReviewError(f"the area marked on {item.name} is too small or outside the photo "
                          f"({width} x {height} pixels); draw it again.")
    with transaction(conn):
        idx = conn.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM faces WHERE photo_sha256 = ?",
                           (item.sha256,)).fetchone()[0]
        conn.execute("INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason) "
                     "VALUES (?,?,?,NULL,NULL,NULL,?)", (item.sha256, idx, json.dumps([left, top, right, bottom]), DRAWN_REASON))
        for channel in home.settings.channels:
            conn.execute("INSERT OR REPLACE INTO face_actions (photo_sha256, face_idx, channel, action, reason, consent) "
                         "VALUES (?,?,?,?,?,NULL)", (item.sha256, idx, channel, OBSCURED, DRAWN_REASON))
        _record_edit(conn, item, actor, "box", idx)
    _refresh_copy(home, conn, item)
    return (f"{item.name}: the area you marked ({where_in_photo((left, top, right, bottom), width, height)}) "
            "will be obscured on every channel")


def undo_edit(home: Home, conn: sqlite3.Connection, name: str, *, actor: str = WEB_ACTOR) -> str:
    """Take back the manager's last change to this photo."""
    item = find_item(home, conn, name)
    live = _live_edits(conn, item.sha256)
    if not live:
        raise ReviewError(f"nothing to undo on {item.name}: no changes were made to it.")
    last = live[-1]
    with transaction(conn):
        if last["kind"] == "box":
            newest = conn.execute("SELECT MAX(idx) FROM faces WHERE photo_sha256 = ?", (item.sha256,)).fetchone()[0]
            released = conn.execute("SELECT 1 FROM review_decisions WHERE photo_sha256 = ? AND kind = 'released'",
                                    (item.sha256,)).fetchone()
            if newest != last["face_idx"] or released:
                raise ReviewError(f"the area marked as face {last['face_idx'] + 1} on {item.name} stays obscured: "
                                  "it is part of what was recorded for this photo since.")
            conn.execute("DELETE FROM face_actions WHERE photo_sha256 = ? AND face_idx = ?", (item.sha256, last["face_idx"]))
            conn.execute("DELETE FROM faces WHERE photo_sha256 = ? AND idx = ?", (item.sha256, last["face_idx"]))
        _record_edit(conn, item, actor, "undo", last["face_idx"], undoes=last["id"])
    if last["kind"] == "confirm":
        # A "yes" taken back must not go on teaching: the face it kept as a reference photo goes too.
        from photoguard.flow.learning import forget

        for learnt in conn.execute("SELECT child_id, path FROM learned_faces WHERE photo_sha256 = ? AND face_idx = ?",
                                   (item.sha256, last["face_idx"])).fetchall():
            forget(conn, home, learnt["child_id"], learnt["path"], why="the answer was taken back", actor=actor)
    _refresh_copy(home, conn, item)
    from photoguard.store.roster import load_consents

    return f"{item.name}: taken back — {_edit_words(last, load_consents(conn)).split(' (')[0]}"


# --- rendering -----------------------------------------------------------------------------------------


def _processor(home: Home, conn: sqlite3.Connection, processor: Processor | None) -> Processor:
    from photoguard.store.roster import roster_version

    if processor is None:
        return Processor(home, conn)
    if roster_version(processor.conn) != processor.roster_version:
        processor.reload_roster()
    return processor


def _original(home: Home, plan: _Plan) -> np.ndarray:
    path = _archived(home, plan.photo)
    image = load_image(path)
    if image.sha256 and image.sha256 != plan.photo["sha256"]:
        raise ReviewError(f"the archived original of {plan.photo['source']} ({path.name}) is not the photo that was "
                          "processed; it cannot be released. Reject it.")
    return image.rgb


def render_preview(home: Home, conn: sqlite3.Connection, name: str, channel: str, today: date | None = None,
                   processor: Processor | None = None) -> bytes:
    """The JPEG that releasing ``name`` to ``channel`` today would publish, byte for byte: rendered by the
    pipeline from the archived original with every recorded face, the manager's changes and today's
    consents."""
    today = today or date.today()
    item = find_item(home, conn, name)
    _check_channels(home, [channel])
    plan = _plan(home, conn, item, today)
    proc = _processor(home, conn, processor)
    return encode_stripped_jpeg(proc.published(proc.render(_original(home, plan), plan.faces, plan.shown(channel),
                                                           plan.seed)))


def _check_channels(home: Home, channels: Sequence[str]) -> None:
    for channel in channels:
        if channel not in home.settings.channels:
            raise ReviewError(f"unknown channel '{channel}'; channels are {', '.join(home.settings.channels)} "
                              f"(set in photoguard.toml).")


def _refresh_copy(home: Home, conn: sqlite3.Connection, item: ReviewItem, processor: Processor | None = None) -> None:
    """Rewrite review/<name>.jpg with every face not shown on all channels obscured (to look at only)."""
    try:
        plan = _plan(home, conn, item, date.today())
        channels = home.settings.channels
        common = tuple(all(plan.decision[c][i][0] == SHOWN for c in channels) for i in range(len(plan.faces)))
        proc = _processor(home, conn, processor)
        rgb = proc.published(proc.render(_original(home, plan), plan.faces, common, plan.seed))
    except ReviewError:
        return  # the original is gone: nothing to show; the item says why
    target = item.image or home.review / f"{item.name}.jpg"
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as fh:
        fh.write(encode_stripped_jpeg(rgb))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


# --- release, reject, undo -----------------------------------------------------------------------------
