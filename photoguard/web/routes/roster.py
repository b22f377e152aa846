"""The children: consent per channel, reference photos, adding, changing, withdrawing, erasing.

Every change is written to enrol/children.csv (the manager's own file, which ``enrol`` reads) and then
synced exactly as ``photoguard enrol`` syncs it (roster_file.enrol).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import PurePosixPath

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from photoguard.flow.enrol import enrol
from photoguard.flow.learning import learned_faces
from photoguard.flow.outbox import takedown_list
from photoguard.flow.references import MAX_UPLOAD_BYTES, ReferenceError, feedback, remove_reference, store_upload
from photoguard.rules.consent import may_show
from photoguard.store.children import child_history, child_standing, list_children
from photoguard.store.reference_photos import MIN_GOOD_PHOTOS, SECOND_FACE, child_folder, reason_on_page
from photoguard.store.roster import compared_photos, load_consents
from photoguard.store.roster_csv import id_problem, roster_file_problems
from photoguard.store.roster_file import ChildEntry, RosterFileError, fingerprint, read_child, remove_child, save_child
from photoguard.web.pages import database, flash, page, state


def _child_id(request: Request) -> str | None:
    cid = request.path_params["child_id"]
    return cid if id_problem(cid) is None else None


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def outbox_words(changed, new_takedowns: int) -> str:
    """What a consent change did to Ready to post and to the photos already posted, in the manager's words."""
    words = ""
    for action, what in (("rerendered", "made again to match"),
                         ("removed", "taken out, as they could not be made again safely")):
        per_channel: dict[str, list[str]] = {}
        for c in changed:
            if c.action == action:
                per_channel.setdefault(c.channel, []).append(PurePosixPath(c.path).name)
        n = sum(len(names) for names in per_channel.values())
        if n:
            where = "; ".join(f"{_and(sorted(names))} on {ch.capitalize()}" for ch, names in sorted(per_channel.items()))
            words += f" In Ready to post, {n} cop{'y was' if n == 1 else 'ies were'} {what}: {where}."
    if new_takedowns:
        one = new_takedowns == 1
        words += (f" {new_takedowns} photo{'' if one else 's'} already out (posted, or taken from the outbox) "
                  f"show{'s' if one else ''} a child who may no longer be shown there: take {'it' if one else 'them'} "
                  "down (the list is at the top of Today).")
    return words


def enrol_now(request: Request, accept_largest: frozenset[str] = frozenset()) -> str:
    """Sync as `photoguard enrol` does; a sentence on what happened to the outbox."""
    web = state(request)
    try:
        with database(request) as conn:
            before = {t.file_id for t in takedown_list(conn)}
            try:
                done = enrol(web.home, conn, detector=web.detector, accept_largest=accept_largest)
            finally:
                new_takedowns = len({t.file_id for t in takedown_list(conn)} - before)
    except RosterFileError as exc:   # the outbox was re-checked all the same
        return f" But {web.home.roster_csv.name} could not be read as a whole: {exc}" + outbox_words([], new_takedowns)
    return outbox_words([c for c in done.outbox if c.action in ("rerendered", "removed")], new_takedowns)


async def children(request: Request) -> Response:
    today = date.today()
    with database(request) as conn:
        rows = list_children(conn)
    channels = state(request).home.settings.channels
    table = [{"row": r, "shown": {ch: may_show(r.consent, ch, today) for ch in channels},
              "standing": child_standing(r.consent, r.templates, channels, today)} for r in rows]
    problems = roster_file_problems(state(request).home.roster_csv, channels)
    return page(request, "children.html", table=table, min_good=MIN_GOOD_PHOTOS, today=today, file_problems=problems)


def _entry_from_form(form, channels, child_id: str) -> ChildEntry:
    expires_text = str(form.get("expires", "")).strip()
    try:
        expires = date.fromisoformat(expires_text) if expires_text else None
    except ValueError:
        raise RosterFileError(f"The end date '{expires_text}' is not a date: write it as YYYY-MM-DD, e.g. 2027-08-31.")
    return ChildEntry(child_id=child_id, name=str(form.get("name", "")).strip(),
                      face_matching=form.get("face_matching") == "yes",
                      channels={ch: form.get(f"channel_{ch}") == "yes" for ch in channels}, expires=expires)


async def child_form(request: Request) -> Response:
    web = state(request)
    new = "child_id" not in request.path_params
    cid = None if new else _child_id(request)
    if not new and cid is None:
        return PlainTextResponse("No such child.", status_code=404)
    entry = ChildEntry(child_id="") if new else read_child(web.home, cid)
    if entry is None:
        return PlainTextResponse("No such child in children.csv.", status_code=404)
    error = None
    if request.method == "POST":
        form = await request.form()
        cid = str(form.get("child_id", "")).strip() if new else cid
        try:
            entry = _entry_from_form(form, web.home.settings.channels, cid)
            save_child(web.home, entry, new=new, expect=str(form.get("fingerprint", "")))
        except RosterFileError as exc:
            error = str(exc)
        else:
            outcome = await run_in_threadpool(enrol_now, request)
            flash(request, f"Saved {entry.name or entry.child_id} in {web.home.roster_csv.name}.{outcome}")
            return RedirectResponse(f"/children/{entry.child_id}", status_code=303)
    return page(request, "child_form.html", status_code=400 if error else 200, entry=entry, new=new, error=error,
                fingerprint=fingerprint(web.home.roster_csv))


def _child_page(request: Request, cid: str, results=(), upload_error: str | None = None, status_code: int = 200):
    web = state(request)
    today = date.today()
    with database(request) as conn:
        consent = load_consents(conn).get(cid)
        history = child_history(conn, cid)
        photos = conn.execute("SELECT path, sha256, status, reason FROM reference_photos WHERE child_id = ? "
                              "ORDER BY path", (cid,)).fetchall()
        compared = compared_photos(conn, cid)
        templates = len(compared)
        learned = {f.path: f for f in learned_faces(conn, cid)}
    if consent is None and not history:
        return PlainTextResponse("No such child.", status_code=404)
    shown = {ch: may_show(consent, ch, today) for ch in web.home.settings.channels} if consent else {}
    standing = child_standing(consent, templates, web.home.settings.channels, today) if consent else None
    folder = child_folder(web.home.enrol, cid)
    waiting = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    known = {p["path"].rsplit("/", 1)[-1] for p in photos}
    return page(request, "child.html", status_code=status_code, cid=cid, consent=consent, history=history,
                photos=photos, learned=learned, reasons={p["sha256"]: reason_on_page(p["reason"]) for p in photos},
                templates=templates, compared=compared, shown=shown, standing=standing, results=results,
                upload_error=upload_error,
                unused=[n for n in waiting if n not in known], min_good=MIN_GOOD_PHOTOS,
                max_mb=MAX_UPLOAD_BYTES // (1024 * 1024), max_at_once=MAX_PHOTOS_AT_ONCE)


async def child(request: Request) -> Response:
    cid = _child_id(request)
    if cid is None:
        return PlainTextResponse("No such child.", status_code=404)
    return _child_page(request, cid)


class _InMemoryParser(MultiPartParser):
    # The whole (size-checked) upload stays in memory: a child's photo is never spooled to /tmp.
    spool_max_size = MAX_UPLOAD_BYTES + 1


MAX_PHOTOS_AT_ONCE = 10


async def _read_upload(request: Request) -> tuple[list[UploadFile], str | None]:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_UPLOAD_BYTES * MAX_PHOTOS_AT_ONCE + 64 * 1024:
        return [], (f"These photos are more than {MAX_UPLOAD_BYTES * MAX_PHOTOS_AT_ONCE // (1024 * 1024)} MB together. "
                      f"Add at most {MAX_PHOTOS_AT_ONCE} at a time, each up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > int(length):
            return [], "The upload was larger than announced and was refused."

    async def once():
        yield body

    try:
        form = await _InMemoryParser(request.headers, once(), max_part_size=64 * 1024).parse()
    except Exception:
        return [], "The upload could not be read. Choose the photos again."
    uploads = [u for u in form.getlist("photo") if isinstance(u, UploadFile) and u.filename]
    if not uploads:
        return [], "Choose a photo first."
    if len(uploads) > MAX_PHOTOS_AT_ONCE:
        return [], f"{len(uploads)} photos chosen: add at most {MAX_PHOTOS_AT_ONCE} at a time."
    return uploads, None


async def upload_photo(request: Request) -> Response:
    web = state(request)
    cid = _child_id(request)
    if cid is None or read_child(web.home, cid) is None:
        return PlainTextResponse("No such child.", status_code=404)
    uploads, error = await _read_upload(request)
    if not uploads:
        return _child_page(request, cid, upload_error=error, status_code=400)
    results = []   # (the file's name, Feedback or None, the problem in words, kept in the folder)
    for upload in uploads:
        name = upload.filename or "photo"
        try:
            path = store_upload(web.home, cid, await upload.read(), name)
        except ReferenceError as exc:
            results.append((name, None, str(exc), False))
            continue
        result = await run_in_threadpool(lambda: feedback(path, web.detector(), web.home.settings.min_face_px))
        if not result.worth_keeping:
            path.unlink(missing_ok=True)   # PhotoGuard's own copy of a photo that cannot be used: not kept
        results.append((name, result, None, result.worth_keeping))
    await run_in_threadpool(enrol_now, request)
    return _child_page(request, cid, results=results, status_code=200 if any(r for _, r, _, _ in results) else 400)


async def remove_photo(request: Request) -> Response:
    web = state(request)
    cid = _child_id(request)
    form = await request.form()
    with database(request) as conn:
        row = conn.execute("SELECT path FROM reference_photos WHERE child_id = ? AND sha256 = ?",
                           (cid, str(form.get("photo", "")))).fetchone()
    if cid is None or row is None:
        return PlainTextResponse("No such reference photo.", status_code=404)
    try:
        remove_reference(web.home, cid, row["path"])
    except ReferenceError as exc:
        flash(request, str(exc))
    else:
        await run_in_threadpool(enrol_now, request)
        flash(request, "The reference photo was deleted and its face template erased.")
    return RedirectResponse(f"/children/{cid}", status_code=303)


async def accept_largest(request: Request) -> Response:
    """The manager says the other face in this reference photo is a poster or a picture: use the largest
    (`photoguard enrol --accept-largest`, for this one photo)."""
    cid = _child_id(request)
    form = await request.form()
    with database(request) as conn:
        row = conn.execute("SELECT path, reason FROM reference_photos WHERE child_id = ? AND sha256 = ?",
                           (cid, str(form.get("photo", "")))).fetchone()
    if cid is None or row is None or not (row["reason"] or "").startswith(SECOND_FACE):
        return PlainTextResponse("No such reference photo.", status_code=404)
    await run_in_threadpool(enrol_now, request, frozenset({row["path"]}))
    with database(request) as conn:
        now = conn.execute("SELECT status, reason FROM reference_photos WHERE child_id = ? AND path = ?",
                           (cid, row["path"])).fetchone()
    name = row["path"].rsplit("/", 1)[-1]
    flash(request, f"{name}: the largest face is used now." if now is not None and now["status"] == "accepted"
          else f"{name} still cannot be used: {reason_on_page(now['reason']) if now else 'it is not in the folder any more'}.")
    return RedirectResponse(f"/children/{cid}#reference-photos", status_code=303)


async def withdraw(request: Request) -> Response:
    web = state(request)
    cid = _child_id(request)
    entry = read_child(web.home, cid) if cid else None
    if entry is None:
        return PlainTextResponse("No such child in children.csv.", status_code=404)
    if request.method == "POST":
        form = await request.form()
        entry.face_matching = False
        entry.channels = {ch: False for ch in web.home.settings.channels}
        try:
            save_child(web.home, entry, new=False, expect=str(form.get("fingerprint", "")))
        except RosterFileError as exc:
            flash(request, str(exc))
        else:
            outcome = await run_in_threadpool(enrol_now, request)
            flash(request, f"Consent withdrawn for {entry.name or cid}: from now on they are obscured everywhere and "
                           f"their face templates are erased.{outcome}")
        return RedirectResponse(f"/children/{cid}", status_code=303)
    return page(request, "confirm.html", entry=entry, action="withdraw", fingerprint=fingerprint(web.home.roster_csv))


async def erase(request: Request) -> Response:
    web = state(request)
    cid = _child_id(request)
    entry = read_child(web.home, cid) if cid else None
    if entry is None:
        return PlainTextResponse("No such child in children.csv.", status_code=404)
    if request.method == "POST":
        form = await request.form()
        try:
            remove_child(web.home, cid, expect=str(form.get("fingerprint", "")))
        except RosterFileError as exc:
            flash(request, str(exc))
            return RedirectResponse(f"/children/{cid}", status_code=303)
        folder = child_folder(web.home.enrol, cid)
        if form.get("photos") == "delete" and folder.is_dir() and folder.resolve().parent == web.home.enrol.resolve():
            shutil.rmtree(folder)
        outcome = await run_in_threadpool(enrol_now, request)
        flash(request, f"{entry.name or cid} was taken off the roster: no consent, face templates erased.{outcome}")
        return RedirectResponse("/children", status_code=303)
    return page(request, "confirm.html", entry=entry, action="erase", fingerprint=fingerprint(web.home.roster_csv))


routes = [
    Route("/children", children),
    Route("/children/new", child_form, methods=["GET", "POST"]),
    Route("/children/{child_id}", child),
    Route("/children/{child_id}/edit", child_form, methods=["GET", "POST"]),
    Route("/children/{child_id}/photos", upload_photo, methods=["POST"]),
    Route("/children/{child_id}/photos/remove", remove_photo, methods=["POST"]),
    Route("/children/{child_id}/photos/accept-largest", accept_largest, methods=["POST"]),
    Route("/children/{child_id}/withdraw", withdraw, methods=["GET", "POST"]),
    Route("/children/{child_id}/erase", erase, methods=["GET", "POST"]),
]
