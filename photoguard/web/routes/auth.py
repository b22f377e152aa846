"""Setting the manager's PIN on first run, signing in and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from photoguard.web.pages import page, state
from photoguard.web.security import MIN_PIN_LENGTH, SESSION_COOKIE, PinError, duration


def _local(target: str | None) -> str:
    """Only a path on this site: never send the manager elsewhere after signing in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _signed_in(request: Request, target: str) -> Response:
    web = state(request)
    web.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(_local(target), status_code=303)
    response.set_cookie(SESSION_COOKIE, web.sessions.start(), httponly=True, samesite="strict", path="/")
    return response


async def setup(request: Request) -> Response:
    web = state(request)
    if web.pins.is_set:
        return RedirectResponse("/login", status_code=303)
    error = None
    if request.method == "POST":
        form = await request.form()
        try:
            web.pins.set_pin(str(form.get("pin", "")), str(form.get("repeat", "")))
        except PinError as exc:
            error = str(exc)
        else:
            return _signed_in(request, "/")
    return page(request, "setup.html", status_code=400 if error else 200, error=error, min_length=MIN_PIN_LENGTH)


async def login(request: Request) -> Response:
    web = state(request)
    if not web.pins.is_set:
        return RedirectResponse("/setup", status_code=303)
    target = _local(request.query_params.get("next"))
    error, status = None, 200
    if request.method == "POST":
        form = await request.form()
        target = _local(str(form.get("next", "/")))
        attempt = web.pins.check(str(form.get("pin", "")))
        if attempt.ok:
            return _signed_in(request, target)
        error, status = attempt.message, 503 if attempt.unavailable else 429 if attempt.wait_seconds else 401
    else:
        wait = web.pins.wait_seconds()
        if wait:
            error = f"Too many wrong PINs. Wait {duration(wait)}, then try again."
    return page(request, "login.html", status_code=status, error=error, next=target)


async def logout(request: Request) -> Response:
    state(request).sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes = [
    Route("/setup", setup, methods=["GET", "POST"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
