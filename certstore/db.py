"""Database engine and sessions for certstore.

SQLite (the embedded default) gets WAL journalling, enforced foreign keys and
a busy timeout so the CLI and the server can share the file; PostgreSQL
(production, CI) gets ``pool_pre_ping`` so a restarted server does not fail
the first request after it. Schema changes go through Alembic only
(:func:`upgrade`), recorded in ``certstore_alembic_version`` so the idp's
migrations can share a database without colliding.
"""

from __future__ import annotations

import logging
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
]

logger = logging.getLogger(__name__)

VERSION_TABLE = "certstore_alembic_version"
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
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


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
