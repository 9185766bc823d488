"""The idp's database: engine, sessions and Alembic migrations.

One :class:`Database` per process, built from the settings' URL. SQLite (the
embedded default) gets foreign keys switched on and WAL journalling so the
web process and the CLI can share the file; PostgreSQL gets ``pool_pre_ping``
so a restarted server costs one retry, not an error.

Migrations live in ``idp/migrations`` and record their revision in
``idp_alembic_version`` (the idp may share a PostgreSQL database with
certstore in small deployments, so its version table has its own name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .models import Base

__all__ = [
    "make_engine",
    "Database",
    "VERSION_TABLE",
    "alembic_config",
    "upgrade",
    "current_revision",
    "head_revision",
    "rowcount",
]

logger = logging.getLogger(__name__)

VERSION_TABLE = "idp_alembic_version"
_MIGRATIONS = Path(__file__).with_name("migrations")


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
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(u, **kwargs)


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (``CursorResult.rowcount``, loosely typed upstream)."""
    return int(result.rowcount)


class Database:
    """Holds the engine and hands out sessions that commit or roll back."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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
