"""``idp`` command line: one click group, sub-groups registered from sibling modules.

Every command gets the settings through ``ctx.obj`` (read once from the
environment). Expected failures (bad input, unreachable database or Redis,
key-store problems) print one line on stderr and exit with status 2; nothing
prints a stack trace unless ``YIWANG_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from keys.errors import KeysError
from keys.logs import configure as configure_logging

from ..errors import IdpError
from ..settings import IdpSettings

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)

# Each module defines ``register(group: click.Group) -> None``.
_COMMAND_MODULES = ("db", "keys", "users", "clients", "serve", "audit", "logout", "worker", "init", "staff")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Yiwang identity provider (OpenID Connect)."""
    ctx.obj = IdpSettings.from_env(os.environ)
    configure_logging(ctx.obj.common.log_level, ctx.obj.common.log_format)


for _name in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # a module not written yet
        if _e.name != f"{__name__}.{_name}":
            raise
        continue
    _mod.register(cli)


def _describe(exc: BaseException) -> str | None:
    """One line for an expected failure, or ``None`` for a bug."""
    if isinstance(exc, KeysError | IdpError):
        return str(exc)
    try:
        import sqlalchemy.exc as sa_exc
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from keys.redis_urls import UNAVAILABLE as REDIS_UNAVAILABLE
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return "the database cannot be reached (check YIWANG_DATABASE_URL and that it is running)"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, *REDIS_UNAVAILABLE)):
        return "Redis cannot be reached (check YIWANG_REDIS_URL and that it is running)"
    return None


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="idp", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        message = _describe(e)
        if message is None:
            logger.debug("unexpected error", exc_info=True)
            click.echo(f"idp: internal error ({type(e).__name__}); rerun with YIWANG_LOG_LEVEL=debug", err=True)
            sys.exit(1)
        click.echo(f"idp: {message}", err=True)
        sys.exit(2)
