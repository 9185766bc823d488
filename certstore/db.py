"""Database engine and sessions for certstore.

SQLite (the embedded default) gets WAL journalling, enforced foreign keys and
a busy timeout so the CLI and the server can share the file; PostgreSQL
(production, CI) gets a ping on checking out a connection that sat idle in the
pool for a while (:data:`PING_AFTER_IDLE_SECONDS`, as ``idp.db`` does), so a
restarted server does not fail the first request after it, while a busy
server does not pay SQLAlchemy's ``pool_pre_ping`` round trip on every
checkout (two of the four round trips of an issued certificate). Schema changes go through Alembic only
(:func:`upgrade`), recorded in ``certstore_alembic_version`` so the idp's
migrations can share a database without colliding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "make_engine",
    "make_session_factory",
    "session_scope",
    "autocommit",
    "upgrade",
    "current_revision",
    "VERSION_TABLE",
    "PING_AFTER_IDLE_SECONDS",
]

logger = logging.getLogger(__name__)

VERSION_TABLE = "certstore_alembic_version"
PING_AFTER_IDLE_SECONDS = 5.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""
_MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings above."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only.

    A connection checked in less than ``idle_seconds`` ago was working a
    moment ago; an older one may have outlived a database restart, so it is
    pinged and, if dead, the pool is told to replace it
    (``DisconnectionError`` makes the pool retry with a fresh connection).
    A connection that dies while busy still fails its request once, and the
    pool then drops every connection of that generation.
    """

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["cs_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("cs_idle_since")
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


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def autocommit(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A connection in autocommit mode, for one statement that is atomic by itself.

    Each statement is its own transaction: no ``BEGIN`` and no ``COMMIT``
    round trip (psycopg sends both as separate commands). Only for a single
    statement; several statements that must stand or fall together belong
    in :func:`session_scope`.
    """
    bind = factory.kw["bind"]
    with bind.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()
