"""The idp's database: engine, sessions and Alembic migrations.

One :class:`Database` per process, built from the settings' URL. SQLite (the
embedded default) gets foreign keys switched on and WAL journalling so the
web process and the CLI can share the file; PostgreSQL gets a ping on
checking out a connection that sat idle in the pool for a while
(:data:`PING_AFTER_IDLE_SECONDS`), so a restarted server costs one retry, not
an error, while a busy server does not pay SQLAlchemy's ``pool_pre_ping``
round trip on every unit of work (profiled: one in three SQL round trips of an
SSO sign-in was that ping).

Migrations live in ``idp/migrations`` and record their revision in
``idp_alembic_version`` (the idp may share a PostgreSQL database with
certstore in small deployments, so its version table has its own name).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .models import Base
from .settings import IdpSettings

__all__ = [
    "make_engine",
    "Database",
    "VERSION_TABLE",
    "alembic_config",
    "upgrade",
    "current_revision",
    "head_revision",
    "rowcount",
    "PING_AFTER_IDLE_SECONDS",
]

logger = logging.getLogger(__name__)

VERSION_TABLE = "idp_alembic_version"
PING_AFTER_IDLE_SECONDS = 5.0
"""A pooled connection idle longer than this is pinged before it is handed out."""
_MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_POOL_SIZE: int = IdpSettings.database_pool_size
"""The setting's default (``YIWANG_IDP_DATABASE_POOL_SIZE``), for engines built without settings."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings the idp relies on."""
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 15)
        engine = sa.create_engine(u, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", DEFAULT_POOL_SIZE)
    kwargs.setdefault("max_overflow", kwargs["pool_size"])
    engine = sa.create_engine(u, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only.

    A connection checked in less than ``idle_seconds`` ago was working a
    moment ago; an older one may have outlived a database restart, so it is
    pinged and, if dead, the pool is told to replace it
    (``DisconnectionError`` makes the pool retry with a fresh connection).
    A connection that dies while busy still fails its request once and the
    pool drops every connection of that generation.
    """

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["yw_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("yw_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            if not getattr(dbapi_conn, "autocommit", True):
                dbapi_conn.rollback()
        except Exception as e:
            logger.info("idle database connection was dead; reconnecting")
            raise sa.exc.DisconnectionError() from e


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (``CursorResult.rowcount``, loosely typed upstream)."""
    return int(result.rowcount)


class Database:
    """Holds the engine and hands out sessions that commit or roll back."""

    def __init__(self, url: str, *, engine: Engine | None = None, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.engine = engine or make_engine(url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool, no transaction: a single statement is atomic on its own,
        # and BEGIN/COMMIT cost two of a hot path's round trips.
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._single = sessionmaker(self._autocommit, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.engine.dialect.name})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def single_statement(self) -> Iterator[Session]:
        """A session for work that is one SQL statement (a read, or one atomic write).

        Runs in autocommit mode, so no BEGIN or COMMIT goes over the wire:
        one round trip where :meth:`session` costs three. Only for code that
        issues exactly one statement, or reads whose consistency with each
        other does not matter; several writes that must stand or fall
        together belong in :meth:`session`.
        """
        session = self._single()
        try:
            yield session
        finally:
            session.close()

    def first_row(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of a Core ``statement`` (or ``None``), in autocommit: one round trip,
        no ORM identity map; for hot reads whose callers want plain values."""
        with self._autocommit.connect() as conn:
            return conn.execute(statement, params).first()

    def all_rows(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        """Every row a one-statement Core write (``… RETURNING``) or read gives back, in
        autocommit (atomic by itself, one round trip); ``[]`` for a statement without rows.
        Through a Connection, not a Session: an INSERT on a mapped table would
        otherwise take the ORM's bulk-persistence path."""
        with self._autocommit.connect() as conn:
            result = conn.execute(statement, params)
            return list(result.all()) if result.returns_rows else []

    def create_all(self) -> None:
        """Create the tables straight from the models (tests only; production migrates)."""
        Base.metadata.create_all(self.engine)

    def ping(self) -> None:
        """Raise if the database cannot be reached (``/readyz``)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


# --------------------------------------------------------------- migrations


def alembic_config(database: Database | None = None) -> Any:
    """An Alembic ``Config`` for the idp's migrations, bound to ``database``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("version_locations", str(_MIGRATIONS / "versions"))
    if database is not None:
        cfg.attributes["engine"] = database.engine
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    from alembic import command

    command.upgrade(alembic_config(database), revision)
    logger.info("idp database at %s", current_revision(database))


def current_revision(database: Database) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    return ScriptDirectory.from_config(cfg).get_current_head()
