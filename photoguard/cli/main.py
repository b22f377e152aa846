"""The ``photoguard`` command: a thin layer over the library; every command takes ``--home``.

Each group of commands has its module (home, children, photos, review, outbox, engine, service); importing
them here puts their commands on the one ``photoguard`` group (``common.main``)."""

from __future__ import annotations

from photoguard.cli import children, engine, home, outbox, photos, review  # noqa: F401  (each adds its commands)
from photoguard.cli.common import main
from photoguard.cli.home import status_lines  # noqa: F401  (named by the tests and the README)
from photoguard.cli.service import service

main.add_command(service)
