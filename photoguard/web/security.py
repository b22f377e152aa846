"""Who may use the manager's pages on a shared nursery PC: the PIN, sessions, and request checks.

The PIN hash and the count of wrong tries live in the home's private ``.photoguard/`` folder, so a
restart neither forgets the PIN nor resets the slow-down after wrong tries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import secrets
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photoguard.photos.durable import _write_text_atomic
from photoguard.store.home import Home

PIN_FILE = "manager-pin.json"
TRIES_FILE = "manager-pin-tries.json"
MIN_PIN_LENGTH = 6
IDLE_SECONDS = 15 * 60
FREE_TRIES = 3              # wrong PINs allowed before waiting starts
MAX_WAIT_SECONDS = 15 * 60
SESSION_COOKIE = "photoguard_session"
# scrypt at 16 MiB: about 50 ms per try on the nursery PC, far too slow to guess a 6-digit PIN offline fast.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Paths a visitor may open without being signed in.
OPEN_PATHS = ("/login", "/setup", "/static/")


class PinError(Exception):
    """The PIN cannot be set or checked; the message says what to do."""


def _write_private(path: Path, text: str) -> None:
    _write_text_atomic(path, text, private=True)


@dataclass(frozen=True)
class LoginAttempt:
    ok: bool
    message: str              # what to tell the manager
    wait_seconds: int = 0     # > 0: refused without checking, try again after this
    unavailable: bool = False  # refused without checking: the try could not be written down


class PinStore:
    """The manager's PIN (scrypt hash) and the persisted count of wrong tries."""

    def __init__(self, home: Home, clock: Callable[[], float]) -> None:
        self.pin_path = home.state / PIN_FILE
        self.tries_path = home.state / TRIES_FILE
        self.clock = clock

    @property
    def is_set(self) -> bool:
        return self.pin_path.exists()

    def set_pin(self, pin: str, repeat: str) -> None:
        if self.is_set:
            raise PinError("A PIN is already set. Sign in with it.")
        if pin != repeat:
            raise PinError("The two PINs are not the same. Type the same PIN twice.")
        if len(pin) < MIN_PIN_LENGTH:
            raise PinError(f"The PIN must be at least {MIN_PIN_LENGTH} characters long.")
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, **SCRYPT)
        _write_private(self.pin_path, json.dumps({"scrypt": SCRYPT, "salt": salt.hex(), "hash": digest.hex()}))

    def _tries(self) -> tuple[int, float]:
        try:
            data = json.loads(self.tries_path.read_text(encoding="utf-8"))
            return int(data["failures"]), float(data["last"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0.0

    def _record(self, failures: int, last: float) -> bool:
        try:
            _write_private(self.tries_path, json.dumps({"failures": failures, "last": last}))
            return True
        except OSError:
            return False

    def wait_seconds(self) -> int:
        failures, last = self._tries()
        if failures < FREE_TRIES:
            return 0
        wait = min(MAX_WAIT_SECONDS, 5 * 2 ** (failures - FREE_TRIES))
        return max(0, int(last + wait - self.clock() + 0.999))

    def check(self, pin: str) -> LoginAttempt:
        wait = self.wait_seconds()
        if wait:
            return LoginAttempt(False, f"Too many wrong PINs. Wait {duration(wait)}, then try again.", wait)
        # The try is written down as wrong before the PIN is looked at: no check without a record of it
        # (on a full disk, guessing would otherwise be free), and a try cut short still counts.
        failures, _ = self._tries()
        if not self._record(failures + 1, self.clock()):
            return LoginAttempt(False, "PhotoGuard cannot check a PIN just now: it could not write down this try "
                                       "(is the computer's disk full?). Free some space, then try again.",
                                unavailable=True)
        try:
            stored = json.loads(self.pin_path.read_text(encoding="utf-8"))
            digest = hashlib.scrypt(pin.encode("utf-8"), salt=bytes.fromhex(stored["salt"]), **stored["scrypt"])
            ok = hmac.compare_digest(digest.hex(), stored["hash"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PinError(f"The PIN file {self.pin_path} cannot be read ({exc}). Delete it and set a new PIN.")
        if ok:
            self._record(0, 0)   # if even this cannot be written, the try stays counted: the safe side
            return LoginAttempt(True, "")
        wait = self.wait_seconds()
        return LoginAttempt(False, "That PIN is not right." + (f" Wait {duration(wait)} before the next try." if wait else ""),
                            wait)


def duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = (seconds + 59) // 60
    return f"{minutes} minutes"


class Sessions:
    """Signed-in browsers, kept in memory: a restart of ``photoguard serve`` signs everyone out."""

    def __init__(self, clock: Callable[[], float], idle_seconds: int = IDLE_SECONDS) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self._last_seen: dict[str, float] = {}

    def start(self) -> str:
        token = secrets.token_urlsafe(32)
        self._last_seen[token] = self.clock()
        return token

    def touch(self, token: str | None) -> bool:
        """True if the session is alive (and keep it alive); an idle one is ended."""
        if not token or token not in self._last_seen:
            return False
        now = self.clock()
        if now - self._last_seen[token] > self.idle_seconds:
            del self._last_seen[token]
            return False
        self._last_seen[token] = now
        return True

    def end(self, token: str | None) -> None:
        self._last_seen.pop(token or "", None)


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values this server answers to; anything else may be a DNS-rebinding page."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("127.0.0.1", "localhost", "::1"):
        names.add(f"[{host}]" if ":" in host else host)
    out = set(names)
    out.update(f"{n}:{port}" for n in names)
    return out


def request_logger(home: Home) -> logging.Logger:
    log = logging.getLogger(f"photoguard.web.{home.root}")
    if not log.handlers:
        home.logs.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(home.logs / "web.log", maxBytes=2_000_000, backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        os.chmod(home.logs / "web.log", 0o600)
    return log


class Guard:
    """ASGI middleware: Host allow-list, same-origin for changes, sign-in, headers, request log.

    The log names the route (``/children/{child_id}``), never the path, so no child's id or
    name ends up in it.
    """

    def __init__(self, app: ASGIApp, *, hosts: set[str], pins: PinStore, sessions: Sessions,
                 log: logging.Logger, disk_full: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.hosts = hosts
        self.pins = pins
        self.sessions = sessions
        self.log = log
        self.disk_full = disk_full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        path = scope["path"]
        status = {"code": 0}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                raw = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() not in (b"cache-control", b"content-security-policy")]
                raw += [
                    (b"content-security-policy", CSP.encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),   # no-referrer would make Chromium send "Origin: null"
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                message = {**message, "headers": raw}
            await send(message)

        refusal = self._refusal(headers, method, path)
        if refusal is None and not path.startswith(OPEN_PATHS):
            token = _cookie(headers, SESSION_COOKIE)
            if not self.pins.is_set:
                refusal = RedirectResponse("/setup", status_code=303)
            elif not self.sessions.touch(token):
                target = path if method in SAFE_METHODS and path.startswith("/") and not path.startswith("//") else "/"
                refusal = RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        try:
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Logged by the kind of error only: its message may name a child.
            route = getattr(scope.get("route"), "path", None) or "(before any page)"
            self.log.error("%s %s failed: %s\n%s", method, route, type(exc).__name__,
                           "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)))
            if status["code"]:
                raise   # the page had begun: nothing better can be sent now
            if self.disk_full():
                answer = PlainTextResponse("The computer's disk is full, so PhotoGuard could not do this. Free some "
                                           "space (empty the outbox of posted photos, the recycle bin), then try "
                                           "again.", status_code=503)
            else:
                answer = PlainTextResponse("Something went wrong on this page. Go back, look whether your change "
                                           "was made, and try again; if it keeps happening, the details are in "
                                           "web.log in PhotoGuard's logs folder.", status_code=500)
            await answer(scope, receive, send_with_headers)
        route = scope.get("route")
        self.log.info("%s %s %s", method, getattr(route, "path", None) or "(before any page)", status["code"])

    def _refusal(self, headers: Headers, method: str, path: str):
        host = headers.get("host", "")
        if host not in self.hosts:
            return PlainTextResponse("This address is not PhotoGuard's. Open http://127.0.0.1:8470/ instead.",
                                     status_code=421)
        if method not in SAFE_METHODS:
            site = headers.get("sec-fetch-site")
            origin = headers.get("origin")
            same = (site == "same-origin") if site is not None else (origin == f"http://{host}")
            if origin is not None and origin != f"http://{host}":
                same = False
            if not same:
                return PlainTextResponse("Refused: this change did not come from PhotoGuard's own page. "
                                         "Open PhotoGuard and try again there.", status_code=403)
        return None


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
