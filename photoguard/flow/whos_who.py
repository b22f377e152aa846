"""Who's who: every question PhotoGuard is waiting to ask about the photos held for the manager, one card per
face, grouped by the child it looks like, and her answers.

A question is a face of a waiting photo that PhotoGuard was not sure enough of to show ("is this Ada?") and
that no change of the manager has answered yet (:func:`photoguard.flow.review.review_detail` says which).
Answering is the review library's: yes and someone else are :func:`review.confirm_face`, no is
:func:`review.obscure_face`. A photo held only to ask goes to Ready to post by itself once its last question is
answered (:func:`photoguard.flow.release.release` on every channel, rendered from the answers and audited as
the manager's release); a photo held for anything else stays on Photos to check.

The face itself is shown to the manager unobscured, cut from the archived original on request
(:func:`face_crop`): it is made in memory, never written anywhere.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from photoguard.engine.identify import pair_in
from photoguard.flow import review
from photoguard.flow.learning import NOT_KEPT
from photoguard.flow.review import WEB_ACTOR, ReviewError
from photoguard.photos.images import load_image
from photoguard.photos.save import encode_stripped_jpeg
from photoguard.store.home import Home

YES, NO = "yes", "no"
CROP_PX = 480          # the longer side of a face's crop, in pixels (small faces are enlarged)
CROP_MARGIN = 0.35     # around the face's box, as a fraction of its size on each side: hair, ears, chin
NOT_SURE_BETWEEN = "Looks like two children"   # the group of faces as alike to two children


@dataclass(frozen=True)
class Reference:
    """A reference photo of a child (enrol/<id>/...), as the children's pages serve it (by its sha256)."""
    child_id: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class Question:
    sha256: str                  # the photo's id (the review pages' id)
    source: str                  # the photo's file name as dropped
    number: int                  # the face's number on the photo's own page
    question: str                # "Is this Ada?" or "Is this Ada or Eve?"
    child_id: str | None         # the child it looks like (what Yes means); None when alike to two
    choices: tuple[str, ...]     # the children it may be: (child_id,) or the two it is as alike to
    where: str                   # "bottom left"
    held_only_to_ask: bool       # answering its photo's last question sends it to Ready to post


@dataclass(frozen=True)
class Group:
    child_id: str | None         # None: the faces as alike to two children
    name: str
    reference: Reference | None  # the child's newest reference photo, for the cards
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class WhosWho:
    groups: tuple[Group, ...]
    children: tuple[tuple[str, str], ...]    # (id, name) of every child on the roster, by name: "someone else"
    names: dict[str, str]                    # id -> name
    photos: int                              # how many photos the questions are about
    references: dict[str, Reference | None]  # child id -> newest reference photo, for every child asked about

    @property
    def left(self) -> int:
        return sum(len(g.questions) for g in self.groups)

    def questions(self) -> list[Question]:
        return [q for g in self.groups for q in g.questions]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _name(child_id: str, consents) -> str:
    consent = consents.get(child_id)
    return consent.name if consent and consent.name else child_id


def _questions_of(home: Home, conn: sqlite3.Connection, item: review.ReviewItem, today: date) -> list[Question]:
    detail = review.review_detail(home, conn, item.sha256, today)
    if detail.problem:    # the original is gone: the face cannot be shown, the photo cannot go out
        return []
    rows = {r["idx"] + 1: r for r in conn.execute("SELECT idx, reason FROM faces WHERE photo_sha256 = ?", (item.sha256,))}
    out = []
    for face in detail.faces:
        if face.question is None:
            continue
        if face.asked_about is not None:
            choices: tuple[str, ...] = (face.asked_about,)
        else:
            row = rows.get(face.number)
            choices = tuple(pair_in(row["reason"] or "") or ()) if row is not None else ()
        out.append(Question(item.sha256, item.source, face.number, _sentence(face.question), face.asked_about,
                            choices, face.where, detail.held_only_to_ask))
    return out


def open_questions(home: Home, conn: sqlite3.Connection, today: date | None = None) -> WhosWho:
    """Every open question of every photo waiting for review, grouped by the child each face looks like
    (children by name, then the faces as alike to two children); oldest photo first within a group."""
    from photoguard.store.roster import load_consents

    today = today or date.today()
    consents = load_consents(conn)
    by_child: dict[str | None, list[Question]] = {}
    photos = set()
    for item in review.review_queue(home, conn):
        for q in _questions_of(home, conn, item, today):
            by_child.setdefault(q.child_id, []).append(q)
            photos.add(q.sha256)
    asked = {c for qs in by_child.values() for q in qs for c in q.choices}
    references = {c: newest_reference(home, conn, c) for c in sorted(asked)}
    groups = [Group(cid, _name(cid, consents), references.get(cid), tuple(qs))
              for cid, qs in by_child.items() if cid is not None]
    groups.sort(key=lambda g: (g.name.lower(), g.child_id or ""))
    if None in by_child:
        groups.append(Group(None, NOT_SURE_BETWEEN, None, tuple(by_child[None])))
    children = tuple(sorted(((c, _name(c, consents)) for c in consents), key=lambda c: (c[1].lower(), c[0])))
    return WhosWho(tuple(groups), children, dict(children), len(photos), references)


def newest_reference(home: Home, conn: sqlite3.Connection, child_id: str) -> Reference | None:
    """The child's newest accepted reference photo still in enrol/: the newest face learnt from an answer if
    there is one, else the newest file."""
    rows = conn.execute("SELECT r.path, r.sha256, l.learned_at FROM reference_photos r LEFT JOIN learned_faces l "
                        "ON l.child_id = r.child_id AND l.path = r.path "
                        "WHERE r.child_id = ? AND r.status = 'accepted'", (child_id,)).fetchall()
    best, best_key = None, None
    enrol = home.enrol.resolve()
    for row in rows:
        path = home.enrol / row["path"]
        try:
            real = path.resolve(strict=True)
            if not real.is_relative_to(enrol) or not real.is_file():
                continue
            key = (row["learned_at"] is not None, row["learned_at"] or "", real.stat().st_mtime, row["path"])
        except (OSError, RuntimeError):
            continue
        if best_key is None or key > best_key:
            best, best_key = Reference(child_id, real, row["sha256"]), key
    return best


def _open_question(home: Home, conn: sqlite3.Connection, sha: str, number: int, today: date) -> Question:
    item = next((i for i in review.review_queue(home, conn) if i.sha256 == sha), None)
    if item is None:
        raise ReviewError("that photo is no longer waiting: its questions were answered already, "
                          "or it was released or rejected.")
    for q in _questions_of(home, conn, item, today):
        if q.number == number:
            return q
    raise ReviewError(f"face {number} of {item.source} has no question waiting: it was answered already.")


def face_crop(home: Home, conn: sqlite3.Connection, sha: str, number: int, size: int = CROP_PX,
              today: date | None = None) -> bytes:
    """The face PhotoGuard asks about, unobscured and enlarged, cut from the archived original: a JPEG with
    no metadata, made in memory and never written to disk. Only a face with an open question is cut."""
    today = today or date.today()
    _open_question(home, conn, sha, number, today)
    photo = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    row = conn.execute("SELECT box FROM faces WHERE photo_sha256 = ? AND idx = ?", (sha, number - 1)).fetchone()
    image = load_image(review._archived(home, photo))
    if image.sha256 and image.sha256 != sha:
        raise ReviewError(f"the archived original of {photo['source']} is not the photo that was processed.")
    left, top, right, bottom = (float(v) for v in json.loads(row["box"]))
    height, width = image.rgb.shape[:2]
    side = max(right - left, bottom - top) * (1 + 2 * CROP_MARGIN)   # a square round the face's middle
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(width, int(cx + side / 2 + 1)), min(height, int(cy + side / 2 + 1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ReviewError(f"face {number} of {photo['source']} lies outside the photo.")
    crop = Image.fromarray(image.rgb[y0:y1, x0:x1])
    scale = size / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.LANCZOS)
    return encode_stripped_jpeg(np.asarray(crop.convert("RGB")), quality=88)


RELEASED, STILL_WAITS, NOT_SENT = "released", "still waits", "not sent"


def _after_answer(home: Home, conn: sqlite3.Connection, sha: str, actor: str, today: date) -> tuple[str, str] | None:
    """A photo held only to ask whose last question was just answered goes to Ready to post. When its last
    question is answered: (what became of it, words for the manager); else None."""
    from photoguard.flow.release import release

    try:
        detail = review.review_detail(home, conn, sha, today)
    except ReviewError:
        return None          # no longer waiting (released or rejected meanwhile)
    if any(f.question is not None for f in detail.faces):
        return None
    source = detail.item.source
    if not detail.held_only_to_ask:
        return STILL_WAITS, f"{source} has no more questions; it still waits on Photos to check ({detail.item.reason})."
    try:
        done = release(home, conn, sha, actor=actor, today=today)
    except ReviewError as exc:
        return NOT_SENT, f"{source} has no more questions but was not sent on: {exc} It waits on Photos to check."
    return RELEASED, (f"{source} had no other reason to wait: it is in Ready to post "
                      f"({', '.join(c.capitalize() for c in done.files)}).")


def _answer(home: Home, conn: sqlite3.Connection, sha: str, number: int, said: str, actor: str,
            today: date) -> tuple[str, tuple[str, str] | None]:
    q = _open_question(home, conn, sha, number, today)
    if said == NO:
        words = review.obscure_face(home, conn, sha, number, actor=actor)
    else:
        child = q.child_id if said == YES else said
        if child is None:
            raise ReviewError(f"face {number} of {q.source} looks like two children: say which one it is.")
        words = review.confirm_face(home, conn, sha, number, child, actor=actor, today=today)
    return words, _after_answer(home, conn, sha, actor, today)


def answer(home: Home, conn: sqlite3.Connection, sha: str, number: int, said: str, *, actor: str = WEB_ACTOR,
           today: date | None = None) -> list[str]:
    """The manager's answer about face ``number`` of the photo ``sha``: ``YES`` (it is the child it looks
    like), ``NO`` (it is not: obscured everywhere), or a child's id (it is that child). Returns what to tell
    her; a refusal is a :class:`ReviewError`."""
    words, after = _answer(home, conn, sha, number, said, actor, today or date.today())
    return [words, after[1]] if after else [words]


def _photos(sources: list[str]) -> str:
    return sources[0] if len(sources) == 1 else f"{len(sources)} photos ({', '.join(sources)})"


def yes_to_all(home: Home, conn: sqlite3.Connection, child_id: str, shown: Collection[tuple[str, int]], *,
               actor: str = WEB_ACTOR, today: date | None = None) -> tuple[int, list[str]]:
    """Yes to the open questions about ``child_id`` that the manager was shown (``shown``: (photo sha256, face
    number) of each card on her page): (how many were answered, what to tell her, in a few sentences). A face
    asked about since she loaded the page is not answered for her, nor one now asked about another child; a
    face that cannot be that child (another face of the same photo is already taken to be them) is left open
    and said."""
    today = today or date.today()
    open_now = [q for q in open_questions(home, conn, today).questions() if q.child_id == child_id]
    asked = [q for q in open_now if (q.sha256, q.number) in set(shown)]
    done, refused, problems = 0, [], []
    became: dict[str, list[str]] = {RELEASED: [], STILL_WAITS: []}
    for q in asked:
        try:
            said, after = _answer(home, conn, q.sha256, q.number, YES, actor, today)
        except ReviewError as exc:
            refused.append(f"Not done: {exc}")
            continue
        done += 1
        if NOT_KEPT in said:   # the answer did not teach: she is told why, as for a single answer
            problems.append(f"{q.source}, face {q.number}: {said[said.index(NOT_KEPT):]}")
        if after and after[0] in became:
            became[after[0]].append(q.source)
        elif after:
            problems.append(after[1])
    from photoguard.store.roster import load_consents

    name = _name(child_id, load_consents(conn))
    words = []
    if done:
        words.append(f"Yes to all: {done} face{'s are' if done != 1 else ' is'} {name}.")
    if became[RELEASED]:
        words.append(f"{_photos(became[RELEASED])} had no other reason to wait: "
                     f"{'they are' if len(became[RELEASED]) > 1 else 'it is'} in Ready to post.")
    if became[STILL_WAITS]:
        many = len(became[STILL_WAITS]) > 1
        words.append(f"{_photos(became[STILL_WAITS])} {'have' if many else 'has'} no more questions but still "
                     f"{'wait' if many else 'waits'} on Photos to check for another reason.")
    unseen = len(open_now) - len(asked)
    if unseen:
        words.append(f"{unseen} more face{'s' if unseen != 1 else ''} that may be {name} "
                     f"arrived since the page was opened: answer {'them' if unseen != 1 else 'it'} below.")
    return done, words + problems + refused
