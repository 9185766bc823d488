"""Both services' engines ping a pooled connection only after it sat idle, and survive a dead one.

The listener is written twice (idp/db.py, certstore/db.py): docs/design.md's dependency
rule leaves no package both may share that can import SQLAlchemy. One test covers both.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from certstore import db as cs_db
from idp import db as idp_db


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("db", [idp_db, cs_db], ids=["idp", "certstore"])
def test_a_dead_idle_connection_is_replaced(db: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (pg_terminate_backend)")
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        with sa.create_engine(database_url).connect() as admin:  # as a database restart would
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        second = _backend_pid(engine)  # no error: the ping found it dead, the pool reconnected
        assert second != first
    finally:
        engine.dispose()


@pytest.mark.parametrize("db", [idp_db, cs_db], ids=["idp", "certstore"])
def test_a_recently_used_connection_is_not_pinged(db: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the ping is for PostgreSQL")
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    statements: list[str] = []
    try:
        _backend_pid(engine)
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        pings: list[int] = []
        orig = engine.dialect.do_ping
        monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(1) or orig(c))
        _backend_pid(engine)
        assert pings == []  # neither SQLAlchemy's pre-ping nor ours
        assert statements == ["SELECT pg_backend_pid()"]
    finally:
        engine.dispose()
