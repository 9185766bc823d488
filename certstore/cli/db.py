"""``certstore db upgrade|current``: the schema, through Alembic."""

from __future__ import annotations

import click

from ..db import current_revision, make_engine, upgrade
from ._common import settings_of

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.group("db")
    def db() -> None:
        """Database schema."""

    @db.command("upgrade")
    @click.pass_context
    def db_upgrade(ctx: click.Context) -> None:
        """Create or upgrade certstore's tables (idempotent)."""
        engine = make_engine(settings_of(ctx).database_url)
        try:
            upgrade(engine)
            click.echo(f"certstore schema at revision {current_revision(engine)}")
        finally:
            engine.dispose()

    @db.command("current")
    @click.pass_context
    def db_current(ctx: click.Context) -> None:
        """Print the schema revision."""
        engine = make_engine(settings_of(ctx).database_url)
        try:
            click.echo(current_revision(engine) or "(empty)")
        finally:
            engine.dispose()
