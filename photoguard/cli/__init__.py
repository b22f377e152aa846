"""The `photoguard` command: one module per group of commands, each a thin face over the library."""

from photoguard.cli.main import main

__all__ = ["main"]
