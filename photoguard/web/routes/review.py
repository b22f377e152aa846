"""Photos held for the manager to look at: the queue, one photo with its faces, release or reject.

Every decision is the review library's (photoguard.review); this module only shows and forwards.
Photos are named in URLs by their content id (sha256), never by file name.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ... import review as library
from ..app import database, flash, page, state
from .photos import SHA


def _queue(request: Request) -> list:
    """Oldest first."""
    return sorted(library.list_review(state(request).home), key=lambda i: (i.created, i.name))


async def queue(request: Request) -> Response:
    return page(request, "review_list.html", items=_queue(request))


def _faces(conn, sha: str, channels) -> list[dict]:
    faces = []
    for f in conn.execute("SELECT idx, box, child_id, reason FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,)):
        actions = {r["channel"]: r for r in conn.execute(
            "SELECT channel, action, reason FROM face_actions WHERE photo_sha256 = ? AND face_idx = ?", (sha, f["idx"]))}
        left, top, right, bottom = json.loads(f["box"])
        faces.append({"number": f["idx"] + 1, "box": (left, top, right - left, bottom - top), "child": f["child_id"],
                      "why": f["reason"], "actions": {ch: actions.get(ch) for ch in channels}})
    return faces


async def item(request: Request) -> Response:
    sha = request.path_params["sha"]
    items = _queue(request)
    index = next((i for i, it in enumerate(items) if it.sha256 == sha), None) if SHA.fullmatch(sha) else None
    if index is None:
        return PlainTextResponse("This photo is not waiting for review (released or rejected already?).",
                                 status_code=404)
    it = items[index]
    with database(request) as conn:
        photo = conn.execute("SELECT width, height, received_at FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        faces = _faces(conn, sha, state(request).home.settings.channels)
    width = photo["width"] if photo and photo["width"] else 0
    height = photo["height"] if photo and photo["height"] else 0
    return page(request, "review_item.html", item=it, faces=faces, width=width, height=height,
                previous=items[index - 1].sha256 if index > 0 else None,
                next=items[index + 1].sha256 if index + 1 < len(items) else None,
                position=index + 1, total=len(items))


def _by_sha(request: Request, sha: str):
    if not SHA.fullmatch(sha):
        return None
    return next((it for it in library.list_review(state(request).home) if it.sha256 == sha), None)


async def release(request: Request) -> Response:
    web = state(request)
    it = _by_sha(request, request.path_params["sha"])
    if it is None:
        return PlainTextResponse("This photo is not waiting for review.", status_code=404)
    form = await request.form()
    channels = [c for c in form.getlist("channel") if c in web.home.settings.channels]
    if not channels:
        flash(request, "Tick at least one channel to release the photo to.")
        return RedirectResponse(f"/review/{it.sha256}", status_code=303)
    try:
        with database(request) as conn:
            library.release(web.home, conn, it.name, channels)
    except library.ReviewError as exc:
        flash(request, f"Not released: {exc}")
        return RedirectResponse(f"/review/{it.sha256}", status_code=303)
    flash(request, f"{it.source} released to {', '.join(channels)}.")
    return RedirectResponse("/review", status_code=303)


async def reject(request: Request) -> Response:
    web = state(request)
    it = _by_sha(request, request.path_params["sha"])
    if it is None:
        return PlainTextResponse("This photo is not waiting for review.", status_code=404)
    with database(request) as conn:
        library.reject(web.home, conn, it.name)
    flash(request, f"{it.source} will not be shared. The original stays in the archive.")
    return RedirectResponse("/review", status_code=303)


routes = [
    Route("/review", queue),
    Route("/review/{sha}", item),
    Route("/review/{sha}/release", release, methods=["POST"]),
    Route("/review/{sha}/reject", reject, methods=["POST"]),
]
