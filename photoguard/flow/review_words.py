"""A held photo's faces in the manager's words: who it is taken to be, why, what each channel gets, her changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date

from photoguard.engine.identify import MATCHED, NO_CHILDREN, NO_ENCODING, NOT_CLOSE, TOO_SMALL, Identity, pair_in
from photoguard.rules.consent import ChildConsent
from photoguard.rules.decide import SECOND_LOOK_REASON, Action

DRAWN_REASON = "drawn by the manager"


OBSCURED_BY_MANAGER = "obscured by the manager"


CONFIRMED_BY_MANAGER = "confirmed by the manager"


UNCONFIRMED = "the manager's confirmation was taken back"


# The identity engine's reasons, as the manager reads them.
_WORDS = {
    NOT_CLOSE: "not close enough to any enrolled child",
    TOO_SMALL: "too small to identify",
    NO_ENCODING: "the face could not be measured",
    NO_CHILDREN: "no children are enrolled to compare with",
    SECOND_LOOK_REASON: "a face the first look missed",
    DRAWN_REASON: "an area you marked",
    OBSCURED_BY_MANAGER: "you chose to obscure it",
    UNCONFIRMED: "you took back who it is",
}


def _who(child_id: str | None, consents: dict[str, ChildConsent]) -> str:
    if child_id is None:
        return "unknown"
    consent = consents.get(child_id)
    return consent.name if consent and consent.name else child_id


def _identity_words(row: sqlite3.Row, identity: Identity, consents: dict[str, ChildConsent]) -> str:
    if identity.reason == CONFIRMED_BY_MANAGER:
        return f"you confirmed it is {_who(identity.child_id, consents)}"
    if identity.reason == MATCHED:
        return f"recognised as {_who(identity.child_id, consents)}"
    if identity.reason in (OBSCURED_BY_MANAGER, UNCONFIRMED):
        return _WORDS[identity.reason]
    return _reason_words(row["reason"] or "", consents) or "not recognised"


def _reason_words(reason: str, consents: dict[str, ChildConsent]) -> str:
    """The engine's reason as the manager reads it, children by name."""
    pair = pair_in(reason)
    return f"as alike to {_who(pair[0], consents)} as to {_who(pair[1], consents)}" if pair else _WORDS.get(reason, reason)


def _kind(row: sqlite3.Row) -> str:
    return {SECOND_LOOK_REASON: "second look", DRAWN_REASON: "drawn"}.get(row["reason"], "face")


def _outcome_words(action: Action, identity: Identity, consents: dict[str, ChildConsent]) -> str:
    what, why, _ = action
    if identity.child_id is None:
        if why in (DRAWN_REASON, OBSCURED_BY_MANAGER, UNCONFIRMED):
            return _WORDS[why]
        return f"not recognised: {_reason_words(why, consents)}"
    return why


def _question(row: sqlite3.Row, consents: dict[str, ChildConsent], channels: Sequence[str],
              today: date) -> tuple[str | None, str | None, str | None]:
    """What PhotoGuard asks about a face it was not sure of: (question, child to choose for the answer, words
    for the face), or Nones. Nothing is asked about a child who is off the roster or whose consent shows
    them nowhere today (whatever the answer, the face stays obscured); a face as alike to two children
    asks which one, with neither chosen for the manager."""
    from photoguard.rules.consent import may_show

    asked = row["asked_about"]
    if asked is None or not any(may_show(consents.get(asked), c, today).allowed for c in channels):
        return None, None, None
    pair = pair_in(row["reason"])
    if pair is not None:
        first, second = (_who(c, consents) for c in pair)
        return f"is this {first} or {second}?", None, f"looks as much like {first} as like {second}"
    name = _who(asked, consents)
    return f"is this {name}?", asked, f"looks like {name}, but not alike enough to be sure"


def _edit_words(edit: sqlite3.Row, consents: dict[str, ChildConsent]) -> str:
    from photoguard.store.localtime import when_words

    number = edit["face_idx"] + 1
    by = f"({edit['actor']}, {when_words(edit['at'])})"
    if edit["kind"] == "obscure":
        return f"face {number}: obscure it {by}"
    if edit["kind"] == "confirm":
        return f"face {number}: it is {_who(edit['child_id'], consents)} {by}"
    return f"face {number}: an area marked to obscure {by}"
