"""A release racing a consent change, and two releases of one photo at once (issue 22, items 2 and 9).

Real photos, a real home and database, the real release and the real withdrawal (children.csv changed,
synced as `enrol` syncs it, the outbox re-checked). Where the order of two things must be fixed, the
second is started from inside the first at the moment it has placed its files in the outbox."""

from __future__ import annotations

import threading

import pytest
from test_pipeline import CSV_HEADER, diff, region
from test_review import conn, crop, enrolled, held_home, home, original, processor, shared_processor  # noqa: F401

import photoguard.flow.release as release_module
from photoguard.flow.enrol import enrol
from photoguard.flow.pipeline import Processor
from photoguard.flow.release import release
from photoguard.flow.review import ReviewError, confirm_face, review_detail, review_queue
from photoguard.store.db import connect

GRACE_WITHDRAWN = CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,no,no,no,no,\n"


def _confirm_grace(home, conn) -> None:
    number = next(f.number for f in review_detail(home, conn, "held").faces if f.kind == "second look")
    confirm_face(home, conn, "held", number, "grace", actor="manager")


def _withdraw_grace(home, shared_processor) -> None:
    """What the Withdraw button does: the line rewritten, then synced and the outbox re-checked."""
    home.roster_csv.write_text(GRACE_WITHDRAWN, encoding="utf-8")
    own = connect(home.database)
    try:
        enrol(home, own, detector=shared_processor)
    finally:
        own.close()


def _outbox(home) -> list:
    return sorted(p for ch in ("facebook", "instagram", "twitter") for p in home.outbox_for(ch).rglob("*.jpg"))


def _grace_shown_anywhere(home) -> list:
    rgb, boxes = original()
    g = boxes["grace"]
    return [p for p in _outbox(home) if diff(region(p, g), crop(rgb, g)) < 8]


def test_a_withdrawal_while_the_release_places_its_files_stops_the_release(home, conn, processor, shared_processor,
                                                                           monkeypatch):
    _confirm_grace(home, conn)
    real = release_module._publish_channels
    placed: list = []

    def then_withdraw(*args, **kwargs):
        real(*args, **kwargs)
        placed.extend(_outbox(home))
        _withdraw_grace(home, shared_processor)   # in another tab, in the same second

    monkeypatch.setattr(release_module, "_publish_channels", then_withdraw)
    with pytest.raises(ReviewError, match="the consent of Grace changed while it was being released"):
        release(home, conn, "held", actor="manager", processor=processor)
    assert len(placed) == 3                       # it had got as far as the outbox
    assert _outbox(home) == []                    # and nothing of it stays there
    assert [i.name for i in review_queue(home, conn)] == ["held"]
    assert conn.execute("SELECT COUNT(*) FROM outbox_files").fetchone()[0] == 0
    monkeypatch.undo()
    # Looked at again and released: Grace obscured everywhere now.
    done = release(home, conn, "held", actor="manager", processor=processor)
    assert len(done.files) == 3 and _grace_shown_anywhere(home) == []


def test_a_withdrawal_just_after_the_release_is_recorded_remakes_its_files(home, conn, processor, shared_processor):
    _confirm_grace(home, conn)
    done = release(home, conn, "held", actor="manager", processor=processor)
    assert _grace_shown_anywhere(home) == [done.files["facebook"]]
    _withdraw_grace(home, shared_processor)
    assert _grace_shown_anywhere(home) == []


def test_release_and_withdrawal_at_the_same_instant_never_leave_grace_shown(home, conn, shared_processor):
    _confirm_grace(home, conn)
    start = threading.Barrier(2, timeout=60)
    errors: list[str] = []

    def release_tab() -> None:
        own = connect(home.database)
        try:
            proc = Processor(home, own, detector=shared_processor)
            start.wait()
            release(home, own, "held", actor="manager", processor=proc)
        except ReviewError as exc:
            errors.append(str(exc))
        finally:
            own.close()

    tab = threading.Thread(target=release_tab)
    tab.start()
    start.wait()
    _withdraw_grace(home, shared_processor)
    tab.join(120)
    assert not tab.is_alive()
    # Whichever came first: no copy shows Grace, and the database agrees that she has no consent.
    assert _grace_shown_anywhere(home) == []
    assert conn.execute("SELECT face_matching FROM children WHERE id = 'grace'").fetchone()[0] == 0
    assert all("consent of Grace changed" in e for e in errors), errors


def test_a_second_release_of_the_same_photo_meanwhile_is_told_and_changes_nothing(home, conn, processor,
                                                                                shared_processor, monkeypatch):
    real = release_module._publish_channels
    second: list[str] = []

    def and_a_second_window(*args, **kwargs):
        real(*args, **kwargs)
        own = connect(home.database)
        try:
            release(home, own, "held", ["facebook"], actor="manager",
                    processor=Processor(home, own, detector=shared_processor))
        except ReviewError as exc:
            second.append(str(exc))
        finally:
            own.close()

    monkeypatch.setattr(release_module, "_publish_channels", and_a_second_window)
    done = release(home, conn, "held", actor="manager", processor=processor)
    assert second == ["held is being released in another window just now; nothing more was done here. "
                      "Look at the list again in a moment."]
    assert sorted(done.files) == ["facebook", "instagram", "twitter"]
    assert _outbox(home) == sorted(done.files.values())    # one copy per channel, all recorded
    assert conn.execute("SELECT COUNT(*) FROM outbox_files").fetchone()[0] == 3


def test_two_releases_at_the_same_instant_one_wins_the_other_is_told(home, shared_processor):
    start = threading.Barrier(2, timeout=60)
    results: list[str] = []

    def window() -> None:
        own = connect(home.database)
        try:
            proc = Processor(home, own, detector=shared_processor)
            start.wait()
            release(home, own, "held", actor="manager", processor=proc)
            results.append("released")
        except ReviewError as exc:
            results.append(str(exc))
        finally:
            own.close()

    windows = [threading.Thread(target=window) for _ in range(2)]
    for w in windows:
        w.start()
    for w in windows:
        w.join(120)
    assert len(results) == 2 and results.count("released") == 1, results
    other = next(r for r in results if r != "released")
    assert "in another window just now" in other or "released by someone else just now" in other, other
    assert len(_outbox(home)) == 3
