"""The consent rule, pure: may this child be shown on this channel on this day?  (CONTRACT STUB — helper A implements)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class ChildConsent:
    """One child's row of the roster, as the parents gave consent."""
    child_id: str
    name: str = ""
    face_matching: bool = False
    channels: dict[str, bool] = field(default_factory=dict)
    expires: date | None = None          # the expiry day itself is still valid
    problem: str | None = None           # the CSV row was not usable: never consent


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str   # e.g. "consent for facebook", "no consent for instagram", "consent expired 2026-09-01"


def may_show(child: ChildConsent | None, channel: str, on: date) -> ConsentDecision:
    raise NotImplementedError
