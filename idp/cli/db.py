"""``idp db upgrade`` / ``idp db current``: the idp's schema migrations.

Also the helpers the other admin commands use to open the database and the
services, refusing with one clear line when the schema is missing or old.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING

import click

from ..db import Database, current_revision, head_revision, upgrade
from ..errors import IdpError
from ..settings import IdpSettings

if TYPE_CHECKING:
    from ..services import Services

__all__ = ["register", "open_database", "open_services", "cli_actor"]

logger = logging.getLogger(__name__)


def _quiet_alembic() -> None:
    # Alembic narrates every plugin it loads at INFO; the commands say what happened.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("alembic").setLevel(logging.WARNING)


def open_database(settings: IdpSettings) -> Database:
    """The idp database, checked to be at the current migration."""
    _quiet_alembic()
    db = Database(settings.database_url)
    at = current_revision(db)
    if at != head_revision():
        db.dispose()
        state = "has no idp schema" if at is None else f"is at revision {at}"
        raise IdpError(f"the database {state}; run `idp db upgrade` first")
    return db


def open_services(settings: IdpSettings) -> Services:
    """All idp services for a command (database checked, keyring opened)."""
    from keys.keyring import open_keyring

    from ..services import Services

    db = open_database(settings)
    keyring = open_keyring(settings.common.keys)
    return Services.build(settings, pii=keyring.pii(), keyring=keyring, db=db)


def cli_actor() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def register(group: click.Group) -> None:
    @group.group("db")
    def db_group() -> None:
        """The idp's database schema."""

    @db_group.command("upgrade")
    @click.option("--revision", default="head", show_default=True, help="target revision")
    @click.pass_obj
    def upgrade_cmd(settings: IdpSettings, revision: str) -> None:
        """Create or migrate the idp's tables (safe to run again)."""
        _quiet_alembic()
        db = Database(settings.database_url)
        try:
            before = current_revision(db)
            upgrade(db, revision)
            after = current_revision(db)
        finally:
            db.dispose()
        if before == after:
            click.echo(f"idp database already at {after}")
        else:
            click.echo(f"idp database upgraded from {before or 'empty'} to {after}")

    @db_group.command("current")
    @click.pass_obj
    def current_cmd(settings: IdpSettings) -> None:
        """Show the database's migration revision and whether it is the newest."""
        _quiet_alembic()
        db = Database(settings.database_url)
        try:
            at = current_revision(db)
        finally:
            db.dispose()
        head = head_revision()
        if at is None:
            click.echo(f"empty (head is {head}); run `idp db upgrade`")
        elif at == head:
            click.echo(f"{at} (head)")
        else:
            click.echo(f"{at} (head is {head}); run `idp db upgrade`")
