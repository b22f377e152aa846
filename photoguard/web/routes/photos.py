"""Pictures for the pages, found by an id in the database and only ever inside the home.

No path from the request is used to open a file: the id is looked up, the stored path is resolved
and must stay inside the home folder.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from photoguard.flow import outbox as library
from photoguard.flow.review import review_queue
from photoguard.photos.images import ImageError, load_thumbnail
from photoguard.web.pages import database, record_id, state

SHA = re.compile(r"[0-9a-f]{64}")
THUMB_PX = 480
LARGE_PX = 1600


def inside(root: Path, stored: Path) -> Path | None:
    """The file ``stored`` if it really is a regular file inside ``root`` (links resolved), else None."""
    try:
        real = stored.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root.resolve()) or not real.is_file():
        return None
    return real


def not_found() -> Response:
    return PlainTextResponse("No such photo.", status_code=404)


def jpeg_of(path: Path, max_px: int) -> Response:
    """A re-encoded, metadata-free JPEG no bigger than ``max_px``: the browser never gets the file itself."""
    try:
        thumb, _ = load_thumbnail(path, max_px)
    except (ImageError, OSError):
        return not_found()
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, "JPEG", quality=88)
    return Response(buf.getvalue(), media_type="image/jpeg")


def review_file(request: Request, sha: str) -> Path | None:
    home = state(request).home
    if not SHA.fullmatch(sha):
        return None
    with database(request) as conn:
        item = next((i for i in review_queue(home, conn) if i.sha256 == sha), None)
    return inside(home.review, item.image) if item and item.image else None


def reference_file(request: Request, sha: str) -> Path | None:
    home = state(request).home
    if not SHA.fullmatch(sha):
        return None
    with database(request) as conn:
        row = conn.execute("SELECT path FROM reference_photos WHERE sha256 = ? LIMIT 1", (sha,)).fetchone()
    return inside(home.enrol, home.enrol / row["path"]) if row else None


def _size(request: Request) -> int:
    return LARGE_PX if request.query_params.get("size") == "large" else THUMB_PX


async def review_photo(request: Request) -> Response:
    path = review_file(request, request.path_params["sha"])
    return jpeg_of(path, _size(request)) if path else not_found()


async def outbox_photo(request: Request) -> Response:
    found = outbox_file(request, request.path_params["file_id"])
    return jpeg_of(found[1], _size(request)) if found else not_found()


async def reference_photo(request: Request) -> Response:
    path = reference_file(request, request.path_params["sha"])
    return jpeg_of(path, THUMB_PX) if path else not_found()


routes = [
    Route("/photo/review/{sha}", review_photo),
    Route("/photo/outbox/{file_id}", outbox_photo),
    Route("/photo/reference/{sha}", reference_photo),
]


def outbox_file(request: Request, file_id: str):
    """(photo, path) of an outbox file still in the outbox, by its id, else None."""
    number = record_id(file_id)
    if number is None:
        return None
    home = state(request).home
    with database(request) as conn:
        try:
            photo = library.outbox_photo(home, conn, number)
        except library.OutboxError:
            return None
    if photo.path is None:
        return None
    path = inside(home.outbox_for(photo.channel), photo.path)
    return (photo, path) if path else None
