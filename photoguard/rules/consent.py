"""The consent rule, pure: may this child be shown on this channel on this day?

Anything unclear is never consent: no roster row, a row with a problem, no face matching
(a child who cannot be matched cannot be shown), a channel the row does not say "yes" to,
or a day after the expiry date. The expiry day itself is still valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class ChildConsent:
    """One child's row of the roster, as the parents gave consent."""
    child_id: str
    name: str = ""
    face_matching: bool = False
    channels: dict[str, bool] = field(default_factory=dict)
    expires: date | None = None          # the expiry day itself is still valid
    problem: str | None = None           # the CSV row was not usable: never consent

    def any_channel(self) -> bool:
        return any(v is True for v in self.channels.values())

    def expired(self, on: date) -> bool:
        return self.expires is not None and on > self.expires


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str   # e.g. "consent for facebook", "no consent for instagram", "consent expired 2026-09-01"


def may_show(child: ChildConsent | None, channel: str, on: date) -> ConsentDecision:
    """Whether ``child`` may be visible on ``channel`` on day ``on``, with the reason."""
    if isinstance(on, datetime):
        on = on.date()
    if child is None:
        return ConsentDecision(False, "not on the roster")
    if child.problem:
        return ConsentDecision(False, f"roster row has a problem: {child.problem}")
    if child.face_matching is not True:
        return ConsentDecision(False, "no consent to face matching")
    if child.expires is not None and not isinstance(child.expires, date):
        return ConsentDecision(False, "consent expiry date unreadable")
    if child.expired(on):
        return ConsentDecision(False, f"consent expired {child.expires.isoformat()}")
    if channel not in child.channels:
        return ConsentDecision(False, f"no consent for {channel} (channel not in roster)")
    if child.channels[channel] is not True:
        return ConsentDecision(False, f"no consent for {channel}")
    return ConsentDecision(True, f"consent for {channel}")
