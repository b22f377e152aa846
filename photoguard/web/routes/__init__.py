"""The pages, one module each; every route calls the same library functions as the CLI."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    from photoguard.web.routes import auth, dashboard, outbox, photos, redo, review, roster, whos_who

    return [*auth.routes, *dashboard.routes, *roster.routes, *review.routes, *whos_who.routes, *outbox.routes,
            *photos.routes, *redo.routes]
