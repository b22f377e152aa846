"""The children on the roster as the pages and the CLI show them: the list, each child's standing per channel,
the history of consent changes in words.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date

from photoguard.rules.consent import ChildConsent
from photoguard.store.roster import compared_photos, load_consents, template_eligibility
from photoguard.store.roster_csv import UNREADABLE_EXPIRY


@dataclass(frozen=True)
class ChildRow:
    consent: ChildConsent
    line: int | None
    templates: int
    photos_accepted: int
    photos_rejected: int
    updated_at: str


@dataclass(frozen=True)
class HistoryEntry:
    changed_at: str
    field: str
    old: str | None
    new: str | None


def list_children(conn: sqlite3.Connection) -> list[ChildRow]:
    """The roster as last synced, in CSV order, with template and photo counts."""
    consents = load_consents(conn)
    rows = conn.execute(
        "SELECT c.id, c.csv_line, c.updated_at, "
        "(SELECT COUNT(*) FROM reference_photos p WHERE p.child_id = c.id AND p.status = 'accepted') AS ok, "
        "(SELECT COUNT(*) FROM reference_photos p WHERE p.child_id = c.id AND p.status = 'rejected') AS bad "
        "FROM children c ORDER BY c.csv_line, c.id").fetchall()
    # The templates counted are those matching compares now (the last year's), as the child's page says.
    return [ChildRow(consents[r["id"]], r["csv_line"], len(compared_photos(conn, r["id"])), r["ok"], r["bad"],
                     r["updated_at"]) for r in rows]


def child_history(conn: sqlite3.Connection, child_id: str) -> list[HistoryEntry]:
    """Every recorded change of this child's consent, oldest first (kept after the child leaves)."""
    return [HistoryEntry(r["changed_at"], r["field"], r["old"], r["new"]) for r in conn.execute(
        "SELECT changed_at, field, old, new FROM consent_history WHERE child_id = ? ORDER BY id", (child_id,))]


def expiring(conn: sqlite3.Connection, within_days: int, today: date | None = None) -> list[tuple[ChildConsent, int]]:
    """Children whose consent ends within ``within_days`` days (already expired ones too), with the days
    left (0 = last valid day is today, negative = expired that many days ago); soonest first. A child whose
    consent was withdrawn (no channel left) has nothing that ends: not listed."""
    today = today or date.today()
    out = [(c, (c.expires - today).days) for c in load_consents(conn).values()
           if c.expires is not None and c.any_channel() and (c.expires - today).days <= within_days]
    return sorted(out, key=lambda item: (item[1], item[0].child_id))


@dataclass(frozen=True)
class ChildStanding:
    """One child of the roster as the manager reads it (``children``, ``enrol`` and the web page alike)."""
    face_matching: bool
    channels: dict[str, bool]    # what the line allows; every channel "no" while the line has a problem
    expires: str                 # "2026-08-31", "-" (no end date) or "not readable"
    status: str                  # "ok", "PROBLEM", "EXPIRED", or why the child is not matched
    problems: list[str]          # what needs the manager, in words, each saying what to do

    @property
    def has_problem(self) -> bool:
        return bool(self.problems)


def child_standing(consent: ChildConsent, templates: int, channels: tuple[str, ...] | list[str],
                   on: date) -> ChildStanding:
    """What a line of the roster means today. Fail closed in words too: a line with a problem shows "no"
    for every channel, an expiry that cannot be read is never "no end date", and a child who may be
    matched but has no usable reference photo is a problem (she can never be recognised, so never shown)."""
    problems: list[str] = []
    expiry_unreadable = bool(consent.problem) and UNREADABLE_EXPIRY in consent.problem
    if consent.problem:
        problems.append(f"the line in children.csv needs fixing: {consent.problem}. Until then: no consent")
    why = template_eligibility(consent, on)
    if why is None and templates == 0:
        problems.append(f"no usable reference photo — add one in enrol/{consent.child_id}/ "
                        "(until then this child cannot be recognised, so is always obscured)")
    if problems:
        status = "PROBLEM"
    elif why is None:
        status = "ok"
    elif consent.expired(on):
        status = "EXPIRED"
    else:
        status = why
    ok_line = not consent.problem
    return ChildStanding(
        face_matching=ok_line and consent.face_matching is True,
        channels={ch: ok_line and consent.channels.get(ch) is True for ch in channels},
        expires="not readable" if expiry_unreadable else (consent.expires.isoformat() if consent.expires else "-"),
        status=status, problems=problems)


def near_ids(conn: sqlite3.Connection, child_id: str, limit: int = 3) -> list[str]:
    """Roster ids (and ids of children who left) that look like ``child_id``: for a typo, "did you mean"."""
    import difflib

    known = {r[0] for r in conn.execute("SELECT id FROM children UNION SELECT DISTINCT child_id FROM consent_history")}
    by_lower: dict[str, str] = {k.lower(): k for k in sorted(known)}
    close = difflib.get_close_matches(child_id.lower(), list(by_lower), n=limit, cutoff=0.6)
    starts = [k for k in by_lower if k.startswith(child_id.lower()) and k not in close] if child_id else []
    return [by_lower[k] for k in [*close, *starts][:limit]]


def summary_words(summary: str | None) -> str:
    """A consent summary as stored in the history ("face_matching=yes facebook=no expires=never
    problem=...") as a sentence: "face matching yes, Facebook no, no end date, problem: ..."."""
    if not summary:
        return ""
    head, _, problem = summary.partition(" problem=")
    if summary.startswith("problem="):
        head, problem = "", summary[len("problem="):]
    words = []
    for part in head.split(" "):
        key, _, value = part.partition("=")
        if key == "expires":
            unreadable = value == "never" and UNREADABLE_EXPIRY in problem
            words.append("end date not readable" if unreadable else "no end date" if value == "never" else f"ends {value}")
        elif key == "face_matching":
            words.append(f"face matching {value}")
        elif key:
            words.append(f"{key.capitalize()} {value}")
    if problem:
        words.append(f"problem: {problem}")
    return ", ".join(words)


def history_words(entry: HistoryEntry) -> str:
    """One change of a child's consent in words (the time apart: see ``localtime.when_words``)."""
    def value(v: str | None) -> str:
        return {"never": "no end date", "none": "none"}.get(v or "", v or "")

    if entry.field == "added":
        return f"added to the roster: {summary_words(entry.new)}"
    if entry.field == "removed":
        return f"taken off the roster (was: {summary_words(entry.old)})"
    if entry.field.startswith("channel:"):
        return f"{entry.field[8:].capitalize()}: {entry.old} -> {entry.new}"
    name = {"expires": "end date"}.get(entry.field, entry.field.replace("_", " "))
    return f"{name}: {value(entry.old)} -> {value(entry.new)}"
