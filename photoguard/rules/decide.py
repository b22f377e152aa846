"""What each face gets on each channel, and what to ask the manager: pure rules over identities and consents, no
files, no database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from photoguard.engine.detect import FaceBox
from photoguard.engine.identify import Identity
from photoguard.photos.places import where_in_photo
from photoguard.rules.consent import ChildConsent, ConsentDecision, may_show

SHOWN, OBSCURED = "shown", "obscured"


SECOND_LOOK_REASON = "found on the second look"


Action = tuple[str, str, ChildConsent | None]   # (shown/obscured, why, the consent used)


def decide(identities: Sequence[Identity], consents: dict[str, ChildConsent], channels: Sequence[str],
           today: date) -> dict[str, list[Action]]:
    """Pure: per channel, per face, shown only for an identified child whose consent allows it today."""
    actions: dict[str, list[Action]] = {}
    for channel in channels:
        per_face: list[Action] = []
        for identity in identities:
            if identity.child_id is None:
                per_face.append((OBSCURED, identity.reason, None))
                continue
            consent = consents.get(identity.child_id)
            verdict: ConsentDecision = may_show(consent, channel, today)
            per_face.append((SHOWN if verdict.allowed else OBSCURED, verdict.reason, consent))
        actions[channel] = per_face
    return actions


@dataclass(frozen=True)
class Question:
    """A face PhotoGuard is not sure enough to show, put to the manager: is face ``face`` (index) ``child_id``?"""
    face: int
    child_id: str


def questions_to_ask(identities: Sequence[Identity], widths: Sequence[int], consents: dict[str, ChildConsent],
                     channels: Sequence[str], today: date, *, ask_from: float, min_face_px: int,
                     ask_standout: float = 0.0) -> list[Question]:
    """Pure: the faces worth asking the manager about instead of obscuring them without a word.

    A face is asked about when it was not identified but is at least ``ask_from`` alike to its nearest
    child, stands out for that child from the rest of the roster by at least ``ask_standout`` (see
    ``Identity.standout``; a face as alike to many children, as babies' faces are to each other, is
    rarely that child), is wide enough to identify, no other face of the photo is already that child,
    and that child's consent would show it on at least one channel today (asking about a child who is
    obscured anyway would only cost the manager time). One question per child: the most alike face.
    ``ask_from`` of 1 or more asks nothing; ``ask_standout`` 0 does not look at the rest of the roster.
    Asking never shows anything: the face stays obscured until a person says who it is."""
    if not ask_from < 1:
        return []
    taken = {ident.child_id for ident in identities if ident.child_id is not None}
    best: dict[str, int] = {}
    for i, (ident, width) in enumerate(zip(identities, widths)):
        child = ident.nearest
        if ident.child_id is not None or child is None or child in taken or width < min_face_px:
            continue
        # Written as "not (alike enough)" so that a NaN similarity never asks.
        if not (ident.similarity is not None and ident.similarity >= ask_from):
            continue
        if ask_standout > 0 and ident.standout is not None and not ident.standout >= ask_standout:
            continue
        if not any(may_show(consents.get(child), channel, today).allowed for channel in channels):
            continue
        if child not in best or ident.similarity > identities[best[child]].similarity:
            best[child] = i
    return sorted((Question(i, child) for child, i in best.items()), key=lambda q: q.face)


def question_words(questions: Sequence[Question], faces: Sequence[FaceBox], width: int, height: int) -> str:
    """"not sure who face 2 (top left) is" for each question, joined. No child's name: this goes into the
    log; the review page asks "is this Ada?" itself."""
    return "; ".join(f"not sure who face {q.face + 1} ({where_in_photo(faces[q.face].box, width, height)}) is"
                     for q in questions)


def _consent_json(consent: ChildConsent | None) -> str | None:
    if consent is None:
        return None
    return json.dumps({
        "child": consent.child_id, "face_matching": consent.face_matching, "channels": consent.channels,
        "expires": consent.expires.isoformat() if consent.expires else None, "problem": consent.problem,
    }, sort_keys=True)
