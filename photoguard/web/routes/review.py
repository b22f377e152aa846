"""Photos held for the manager to look at: the queue, one photo with its faces, her changes, the preview
per channel, release, reject and undo.

Every rule is the review library's (photoguard.flow.review and photoguard.flow.release): who may be shown
where, what a drawn box does, what is published. This module only shows and forwards. Photos are named in URLs by their content id
(sha256), never by file name.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from photoguard.flow import release as releasing, review as library
from photoguard.store.roster import load_consents
from photoguard.web.labels import label_spots
from photoguard.web.pages import database, flash, page, state
from photoguard.web.routes.photos import SHA

ACTOR = library.WEB_ACTOR


def _sha(request: Request) -> str | None:
    sha = request.path_params["sha"]
    return sha if SHA.fullmatch(sha) else None


def _gone() -> Response:
    return PlainTextResponse("This photo is not waiting for review (released or rejected already?).", status_code=404)


async def queue(request: Request) -> Response:
    with database(request) as conn:
        items = library.review_queue(state(request).home, conn)
        last = conn.execute("SELECT d.kind, p.source FROM review_decisions d JOIN photos p ON p.sha256 = d.photo_sha256 "
                            "WHERE d.undone_at IS NULL ORDER BY d.id DESC LIMIT 1").fetchone()
    return page(request, "review_list.html", items=items, last=last)


def _detail(request: Request, sha: str):
    home = state(request).home
    with database(request) as conn:
        items = library.review_queue(home, conn)
        index = next((i for i, it in enumerate(items) if it.sha256 == sha), None)
        if index is None:
            return None
        detail = library.review_detail(home, conn, sha)
        consents = load_consents(conn)
    children = sorted(((c.child_id, c.name or c.child_id) for c in consents.values()), key=lambda c: c[1].lower())
    spots = label_spots([f.box for f in detail.faces], [f.number for f in detail.faces], detail.width or 0,
                        detail.height or 0)
    return dict(detail=detail, spots=spots, children=children, names=dict(children), position=index + 1,
                total=len(items),
                previous=items[index - 1].sha256 if index > 0 else None,
                next=items[index + 1].sha256 if index + 1 < len(items) else None)


async def item(request: Request) -> Response:
    sha = _sha(request)
    context = await run_in_threadpool(_detail, request, sha) if sha else None
    if context is None:
        return _gone()
    return page(request, "review_item.html", **context)


async def preview(request: Request) -> Response:
    """Exactly the JPEG that releasing to this channel now would publish (rendered by the pipeline)."""
    sha, channel = _sha(request), request.path_params["channel"]
    if sha is None or channel not in state(request).home.settings.channels:
        return _gone()

    def render() -> bytes | None:
        with database(request) as conn:
            try:
                return library.render_preview(state(request).home, conn, sha, channel)
            except library.ReviewError:
                return None

    data = await run_in_threadpool(render)
    return Response(data, media_type="image/jpeg") if data else _gone()


async def _change(request: Request, call) -> Response:
    """Run one of the library's changes to a waiting photo; its words (or its refusal) go to the manager."""
    sha = _sha(request)
    if sha is None:
        return _gone()
    form = await request.form()

    def run() -> str:
        with database(request) as conn:
            return call(state(request).home, conn, sha, form)

    try:
        flash(request, await run_in_threadpool(run))
    except library.ReviewError as exc:
        flash(request, f"Not done: {exc}")
    except (ValueError, KeyError):
        flash(request, "Not done: the form was incomplete. Try again.")
    return RedirectResponse(f"/review/{sha}#photo", status_code=303)   # back at the photo, not the top


async def obscure(request: Request) -> Response:
    return await _change(request, lambda home, conn, sha, form: library.obscure_face(
        home, conn, sha, int(form["face"]), actor=ACTOR))


async def confirm(request: Request) -> Response:
    return await _change(request, lambda home, conn, sha, form: library.confirm_face(
        home, conn, sha, int(form["face"]), str(form["child"]), actor=ACTOR))


async def box(request: Request) -> Response:
    return await _change(request, lambda home, conn, sha, form: library.add_box(
        home, conn, sha, [float(form[k]) for k in ("left", "top", "right", "bottom")], actor=ACTOR))


async def undo_edit(request: Request) -> Response:
    return await _change(request, lambda home, conn, sha, form: library.undo_edit(home, conn, sha, actor=ACTOR))


async def release(request: Request) -> Response:
    web = state(request)
    sha = _sha(request)
    if sha is None:
        return _gone()
    form = await request.form()
    channels = [c for c in form.getlist("channel") if c in web.home.settings.channels]
    if not channels:
        flash(request, "Tick at least one channel to release the photo to.")
        return RedirectResponse(f"/review/{sha}", status_code=303)

    def run():
        with database(request) as conn:
            return releasing.release(web.home, conn, sha, channels, actor=ACTOR)

    try:
        done = await run_in_threadpool(run)
    except library.ReviewError as exc:
        flash(request, f"Not released: {exc}")
        return RedirectResponse(f"/review/{sha}", status_code=303)
    flash(request, f"{done.words()}. It is in Ready to post.")
    return RedirectResponse(await _next_photo(request, sha), status_code=303)


async def _next_photo(request: Request, sha: str) -> str:
    """After a release or a 'do not share': the next photo waiting, so the manager goes on where she was."""
    def find() -> str:
        with database(request) as conn:
            items = library.review_queue(state(request).home, conn)
        later = [it for it in items if it.sha256 != sha]
        return f"/review/{later[0].sha256}" if later else "/review"
    return await run_in_threadpool(find)


async def reject(request: Request) -> Response:
    """'Do not share this photo' asks first (a key press is easily made by mistake), then does it."""
    web = state(request)
    sha = _sha(request)
    if sha is None:
        return _gone()
    if request.method == "GET" or (await request.form()).get("sure") != "yes":
        with database(request) as conn:
            try:
                it = library.find_item(web.home, conn, sha)
            except library.ReviewError:
                return _gone()
        return page(request, "reject_confirm.html", item=it)
    try:
        with database(request) as conn:
            it = releasing.reject(web.home, conn, sha, actor=ACTOR)
    except library.ReviewError as exc:
        flash(request, f"Not done: {exc}")
        return RedirectResponse(f"/review/{sha}", status_code=303)
    flash(request, f"{it.source} will not be shared. The original stays in the archive.")
    return RedirectResponse(await _next_photo(request, sha), status_code=303)


async def undo_last(request: Request) -> Response:
    web = state(request)
    try:
        with database(request) as conn:
            undone = releasing.undo_last(web.home, conn, actor=ACTOR)
    except library.ReviewError as exc:
        flash(request, f"Nothing undone: {exc}")
        return RedirectResponse("/review", status_code=303)
    what = "release" if undone.kind == "released" else "decision not to share"
    flash(request, f"The {what} of {undone.item.source} was taken back: it is waiting for you again"
                   + (f" ({len(undone.removed)} file(s) taken out of the outbox)." if undone.removed else "."))
    return RedirectResponse(f"/review/{undone.item.sha256}", status_code=303)


routes = [
    Route("/review", queue),
    Route("/review/undo", undo_last, methods=["POST"]),
    Route("/review/{sha}", item),
    Route("/review/{sha}/preview/{channel}", preview),
    Route("/review/{sha}/obscure", obscure, methods=["POST"]),
    Route("/review/{sha}/confirm", confirm, methods=["POST"]),
    Route("/review/{sha}/box", box, methods=["POST"]),
    Route("/review/{sha}/undo-edit", undo_edit, methods=["POST"]),
    Route("/review/{sha}/release", release, methods=["POST"]),
    Route("/review/{sha}/reject", reject, methods=["GET", "POST"]),
]
