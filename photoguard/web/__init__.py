"""The manager's web pages (``photoguard serve``): a thin face over the same library as the CLI."""

from photoguard.web.app import create_app

__all__ = ["create_app"]
