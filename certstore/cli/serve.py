"""``certstore serve``: the web app under granian (a hard dependency).

There is deliberately no werkzeug fallback: its development server logs
every request line, query string included, and ``/wallet/callback?code=…``
carries an authorization code.
"""

from __future__ import annotations

import click

from keys.metrics import prepare_multiprocess_dir

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
        settings = settings_of(ctx)  # refuse bad settings here, before the workers start
        # The workers' metric files, added up at /metrics (issue 18): a fresh directory per start.
        prepare_multiprocess_dir(settings.common.home, "certstore", port)
        from granian import Granian
        from granian.constants import Interfaces

        # granian imports the factory in its workers; they read the environment themselves.
        Granian(
            "certstore.web.wsgi:app",
            address=host,
            port=port,
            workers=workers,
            interface=Interfaces.WSGI,
            # A worker that dies (OOM killer, kill -9, a crash in native code) is started
            # again by granian's supervisor; a crash loop ends the supervisor and the
            # service manager takes over (docs/reliability.md).
            respawn_failed_workers=True,
        ).serve()
