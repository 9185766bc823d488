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

Outages (issue 20 §2): :func:`outage_of` says whether an exception means the
database is away (unreachable, read-only, a dropped connection) rather than
a bug; the web layer answers those 503 and reports them to
:data:`certstore.availability.DATABASE`, and every engine built here reports
each statement that succeeds to it, so the end of an outage is logged once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from .availability import DATABASE, Availability, Outage

__all__ = [
    "make_engine",
    "make_session_factory",
    "session_scope",
    "autocommit",
    "upgrade",
    "current_revision",
    "VERSION_TABLE",
    "PING_AFTER_IDLE_SECONDS",
    "outage_of",
    "READ_ONLY_SQLSTATE",
]

logger = logging.getLogger(__name__)

VERSION_TABLE = "certstore_alembic_version"
PING_AFTER_IDLE_SECONDS = 5.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""
_MIGRATIONS = Path(__file__).with_name("migrations")
READ_ONLY_SQLSTATE = "25006"
"""PostgreSQL ``read_only_sql_transaction``: a write on a read-only server or transaction."""
_WRITE = re.compile(r"\s*(?:INSERT|UPDATE|DELETE|WITH\b.*?\b(?:INSERT|UPDATE|DELETE)\b)", re.IGNORECASE | re.DOTALL)


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

        _report_successes(engine, DATABASE)
        return engine
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    _report_successes(engine, DATABASE)
    return engine


def _report_successes(engine: Engine, availability: Availability) -> None:
    """Tell ``availability`` about each statement that succeeds while it believes the database away.

    While the database is up this costs one attribute read per statement;
    only during an outage is the statement looked at, to tell a write (which
    ends a read-only outage) from a read (which does not).
    """

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _succeeded(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if availability.down:
            availability.answered(wrote=_WRITE.match(statement) is not None)


def outage_of(exc: BaseException) -> Outage | None:
    """The outage ``exc`` stands for, or ``None`` when it is no sign of the database being away.

    * a write refused because the server is read-only (PostgreSQL SQLSTATE
      25006, psycopg's ``ReadOnlySqlTransaction``; SQLite's read-only file):
      ``read-only``;
    * a connection that died under the request (SQLAlchemy invalidated it):
      ``dropped`` — the pool reconnects on the next checkout;
    * any other ``OperationalError`` or ``InterfaceError`` (connection
      refused, the server shutting down or starting up, a lock timeout on
      SQLite), or no pooled connection free in time: ``unreachable``.

    The reason names the driver's error class and SQLSTATE only, never the
    message: SQLAlchemy's text carries the statement and its parameters.
    """
    if isinstance(exc, sa.exc.TimeoutError):
        return Outage("unreachable", "no pooled connection free in time")
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    what = type(orig).__name__ + (f", SQLSTATE {sqlstate}" if sqlstate else "")
    if sqlstate == READ_ONLY_SQLSTATE or getattr(orig, "sqlite_errorname", "") == "SQLITE_READONLY":
        return Outage("read-only", f"read-only ({what})")
    if exc.connection_invalidated:
        return Outage("dropped", what)
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        # SQLAlchemy wraps a failed connect without a statement
        return Outage("unreachable", f"cannot connect ({what})" if exc.statement is None else what)
    return None


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
