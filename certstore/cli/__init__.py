"""``certstore`` command line: one click group, sub-groups registered from sibling modules.

Every command gets the settings through ``ctx.obj`` (read once from the
environment). Expected failures (bad input, unreachable database or Redis,
key-store problems) print one line on stderr and exit with status 2; nothing
prints a stack trace unless ``YIWANG_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings
from typing import Any

import click

from keys.config import require_home, resolve_home
from keys.errors import KeysError
from keys.logs import configure as configure_logging

from ..errors import CertstoreError
from ..settings import CertstoreSettings

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)

# Each module defines ``register(group: click.Group) -> None``.
_COMMAND_MODULES = ("db", "ca", "types", "issuers", "issue", "verify", "serve", "trust", "status", "init", "batch", "batch_status", "tsa", "ltv")


# Commands that may start a home: ``init``, ``ca init``, and ``db`` (the schema only, no keys).
# Every other one needs the home ``init`` made, its keys above all, and refuses without it: it
# would otherwise make new keys nobody trusts next to the real ones it did not find (issue 18).
_MAY_START_A_HOME = frozenset({"init", "db"})


class _Group(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        ctx.meta["certstore.rest"] = list(args[1:])  # what the group's callback cannot see otherwise
        return super().resolve_command(ctx, args)


def _needs_a_home(ctx: click.Context) -> bool:
    rest: list[str] = ctx.meta.get("certstore.rest", [])
    if ctx.invoked_subcommand is None or ctx.invoked_subcommand in _MAY_START_A_HOME:
        return False
    if "-h" in rest or "--help" in rest:
        return False
    return not (ctx.invoked_subcommand == "ca" and rest[:1] == ["init"])


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Yiwang certificate store: issue, verify and manage electronic certificates."""
    home = resolve_home(os.environ)
    existed = home.exists()
    try:
        ctx.obj = CertstoreSettings.from_env(os.environ)
        if _needs_a_home(ctx) and not (home / "keys").is_dir():
            require_home(home, command="certstore", existed=existed)
    except BaseException:
        if not existed:
            # Reading the settings made the directory: a refused command leaves nothing behind (issue 18).
            with contextlib.suppress(OSError):
                home.rmdir()
        raise
    configure_logging(ctx.obj.common.log_level, ctx.obj.common.log_format)


# pyhanko (imported below) touches cryptography's deprecated DSA class at import time: a note for
# pyhanko's maintainers, not for whoever runs certstore (issue 18).
warnings.filterwarnings("ignore", message="DSA is deprecated")

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
    if isinstance(exc, KeysError | CertstoreError):
        return str(exc)
    try:
        import sqlalchemy.exc as sa_exc
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from keys.redis_urls import UNAVAILABLE as REDIS_UNAVAILABLE
    except ImportError:  # pragma: no cover
        return None
    text = str(getattr(exc, "orig", "") or "")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.ProgrammingError) and (
        "no such table" in text or "does not exist" in text and "relation" in text
    ):
        return "the database has no certstore tables yet (run: certstore init, or certstore db upgrade)"
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return "the database cannot be reached (check YIWANG_DATABASE_URL and that it is running)"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, *REDIS_UNAVAILABLE)):
        return "Redis cannot be reached (check YIWANG_REDIS_URL and that it is running)"
    return None


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="certstore", standalone_mode=False)
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
            click.echo(f"certstore: internal error ({type(e).__name__}); rerun with YIWANG_LOG_LEVEL=debug", err=True)
            sys.exit(1)
        click.echo(f"certstore: {message}", err=True)
        sys.exit(2)
