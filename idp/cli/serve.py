"""``idp serve``: the identity provider under granian (WSGI interface).

docs/design.md, performance facts: granian's Rust HTTP layer costs ~17–35 µs a
request where gunicorn's pure-Python one costs ~130 µs, a factor of three on
small endpoints. The target is ``idp.web.wsgi:app``, which every worker
builds from the same environment; sessions, codes and keys are shared
through Redis, the database and the key store, so workers (and instances)
are interchangeable.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from keys.metrics import prepare_multiprocess_dir

from ..settings import IdpSettings

__all__ = ["register", "granian_argv"]

logger = logging.getLogger(__name__)

TARGET = "idp.web.wsgi:app"


def granian_argv(*, host: str, port: int, workers: int, threads: int | None = None) -> list[str]:
    """granian's command line for ``idp serve``.

    ``--respawn-failed-workers`` (issue 20 §7): a worker process that dies
    (OOM killer, SIGKILL, a crash in native code) is started again by
    granian's supervisor after ``--respawn-interval`` (granian's default
    3.5 s, ``GRANIAN_RESPAWN_INTERVAL`` changes it); without it the instance
    served nothing until an operator noticed. The supervisor itself is kept
    alive by the service manager (docs/operators.md: systemd ``Restart=``).
    """
    argv = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
        "--workers", str(workers), "--no-ws", "--log-level", "warning", "--respawn-failed-workers",
    ]
    if threads:
        argv += ["--blocking-threads", str(threads)]
    return [*argv, TARGET]


def register(group: click.Group) -> None:
    @group.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
    @click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="worker processes")
    @click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
                  help="Python threads per worker: requests waiting on Redis, SQL or Argon2id overlap "
                       "(make bench, one core: 8 beat 2 and 4 on SSO sign-ins and password logins)")
    @click.option("--check", is_flag=True,
                  help="build the application once, check that the database and Redis answer, and exit")
    @click.pass_obj
    def serve(settings: IdpSettings, host: str, port: int, workers: int, threads: int | None, check: bool) -> None:
        """Serve the identity provider (OpenID Connect endpoints and pages)."""
        if workers > 1 and not settings.common.redis_url:
            raise click.UsageError(
                "--workers above 1 needs YIWANG_REDIS_URL: the in-process Redis stand-in "
                "is not shared between worker processes"
            )
        # Fail here, with one line, rather than in every worker.
        from ..web import create_app

        app = create_app(settings)
        runtime = app.extensions["yiwang"]
        if runtime.logout is not None:
            runtime.logout.close()
        if check:
            # A deployment's pre-start probe: an unreachable backend is one line and exit 2
            # (idp.cli.main), as for every other command.
            runtime.services.db.ping()
            runtime.services.redis.ping()
            click.echo(f"idp: configuration ok, database and Redis answer, issuer {settings.issuer}")
            return
        click.echo(f"idp: serving {settings.issuer} on http://{host}:{port} with {workers} worker(s)", err=True)
        # The workers' metric files, added up at /metrics (issue 18): a fresh directory per start.
        prepare_multiprocess_dir(settings.common.home, "idp", port)
        argv = granian_argv(host=host, port=port, workers=workers, threads=threads)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with granian
