"""Times as the nursery reads them: the computer's local time, to the minute, no zone, no 'T'.

Stored times stay ISO text with their offset (``pipeline.now_iso``); only what a person reads goes through
here, the same function for the command line, the web pages and the report.
"""

from __future__ import annotations

from datetime import date, datetime


def local_moment(iso: str | None) -> datetime | None:
    """The stored ISO time in this computer's time zone now (None if it is not a time). A time stored
    without an offset was written as local time and is taken as it is."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return moment.astimezone() if moment.tzinfo is not None else moment


def when_words(iso: str | None, today: date | None = None) -> str:
    """'today 14:05', 'yesterday 09:30' or '24 Nov 2026 14:05' in local time; a bare date stays a date.
    Text that is not a time is returned as it is (never an error where a person reads)."""
    moment = local_moment(iso)
    if moment is None:
        return iso or ""
    if isinstance(iso, str) and len(iso) == 10:   # a day, not a moment
        return f"{moment:%d %b %Y}"
    today = today or date.today()
    days = (today - moment.date()).days
    if days == 0:
        return f"today {moment:%H:%M}"
    if days == 1:
        return f"yesterday {moment:%H:%M}"
    return f"{moment:%d %b %Y %H:%M}"


def clock_words(iso: str | None, with_day: bool = False) -> str:
    """'14:05' (or '24 Nov 14:05' with ``with_day``) in local time, for lists of one day or a few."""
    moment = local_moment(iso)
    if moment is None:
        return iso or ""
    return f"{moment:%d %b %H:%M}" if with_day else f"{moment:%H:%M}"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
