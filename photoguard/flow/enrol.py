"""What `photoguard enrol` and every change on the Children page do: sync the roster, then re-check the outbox
against the new consents, even when the sync failed half way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from photoguard.store.home import Home
from photoguard.store.roster_csv import RosterError
from photoguard.store.roster_file import RosterFileError


@dataclass
class EnrolResult:
    sync: object              # roster.SyncResult
    outbox: list              # pipeline.Recheck: outbox files re-rendered or removed


def enrol(home: Home, conn: sqlite3.Connection, detector=None,
          progress: Callable[[int, int, str], None] | None = None,
          accept_largest: bool | frozenset[str] = False) -> EnrolResult:
    """What ``photoguard enrol`` does: sync the roster, then re-check the outbox against the new consents.

    ``accept_largest``: reference photos rejected for a second face (a poster behind) are checked again
    and their largest face used."""
    from photoguard.flow.pipeline import Processor
    from photoguard.flow.recheck import recheck_outbox
    from photoguard.store.roster import sync_roster

    def recheck() -> list:
        processor = Processor(home, conn, detector=detector if detector is not None and hasattr(detector, "detect") else None)
        return recheck_outbox(processor)

    try:
        result = sync_roster(home, conn, progress=progress, detector=detector, accept_largest=accept_largest)
    except RosterError as exc:
        recheck()
        raise RosterFileError(f"{exc} Nothing was changed.")
    except BaseException:
        # Consents are committed before anything slow: whatever stopped the sync after that (a full disk,
        # a photo that cannot be read), the outbox is re-checked against what is on record now.
        recheck()
        raise
    return EnrolResult(result, recheck())
