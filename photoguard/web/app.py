"""The manager's web app: a Starlette application over the same library the CLI uses."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from photoguard.store import db
from photoguard.store.home import Home
from photoguard.web.pages import HERE, WebState, make_templates
from photoguard.web.security import Guard, PinStore, Sessions, allowed_hosts, request_logger

DEFAULT_PORT = 8470


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
