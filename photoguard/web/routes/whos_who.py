"""Who's who: one page with every question PhotoGuard is waiting to ask, a card per face (the face itself beside
the child's newest reference photo), Yes / No / someone else per face and "Yes to all" per child.

Every rule is the library's (photoguard.flow.whos_who); this module only shows and forwards. The face's crop
is served only to a signed-in manager (the Guard middleware turns everyone else to the sign-in page), is made
in memory and is never cached (``Cache-Control: no-store``). The request log names the route only
(``/face/{sha}/{number}``), never a child.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from photoguard.flow import whos_who as library
from photoguard.flow.review import WEB_ACTOR, ReviewError
from photoguard.web.pages import database, flash, page, record_id, state
from photoguard.web.routes.photos import SHA

PAGE = "/whos-who"


def _at(form) -> str:
    """Back to the same place in the list: the card that took the answered one's place."""
    number = record_id(str(form.get("at", "")))
    return f"{PAGE}?at={number}" if number is not None else PAGE


async def whos_who(request: Request) -> Response:
    def load():
        with database(request) as conn:
            return library.open_questions(state(request).home, conn)

    found = await run_in_threadpool(load)
    at = record_id(request.query_params.get("at", "")) or 0
    return page(request, "whos_who.html", who=found, at=min(at, max(0, found.left - 1)), YES=library.YES, NO=library.NO)


async def answer(request: Request) -> Response:
    form = await request.form()
    sha, number, said = str(form.get("photo", "")), record_id(str(form.get("face", ""))), str(form.get("answer", ""))
    if said == "someone":
        said = str(form.get("child", ""))
    elif said.startswith("is:"):
        said = said[3:]
    if not SHA.fullmatch(sha) or number is None or not said:
        flash(request, "Not done: choose an answer for the face (Yes, No, or who it is).")
        return RedirectResponse(_at(form), status_code=303)

    def run() -> list[str]:
        with database(request) as conn:
            return library.answer(state(request).home, conn, sha, number, said, actor=WEB_ACTOR)

    try:
        for words in await run_in_threadpool(run):
            flash(request, words)
    except ReviewError as exc:
        flash(request, f"Not done: {exc}")
    return RedirectResponse(_at(form), status_code=303)


async def yes_to_all(request: Request) -> Response:
    form = await request.form()
    child = str(form.get("child", ""))
    # Only the faces her page showed her (photo:number on each card of the group), never one that came since.
    shown = set()
    for value in form.getlist("face"):
        sha, _, number = str(value).partition(":")
        if SHA.fullmatch(sha) and record_id(number) is not None:
            shown.add((sha, record_id(number)))

    def run():
        with database(request) as conn:
            return library.yes_to_all(state(request).home, conn, child, shown, actor=WEB_ACTOR)

    done, words = await run_in_threadpool(run)
    for line in words:
        flash(request, line)
    if not done and not words:
        flash(request, "Nothing was waiting for that child.")
    return RedirectResponse(_at(form), status_code=303)


async def face(request: Request) -> Response:
    sha, number = request.path_params["sha"], record_id(request.path_params["number"])
    if not SHA.fullmatch(sha) or number is None:
        return PlainTextResponse("No such face.", status_code=404)

    def crop() -> bytes | None:
        with database(request) as conn:
            try:
                return library.face_crop(state(request).home, conn, sha, number)
            except ReviewError:
                return None

    data = await run_in_threadpool(crop)
    if data is None:
        return PlainTextResponse("No such face waiting for an answer.", status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


routes = [
    Route(PAGE, whos_who),
    Route(f"{PAGE}/answer", answer, methods=["POST"]),
    Route(f"{PAGE}/yes-to-all", yes_to_all, methods=["POST"]),
    Route("/face/{sha}/{number}", face),
]
