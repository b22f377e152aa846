"""Releasing, rejecting and taking back a photo held for review. A release renders each channel's picture again
from the archived original with the recorded faces, the manager's changes and today's consents, looks at it
once more, and publishes exactly what the preview shows; it never crosses a consent change or another release
of the same photo.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from photoguard.engine.boxes import same_face
from photoguard.engine.detect import FaceBox
from photoguard.flow.outbox import REMOVED, record_outbox_file
from photoguard.flow.pipeline import Processor
from photoguard.flow.review import (WEB_ACTOR, ReviewError, ReviewItem, _check_channels, _original, _Plan, _plan,
                                    _processor, _refresh_copy, find_item, review_queue)
from photoguard.flow.review_words import _WORDS, CONFIRMED_BY_MANAGER, _who
from photoguard.photos.durable import drop_folder, make_folders, publish
from photoguard.photos.images import sha256_file
from photoguard.photos.places import where_in_photo
from photoguard.photos.save import encode_stripped_jpeg, fsync_dir
from photoguard.rules.decide import OBSCURED, SECOND_LOOK_REASON, SHOWN, _consent_json, decide
from photoguard.store.db import transaction
from photoguard.store.faces import landmarks_json
from photoguard.store.home import OUTBOX_FILE, Home
from photoguard.store.localtime import now_iso


@dataclass(frozen=True)
class Released:
    item: ReviewItem
    files: dict[str, Path]               # channel -> the file published in its outbox
    obscured: dict[str, list[str]] = field(default_factory=dict)   # channel -> children obscured there (names)

    def words(self) -> str:
        """'picnic.jpg released to Facebook, Instagram, Twitter (Grace obscured on Instagram and Twitter)'."""
        by_child: dict[str, list[str]] = {}
        for channel, names in self.obscured.items():
            for name in names:
                by_child.setdefault(name, []).append(channel.capitalize())
        also = "; ".join(f"{name} obscured on {' and '.join(chs)}" for name, chs in by_child.items())
        return (f"{self.item.source} released to {', '.join(c.capitalize() for c in self.files)}"
                + (f" ({also})" if also else ""))


@dataclass(frozen=True)
class Undone:
    item: ReviewItem
    kind: str                            # 'released' or 'rejected': what was taken back
    removed: tuple[Path, ...]            # outbox files taken out again


def release(home: Home, conn: sqlite3.Connection, name: str, channels: Sequence[str] | None = None, *,
            actor: str = WEB_ACTOR, today: date | None = None, processor: Processor | None = None) -> Released:
    """Publish ``name`` to ``channels`` (default: every channel), each rendered from the archived original
    as :func:`render_preview` shows it: only faces whose child's consent allows that channel today are
    visible. The finished pictures are looked at again first; a face found then joins the photo (obscured)
    and the release stops so the manager can look again. The copy in review/ is never published."""
    today = today or date.today()
    item = find_item(home, conn, name)
    channels = list(dict.fromkeys(channels or home.settings.channels))
    _check_channels(home, channels)
    with _releasing(home, item):
        return _release(home, conn, item, channels, actor, today, _processor(home, conn, processor))


@contextmanager
def _releasing(home: Home, item: ReviewItem) -> Iterator[None]:
    """One release of a photo at a time (two windows, a double click): the second is told, not mixed in."""
    folder = home.state / "locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(folder / f"release-{item.sha256}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReviewError(f"{item.name} is being released in another window just now; "
                              "nothing more was done here. Look at the list again in a moment.") from None
        yield
    finally:
        os.close(fd)   # closing lets go of the lock


def _release(home: Home, conn: sqlite3.Connection, item: ReviewItem, channels: list[str], actor: str,
             today: date, proc: Processor) -> Released:
    plan = _plan(home, conn, item, today)
    original = _original(home, plan)

    renders: dict[tuple[bool, ...], np.ndarray] = {}
    missed: list[FaceBox] = []
    problems: list[str] = []
    for channel in channels:
        shown = plan.shown(channel)
        if shown in renders:
            continue
        renders[shown] = proc.render(original, plan.faces, shown, plan.seed)
        look = proc.second_look(renders[shown], plan.faces, shown, original)
        look.missed = [m for m in look.missed if not any(same_face(m.box, o.box) for o in missed)]
        missed += look.missed
        if look.problem():
            problems.append(look.problem())
    if missed:
        _add_second_look_faces(home, conn, item, missed, actor)
        _refresh_copy(home, conn, item, proc)
    if problems:
        raise ReviewError(f"{item.name} was not released: looking at it once more found {'; '.join(problems)}. "
                          + ("It is now obscured; look at the photo again, then release it." if missed else
                             "Mark that area to obscure it again, or reject the photo."))

    renders = {shown: proc.published(rgb) for shown, rgb in renders.items()}   # as render_preview shows them
    staging = Path(tempfile.mkdtemp(prefix=f"release-{item.sha256[:16]}-", dir=proc.staging))
    placed: dict[str, Path] = {}
    made: list[Path] = []   # placed by this release (not found left by an interrupted one)
    hashes: dict[str, str] = {}
    stem = Path(item.source).stem or item.name
    came_from = _drop_folder(home, conn, item.sha256)
    try:
        _publish_channels(home, conn, plan, renders, channels, staging, came_from, stem, placed, made, hashes)
        with transaction(conn):
            _still_waiting(conn, item)
            _consents_unchanged(home, conn, item, plan, channels, today)
            _record_released(conn, home, item, plan, placed, hashes, channels, actor, at=now_iso())
    except BaseException:
        # Whatever stopped it (someone else's decision, a full disk, a locked database), nothing this
        # release put in the outbox stays there unrecorded.
        for path in made:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_copy(home, item)
    obscured = {channel: [_who(i.child_id, plan.consents) for i, (action, _, _) in
                          zip(plan.identities, plan.decision[channel]) if i.child_id and action != SHOWN]
                for channel in channels}
    return Released(item, placed, obscured)


def _publish_channels(home: Home, conn: sqlite3.Connection, plan: _Plan,
                      renders: dict, channels: Sequence[str], staging: Path, came_from: Path, stem: str,
                      placed: dict[str, Path], made: list[Path], hashes: dict[str, str]) -> None:
    """Each channel's file into its outbox folder; ``made`` collects those placed by this release."""
    for channel in channels:
        # Each channel its own file: changing one later never changes another.
        staged = staging / f"{channel}.jpg"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, OUTBOX_FILE)   # whatever the umask
        with open(fd, "wb") as fh:
            fh.write(encode_stripped_jpeg(renders[plan.shown(channel)]))
            fh.flush()
            os.fsync(fh.fileno())
        hashes[channel] = sha256_file(staged)
        outbox = make_folders(home.outbox_for(channel), came_from)   # the folder it was dropped in
        placed[channel] = _left_by_a_crash(home, conn, channel, stem, hashes[channel], outbox)
        if placed[channel] is None:
            placed[channel] = publish(staged, outbox, stem)
            made.append(placed[channel])


def _still_waiting(conn: sqlite3.Connection, item: ReviewItem) -> None:
    """Inside the write transaction: nobody released or rejected it meanwhile (a second click, a second
    window)."""
    row = conn.execute("SELECT outcome FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()
    if row is None or row["outcome"] != "review":
        raise ReviewError(f"{item.name} was {row['outcome'] if row else 'removed'} by someone else just now; "
                          "nothing more was done.")


def _consents_unchanged(home: Home, conn: sqlite3.Connection, item: ReviewItem, plan: _Plan,
                        channels: Sequence[str], today: date) -> None:
    """Inside the write transaction: the consents on record now decide every face as they did when the
    release began. A consent withdrawn (or given) meanwhile stops the release, whose files are then
    deleted; a change recorded after this commits is followed by its own outbox re-check, which sees
    these files. Either way no copy shows a child whose consent was just withdrawn."""
    from photoguard.store.roster import load_consents

    now = decide(plan.identities, load_consents(conn), home.settings.channels, today)
    changed = sorted({plan.identities[i].child_id or "" for channel in channels
                      for i, (a, b) in enumerate(zip(plan.decision[channel], now[channel])) if a[0] != b[0]})
    if changed:
        who = ", ".join(_who(c, plan.consents) for c in changed if c) or "a child"
        raise ReviewError(f"{item.name} was not released: the consent of {who} changed while it was being "
                          "released, so nothing was published. Look at the photo again, then release it.")


def _record_released(conn: sqlite3.Connection, home: Home, item: ReviewItem, plan: _Plan, placed: dict[str, Path],
                     hashes: dict[str, str], channels: Sequence[str], actor: str, at: str) -> None:
    _record_decisions(conn, home, item, plan)
    file_ids = {}
    for channel, dest in placed.items():
        conn.execute("INSERT OR REPLACE INTO outputs (photo_sha256, channel, path, file_sha256, created_at) "
                     "VALUES (?,?,?,?,?)", (item.sha256, channel, str(dest.relative_to(home.root)), hashes[channel], at))
        shown = [row["idx"] for row, keep in zip(plan.rows, plan.shown(channel)) if keep]
        file_ids[channel] = record_outbox_file(home, conn, item.sha256, channel, dest, shown=shown,
                                               made=f"released by {actor}", file_sha256=hashes[channel])
    conn.execute("UPDATE photos SET outcome = 'released' WHERE sha256 = ?", (item.sha256,))
    conn.execute("INSERT INTO review_decisions (photo_sha256, at, actor, kind, channels, files) VALUES (?,?,?,?,?,?)",
                 (item.sha256, at, actor, "released", json.dumps(channels), json.dumps(file_ids)))
    not_released = [c for c in home.settings.channels if c not in channels]
    detail = f"{item.name} released to {', '.join(channels)}" + (
        f" (not to {', '.join(not_released)})" if not_released else "") + f" by {actor}"
    conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                 (at, "released", item.sha256, detail, actor))


def _drop_folder(home: Home, conn: sqlite3.Connection, sha: str) -> Path:
    """The inbox folder the photo was dropped in (as the pipeline recorded it), for its place in the outbox."""
    row = conn.execute("SELECT plan, source_path FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    if row is None:
        return Path()
    try:
        folder = json.loads(row["plan"] or "{}").get("folder")
    except (ValueError, AttributeError):
        folder = None
    if folder is not None:
        return drop_folder(home.inbox / folder / "x", home.inbox)   # made safe once more: never trusted as is
    return drop_folder(row["source_path"], home.inbox)


def _left_by_a_crash(home: Home, conn: sqlite3.Connection, channel: str, stem: str, file_hash: str,
                     outbox: Path | None = None) -> Path | None:
    """This very picture already in the outbox but not on record: a release killed between placing the
    file and recording it. Taken as this release's file, so the photo is not there twice."""
    from photoguard.photos.durable import glob_escape

    recorded = {r[0] for r in conn.execute("SELECT path FROM outbox_files WHERE channel = ? AND ended IS NULL",
                                           (channel,))}
    for path in sorted((outbox or home.outbox_for(channel)).glob(f"{glob_escape(stem)}*.jpg")):
        if str(path.relative_to(home.root)) not in recorded and _hash_or_none(path) == file_hash:
            return path
    return None


def _add_second_look_faces(home: Home, conn: sqlite3.Connection, item: ReviewItem, missed: Sequence[FaceBox],
                           actor: str) -> None:
    photo = conn.execute("SELECT width, height FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()
    with transaction(conn):
        idx = conn.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM faces WHERE photo_sha256 = ?",
                           (item.sha256,)).fetchone()[0]
        for face in missed:
            conn.execute("INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason, landmarks) "
                         "VALUES (?,?,?,?,NULL,NULL,?,?)",
                         (item.sha256, idx, json.dumps(list(face.box)), float(face.score), SECOND_LOOK_REASON,
                          landmarks_json(face)))
            for channel in home.settings.channels:
                conn.execute("INSERT OR REPLACE INTO face_actions (photo_sha256, face_idx, channel, action, reason, consent) "
                             "VALUES (?,?,?,?,?,NULL)", (item.sha256, idx, channel, OBSCURED, SECOND_LOOK_REASON))
            where = where_in_photo(face.box, photo["width"] or 1, photo["height"] or 1)
            conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                         (now_iso(), "second_look", item.sha256,
                          f"{item.name}: a face the first look missed, {where} (face {idx + 1}), obscured on every channel",
                          actor))
            idx += 1


def _record_decisions(conn: sqlite3.Connection, home: Home, item: ReviewItem, plan: _Plan) -> None:
    """Write what each channel gets into faces/face_actions, so the audit says what was published and the
    outbox re-check keeps the manager's choices (a confirmed child is re-checked like a recognised one).

    History is appended, never lost: what the first look had decided, where the release decides otherwise,
    is kept as a ``decision_replaced`` event before the row is replaced."""
    before = {(r["face_idx"], r["channel"]): r for r in conn.execute(
        "SELECT * FROM face_actions WHERE photo_sha256 = ?", (item.sha256,))}
    at = now_iso()
    for i, (row, identity) in enumerate(zip(plan.rows, plan.identities)):
        if identity.reason == CONFIRMED_BY_MANAGER:
            reason = row["reason"] or ""
            if not reason.startswith(CONFIRMED_BY_MANAGER):
                was = _WORDS.get(reason, reason) if row["child_id"] is None else f"recognised as {row['child_id']}"
                if row["asked_about"]:
                    was += f"; PhotoGuard asked whether it was {row['asked_about']}"
                reason = f"{CONFIRMED_BY_MANAGER} (first look: {was})"
            conn.execute("UPDATE faces SET child_id = ?, reason = ? WHERE photo_sha256 = ? AND idx = ?",
                         (identity.child_id, reason, item.sha256, row["idx"]))
        for channel in home.settings.channels:
            action, why, consent = plan.decision[channel][i]
            old = before.get((row["idx"], channel))
            if old is not None and (old["action"], old["reason"]) != (action, why):
                conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?,?,?,?)",
                             (at, "decision_replaced", item.sha256,
                              f"{item.name}, face {row['idx'] + 1}, {channel}: first decided {old['action']} "
                              f"({_WORDS.get(old['reason'], old['reason'])}), released {action} "
                              f"({_WORDS.get(why, why)})"))
            conn.execute("INSERT OR REPLACE INTO face_actions (photo_sha256, face_idx, channel, action, reason, consent) "
                         "VALUES (?,?,?,?,?,?)", (item.sha256, row["idx"], channel, action, why, _consent_json(consent)))


def reject(home: Home, conn: sqlite3.Connection, name: str, *, actor: str = WEB_ACTOR) -> ReviewItem:
    """The manager has looked and this photo is not to be shared. The original stays archived."""
    item = find_item(home, conn, name)
    at = now_iso()
    with transaction(conn):
        _still_waiting(conn, item)
        conn.execute("UPDATE photos SET outcome = 'rejected' WHERE sha256 = ?", (item.sha256,))
        conn.execute("INSERT INTO review_decisions (photo_sha256, at, actor, kind) VALUES (?,?,?,?)",
                     (item.sha256, at, actor, "rejected"))
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                     (at, "rejected", item.sha256, f"{item.name} rejected by {actor}", actor))
    _remove_copy(home, item)
    return item


def undo_last(home: Home, conn: sqlite3.Connection, *, actor: str = WEB_ACTOR) -> Undone:
    """Take back the last release or rejection and put the photo back in review. A release is taken back
    only while every file it put in the outbox is still there, unchanged (not collected)."""
    last = conn.execute("SELECT * FROM review_decisions WHERE undone_at IS NULL ORDER BY id DESC LIMIT 1").fetchone()
    if last is None:
        raise ReviewError("there is no release or rejection to undo.")
    photo = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (last["photo_sha256"],)).fetchone()
    if photo is None or photo["outcome"] != last["kind"]:
        raise ReviewError(f"{photo['source'] if photo else 'that photo'} has changed since it was {last['kind']}; "
                          "it cannot be taken back.")
    removed: list[Path] = []
    at = now_iso()
    with transaction(conn):  # holds the write lock: no re-check or posting mark slips in between
        if last["kind"] == "released":
            files = _uncollected(home, conn, photo, json.loads(last["channels"]))
            for row, path in files:
                os.unlink(path)
                fsync_dir(path.parent)
                removed.append(path)
                conn.execute("UPDATE outbox_files SET ended = ?, ended_at = ? WHERE id = ? AND ended IS NULL",
                             (REMOVED, at, row["id"]))
                conn.execute("UPDATE outputs SET removed_at = ? WHERE photo_sha256 = ? AND channel = ?",
                             (at, photo["sha256"], row["channel"]))
        conn.execute("UPDATE photos SET outcome = 'review' WHERE sha256 = ?", (photo["sha256"],))
        conn.execute("UPDATE review_decisions SET undone_at = ?, undone_by = ? WHERE id = ?", (at, actor, last["id"]))
        detail = f"{photo['source']}: {last['kind']} taken back by {actor}, back in review" + (
            f"; removed {', '.join(str(p.relative_to(home.root)) for p in removed)}" if removed else "")
        conn.execute("INSERT INTO events (at, kind, photo_sha256, detail, actor) VALUES (?,?,?,?,?)",
                     (at, f"{last['kind']}_undone", photo["sha256"], detail, actor))
    item = _claim_copy_name(home, conn, find_item(home, conn, photo["sha256"]))
    _refresh_copy(home, conn, item)
    return Undone(find_item(home, conn, photo["sha256"]), last["kind"], tuple(removed))


def _claim_copy_name(home: Home, conn: sqlite3.Connection, item: ReviewItem) -> ReviewItem:
    """A photo back in review whose name another waiting photo took meanwhile gets a name of its own."""
    if not any(other.name == item.name and other.sha256 != item.sha256 for other in review_queue(home, conn)):
        return item
    from photoguard.photos.durable import _unique_name

    taken = {other.name for other in review_queue(home, conn)}
    copy = _unique_name(home.review, f"{item.name}.jpg")
    while copy.stem in taken:
        copy = copy.with_name(f"{copy.stem}-{secrets.token_hex(2)}.jpg")
    plan = json.loads(conn.execute("SELECT plan FROM photos WHERE sha256 = ?", (item.sha256,)).fetchone()["plan"] or "{}")
    plan.setdefault("published", {})["review"] = str(copy.relative_to(home.root))
    conn.execute("UPDATE photos SET plan = ? WHERE sha256 = ?", (json.dumps(plan), item.sha256))
    return find_item(home, conn, item.sha256)


def _uncollected(home: Home, conn: sqlite3.Connection, photo: sqlite3.Row,
                 channels: Sequence[str]) -> list[tuple[sqlite3.Row, Path]]:
    """The outbox file of each channel a release put there, each still in its outbox (under any name),
    unchanged and not marked posted; ReviewError naming the first that is not."""
    from photoguard.flow.outbox import outbox_photo

    found = []
    for channel in channels:
        history = conn.execute("SELECT * FROM outbox_files WHERE photo_sha256 = ? AND channel = ? ORDER BY id",
                               (photo["sha256"], channel)).fetchall()
        current = history[-1] if history else None
        path = outbox_photo(home, conn, current["id"]).path if current is not None else None
        posted = any(r["posted_at"] for r in history)
        if current is None or path is None or posted or _hash_or_none(path) != current["file_sha256"]:
            what = "marked posted" if posted else "collected from the outbox or changed there"
            raise ReviewError(f"{photo['source']} cannot be taken back: its {channel} copy was already {what}.")
        found.append((current, path))
    return found


def _hash_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path) if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _remove_copy(home: Home, item: ReviewItem) -> None:
    image = item.image or home.review / f"{item.name}.jpg"
    for path in (image, image.with_suffix(".json")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    fsync_dir(home.review)
