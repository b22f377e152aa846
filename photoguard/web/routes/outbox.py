"""Ready to post: per channel, the photos in the outbox; download one or all, mark as posted; and the
photos to take down. Every record is the outbox library's (photoguard.outbox), as for the CLI."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from photoguard.flow import outbox as library
from photoguard.web.pages import database, flash, page, record_id, state
from photoguard.web.routes.photos import inside, outbox_file

ACTOR = "manager (web)"


async def outbox(request: Request) -> Response:
    home = state(request).home
    with database(request) as conn:
        per_channel = {ch: library.list_outbox(home, conn, ch) for ch in home.settings.channels}
        takedown = library.takedown_list(conn)
    return page(request, "outbox.html", per_channel=per_channel, takedown=takedown)


def _attachment(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name)}"


async def download(request: Request) -> Response:
    found = outbox_file(request, request.path_params["file_id"])
    if found is None:
        return PlainTextResponse("No such photo in the outbox.", status_code=404)
    photo, path = found
    return Response(path.read_bytes(), media_type="image/jpeg", headers={"content-disposition": _attachment(photo.name)})


async def download_all(request: Request) -> Response:
    home = state(request).home
    channel = request.path_params["channel"]
    if channel not in home.settings.channels:
        return PlainTextResponse("No such channel.", status_code=404)
    with database(request) as conn:
        photos = [p for p in library.list_outbox(home, conn, channel) if p.posted is None]
    buf = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for photo in photos:
            path = inside(home.outbox_for(channel), photo.path) if photo.path else None
            if path is None:
                continue
            # The folders the photos were dropped in stay folders in the zip.
            name = photo.shown_name if photo.shown_name not in names else f"{photo.id}-{photo.shown_name}"
            names.add(name)
            zf.write(path, name)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"content-disposition": _attachment(f"photoguard-{channel}.zip")})


async def posted(request: Request) -> Response:
    home = state(request).home
    file_id = record_id(request.path_params["file_id"])
    if file_id is None:
        return PlainTextResponse("No such photo.", status_code=404)
    with database(request) as conn:
        try:
            photo = library.outbox_photo(home, conn, file_id)
            library.mark_posted(home, conn, photo.id, photo.channel, ACTOR)
        except library.OutboxError as exc:
            flash(request, f"Not marked: {exc}")
            return RedirectResponse("/outbox", status_code=303)
    flash(request, f"{photo.name} marked as posted on {photo.channel.capitalize()}.")
    return RedirectResponse(f"/outbox#ch-{photo.channel}", status_code=303)


async def posted_all(request: Request) -> Response:
    """"Mark all as posted" for one channel: the photos the page showed her, in one go."""
    home = state(request).home
    channel = request.path_params["channel"]
    if channel not in home.settings.channels:
        return PlainTextResponse("No such channel.", status_code=404)
    form = await request.form()
    ids = [n for n in (record_id(str(v)) for v in form.getlist("photo")) if n is not None]
    with database(request) as conn:
        try:
            done = library.mark_all_posted(home, conn, ids, channel, ACTOR)
        except library.OutboxError as exc:
            flash(request, f"Not all marked: {exc}")
            return RedirectResponse(f"/outbox#ch-{channel}", status_code=303)
    flash(request, f"{len(done)} photo{'' if len(done) == 1 else 's'} marked as posted on {channel.capitalize()}.")
    return RedirectResponse(f"/outbox#ch-{channel}", status_code=303)


async def taken_down(request: Request) -> Response:
    file_id = record_id(request.path_params["file_id"])
    if file_id is None:
        return PlainTextResponse("No such photo.", status_code=404)
    try:
        with database(request) as conn:
            library.mark_taken_down(conn, file_id, ACTOR)
    except library.OutboxError as exc:
        flash(request, f"Not marked: {exc}")
    else:
        flash(request, "Marked as taken down.")
    form = await request.form()
    back = str(form.get("back", "/outbox"))
    return RedirectResponse(back if back in ("/", "/outbox") else "/outbox", status_code=303)


routes = [
    Route("/outbox", outbox),
    Route("/outbox/{channel}/all.zip", download_all),
    Route("/outbox/file/{file_id}/download", download),
    Route("/outbox/file/{file_id}/posted", posted, methods=["POST"]),
    Route("/outbox/{channel}/posted", posted_all, methods=["POST"]),
    Route("/takedown/{file_id}/done", taken_down, methods=["POST"]),
]
