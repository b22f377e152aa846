"""``photoguard serve``: run the app with uvicorn, on this computer only unless asked otherwise."""

from __future__ import annotations

from collections.abc import Callable

from photoguard.store.home import Home
from photoguard.web.app import create_app

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ServeError(Exception):
    """The web app cannot start; the message says what to do."""


def serve(home: Home, *, host: str = "127.0.0.1", port: int = 8470, echo: Callable[[str], None] = print) -> None:
    import uvicorn

    if host in ("0.0.0.0", "::", ""):
        raise ServeError("PhotoGuard answers only to the address it is opened by, so give this computer's own "
                         "network address with --host (for example --host 192.168.1.20), not every address.")
    if host not in LOCAL_HOSTS:
        echo(f"warning: listening on {host}: other computers on the network can reach the manager's pages "
             "(the PIN still protects them). Use the default 127.0.0.1 unless you need this.")
    app = create_app(home, host=host, port=port)
    echo(f"PhotoGuard for {home.root}: open http://{'127.0.0.1' if host in LOCAL_HOSTS else host}:{port}/ "
         "in the web browser. Stop with Ctrl-C.")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                    proxy_headers=False)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror}). Is PhotoGuard already open? "
                         "Try another --port.")
