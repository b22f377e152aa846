"""Check again: a photo on Ready to post, or a day's photos, decided again with today's children, consents
and settings (the command line's ``reprocess``), and what came of it in words.

The page never processes a photo while a watcher holds the home's lock: it writes a request
(``flow/redo.ask``) and the watcher does it between new photos. When no watcher runs, this app takes the
lock in a thread for the time of it (``flow/redo.run_waiting``): a manager who presses the button expects
the photo checked now, not whenever PhotoGuard is next started. Photos are named by their sha256 (as the
pages already do) or a day, never by a path.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from photoguard.flow import redo as library
from photoguard.flow.watch_status import watch_status
from photoguard.web.pages import database, flash, page, state
from photoguard.web.routes.photos import SHA
from photoguard.web.security import request_logger

# How long the button waits for the outcome before showing how far it is instead: a photo takes a few
# seconds, so she usually reads what happened straight away.
WAIT_SECONDS = 8.0
BACK = {"/outbox", "/", "/check-again"}


def start_if_free(request: Request) -> None:
    """Requests waiting and nobody holding the lock (no watcher): do them in this app, in a thread."""
    from photoguard.store.lock import lock_holder

    home = state(request).home
    if not library.pending(home) or lock_holder(home) is not None:
        return
    threading.Thread(target=library.run_waiting, args=(home.root, request_logger(home)), daemon=True,
                     name="photoguard-check-again").start()


def who_does_it(home) -> str:
    """Who checks the photos again, and when, in words."""
    st = watch_status(home, recent=0)
    if st.watcher_pid is None:
        return "PhotoGuard is checking them again now."
    if st.watcher is None:
        return ("PhotoGuard is busy with other photos just now; it checks these again as soon as it has finished "
                "(open this page again then).")
    text = str(st.watcher.get("state", ""))
    if text.startswith("paused: "):
        return (f"PhotoGuard is paused ({text.removeprefix('paused: ')}); it checks these again as soon as "
                "that is sorted out.")
    return "PhotoGuard checks these again between new photos."


def _wait(home, request_id: str, seconds: float):
    deadline = time.monotonic() + seconds
    while True:
        got = library.outcome(home, request_id)
        if (got is not None and got.state == "done") or time.monotonic() >= deadline:
            return got
        time.sleep(0.25)


def _day(text: str, today: date) -> date | None:
    if text == "today":
        return today
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if today - timedelta(days=3650) <= day <= today else None


async def check_again(request: Request) -> Response:
    home = state(request).home
    form = await request.form()
    back = str(form.get("back", "/outbox"))
    back = back if back in BACK else "/outbox"
    photos = [str(v) for v in form.getlist("photo")]
    day_text = str(form.get("day", "")).strip()
    if any(not SHA.fullmatch(sha) for sha in photos) or (day_text and _day(day_text, date.today()) is None):
        flash(request, "Not checked again: the page was out of date. Open it again and try once more.")
        return RedirectResponse(back, status_code=303)

    def asking():
        with database(request) as conn:
            return library.ask(home, conn, photos, _day(day_text, date.today()) if day_text else None)

    try:
        asked = await run_in_threadpool(asking)
    except library.RedoError as exc:
        flash(request, f"Not checked again: {exc}")
        return RedirectResponse(back, status_code=303)
    start_if_free(request)
    got = await run_in_threadpool(_wait, home, asked.id, WAIT_SECONDS)
    if got is not None and got.state == "done":
        flash(request, got.words)
        return RedirectResponse(back if back != "/check-again" else f"/check-again#r-{asked.id}", status_code=303)
    words = await run_in_threadpool(who_does_it, home)
    flash(request, f"{(got.progress if got else f'Waiting to check {asked.asked} again.')} {words}")
    return RedirectResponse(f"/check-again#r-{asked.id}", status_code=303)


async def check_again_page(request: Request) -> Response:
    home = state(request).home
    start_if_free(request)   # a request left by a stopped watcher or app, with nobody to do it now

    def load():
        with database(request) as conn:
            days = library.days_with_photos(conn)
        outcomes = library.recent(home, limit=8)
        busy = any(o.state != "done" for o in outcomes)
        return days, outcomes, (who_does_it(home) if busy else "")

    days, outcomes, words = await run_in_threadpool(load)
    return page(request, "check_again.html", days=days, outcomes=outcomes, who=words, today=date.today())


routes = [
    Route("/check-again", check_again_page),
    Route("/check-again", check_again, methods=["POST"]),
]
