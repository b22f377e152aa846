"""The outbox: per channel, the photos cleared for posting; download one or all."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..app import database, page, state
from .photos import inside, outbox_file


def _outputs(request: Request, channel: str) -> list[dict]:
    home = state(request).home
    with database(request) as conn:
        rows = conn.execute(
            "SELECT o.photo_sha256 AS sha, o.path, o.created_at, p.source FROM outputs o "
            "LEFT JOIN photos p ON p.sha256 = o.photo_sha256 WHERE o.channel = ? AND o.removed_at IS NULL "
            "ORDER BY o.created_at DESC", (channel,)).fetchall()
    out = []
    for r in rows:
        path = inside(home.outbox_for(channel), home.root / r["path"])
        if path is not None:
            out.append({"sha": r["sha"], "name": path.name, "source": r["source"], "at": r["created_at"]})
    return out


async def outbox(request: Request) -> Response:
    channels = state(request).home.settings.channels
    return page(request, "outbox.html", per_channel={ch: _outputs(request, ch) for ch in channels})


def _attachment(name: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename*=UTF-8''{quote(name)}"


async def download(request: Request) -> Response:
    path = outbox_file(request, request.path_params["channel"], request.path_params["sha"])
    if path is None:
        return PlainTextResponse("No such photo in the outbox.", status_code=404)
    return Response(path.read_bytes(), media_type="image/jpeg", headers={"content-disposition": _attachment(path.name)})


async def download_all(request: Request) -> Response:
    home = state(request).home
    channel = request.path_params["channel"]
    if channel not in home.settings.channels:
        return PlainTextResponse("No such channel.", status_code=404)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for item in _outputs(request, channel):
            path = outbox_file(request, channel, item["sha"])
            if path is not None:
                zf.write(path, Path(item["name"]).name)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"content-disposition": _attachment(f"photoguard-{channel}.zip")})


routes = [
    Route("/outbox", outbox),
    Route("/outbox/{channel}/all.zip", download_all),
    Route("/outbox/{channel}/{sha}/download", download),
]
