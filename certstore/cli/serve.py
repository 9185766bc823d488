"""``certstore serve``: the web app under granian when installed, else werkzeug's server."""

from __future__ import annotations

import importlib.util

import click

from ._common import settings_of

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5100, show_default=True, type=int)
    @click.option("--workers", default=1, show_default=True, type=int)
    @click.pass_context
    def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
        """Serve the API, the verify page and the PKI files."""
        settings = settings_of(ctx)
        if importlib.util.find_spec("granian") is not None:
            from granian import Granian
            from granian.constants import Interfaces

            # granian imports the factory in its workers; they read the environment themselves.
            Granian(
                "certstore.web.wsgi:app",
                address=host,
                port=port,
                workers=workers,
                interface=Interfaces.WSGI,
            ).serve()
            return
        from werkzeug.serving import run_simple

        from ..web import create_app

        click.echo(f"certstore on http://{host}:{port}/ (werkzeug; install granian for production)", err=True)
        run_simple(host, port, create_app(settings), threaded=True)
