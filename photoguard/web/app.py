"""The manager's web app: a Starlette application over the same library the CLI uses."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from photoguard.store import db
from photoguard.store.home import Home
from photoguard.web.security import SESSION_COOKIE, Guard, PinStore, Sessions, allowed_hosts, request_logger

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 8470


@dataclass
class WebState:
    """Everything a page needs, made once per app (no module-level state)."""
    home: Home
    pins: PinStore
    sessions: Sessions
    templates: jinja2.Environment
    clock: Callable[[], float]
    flashes: dict[str, list[str]] = field(default_factory=dict)
    _detector: Any = None
    _detector_lock: threading.Lock = field(default_factory=threading.Lock)

    def detector(self):
        """The face detector, loaded on first use (the roster pages need it for reference photos)."""
        with self._detector_lock:
            if self._detector is None:
                from photoguard.engine.detect import FaceDetector

                self._detector = FaceDetector(threshold=self.home.settings.detect_threshold)
            return self._detector


def state(request: Request) -> WebState:
    return request.app.state.web


@contextmanager
def database(request: Request) -> Iterator[sqlite3.Connection]:
    conn = db.connect(state(request).home.database, snapshot_when_full=True)
    try:
        yield conn
    finally:
        conn.close()


def record_id(text: str) -> int | None:
    """A row id from a URL ("12"), or None for anything else ("²" is a digit to Python, not to SQLite)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def flash(request: Request, message: str) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        state(request).flashes.setdefault(token, []).append(message)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    web = state(request)
    token = request.cookies.get(SESSION_COOKIE)
    messages = web.flashes.pop(token, []) if token else []
    html = web.templates.get_template(template).render(
        request=request, home=web.home, channels=web.home.settings.channels, messages=messages,
        signed_in=web.sessions.touch(token) if token else False, **context)
    return HTMLResponse(html, status_code=status_code)


def _when(value: str | None) -> str:
    """An ISO time from the database as the nursery reads it: local time, no seconds or zone."""
    from photoguard.store.localtime import when_words

    return when_words(value)


def _day(value: date | None) -> str:
    return f"{value:%d %b %Y}" if value else "no end date"


def _consent_words(summary: str | None) -> str:
    """roster's "face_matching=yes facebook=no expires=never" as a sentence (``roster.summary_words``)."""
    from photoguard.store.children import summary_words

    return summary_words(summary)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.filters["consent_words"] = _consent_words
    # Jinja's capitalize lowercases the rest ("Recognised as ada"): only the first letter here.
    env.filters["sentence"] = lambda text: (str(text)[:1].upper() + str(text)[1:]) if text else ""
    return env


def create_app(home: Home, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
               clock: Callable[[], float] = time.time) -> Starlette:
    """The app for one home. ``clock`` is the time source for the idle lock and PIN slow-down."""
    from photoguard.web.routes import routes

    web = WebState(home=home, pins=PinStore(home, clock), sessions=Sessions(clock), templates=make_templates(),
                   clock=clock)
    app = Starlette(routes=[*routes(), Mount("/static", StaticFiles(directory=HERE / "static"), name="static")])
    app.state.web = web
    app.add_middleware(Guard, hosts=allowed_hosts(host, port), pins=web.pins, sessions=web.sessions,
                       log=request_logger(home), disk_full=lambda: db.disk_is_full(home.root))
    return app
