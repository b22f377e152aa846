"""What every page shares: the app's state, a database connection per request, messages shown once (flash),
rendering a template, ids from URLs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from photoguard.store import db
from photoguard.store.home import Home
from photoguard.web.security import SESSION_COOKIE, PinStore, Sessions

HERE = Path(__file__).resolve().parent


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
