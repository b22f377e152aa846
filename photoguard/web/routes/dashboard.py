"""The first page: is PhotoGuard working, what waits for the manager, whose consent ends soon."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from photoguard.flow.outbox import takedown_list
from photoguard.flow.review import review_queue
from photoguard.flow.watch_status import not_taken_words, watch_status
from photoguard.store.children import expiring
from photoguard.store.lock import CHECKING_AGAIN, WATCH_COMMAND, lock_doing
from photoguard.web.pages import database, page, state

EXPIRING_DAYS = 30


def watcher_words(st, holder: str | None = None) -> tuple[bool, str]:
    """(running?, a sentence for the manager) from the watcher's own status and what holds the home's lock."""
    if st.disk_full:
        return st.watcher_pid is not None, ("The computer's disk is full: PhotoGuard cannot take photos in or "
                                            "change anything until there is room. Free some space (posted photos "
                                            "in the outbox, the recycle bin); photos wait in the inbox.")
    if st.watcher_pid is None:
        return False, ("PhotoGuard is not watching the inbox: new photos wait there until it is started "
                       "(photoguard watch, or the service).")
    if st.watcher is None:
        # The lock is held but no watcher has said how it is: one starting up (loading its face models),
        # the pages checking photos again, or a command run by hand.
        if holder == WATCH_COMMAND:
            return True, "PhotoGuard is starting to watch the inbox."
        if holder == CHECKING_AGAIN:
            return True, "PhotoGuard is checking photos again; new photos wait in the inbox until it is done."
        return True, "Another PhotoGuard job is working on the photos right now."
    state_text = str(st.watcher.get("state", ""))
    if state_text.startswith("paused: "):
        return True, f"PhotoGuard is running but paused: {state_text.removeprefix('paused: ')}."
    if state_text == "stopping":
        return True, "PhotoGuard is stopping."
    busy = int(st.watcher.get("in_flight", 0) or 0)
    return True, "PhotoGuard is watching the inbox" + (f" and working on {busy} photo(s) now." if busy else ".")


def failed_count(home) -> int:
    """Files in failed/, whatever they are (a text file dropped by mistake too), not counting the note
    PhotoGuard writes beside each one (``<name>.txt``)."""
    files = {p for p in home.failed.rglob("*") if p.is_file() and not p.name.startswith(".")}
    return sum(1 for p in files if not (p.suffix == ".txt" and p.with_name(p.stem) in files))


async def dashboard(request: Request) -> Response:
    web = state(request)
    home = web.home
    st = watch_status(home, recent=8)
    running, words = watcher_words(st, lock_doing(home))
    with database(request) as conn:
        soon = expiring(conn, EXPIRING_DAYS, date.today())
        takedown = takedown_list(conn)
        queue = review_queue(home, conn)
    waiting = {item.source for item in queue}
    # A photo held earlier today that no photo of that name waits for any more: the manager has checked it.
    checked = {r.name for r in st.recent if r.status == "review" and r.name not in waiting}
    return page(request, "dashboard.html", running=running, watcher_words=words, status=st,
                review_count=len(queue), checked=checked, failed=failed_count(home), expiring=soon,
                takedown=takedown, expiring_days=EXPIRING_DAYS,
                not_taken=not_taken_words(st.inbox_not_taken) if st.inbox_not_taken else None)


routes = [Route("/", dashboard)]
