"""The idp's engine pings a pooled connection only after it sat idle, and survives a dead one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp import db as idp_db


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_dead_idle_connection_is_replaced(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (pg_terminate_backend)")
    monkeypatch.setattr(idp_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = idp_db.make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        with sa.create_engine(database_url).connect() as admin:  # as a database restart would
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        second = _backend_pid(engine)  # no error: the ping found it dead, the pool reconnected
        assert second != first
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the ping is for PostgreSQL")
    monkeypatch.setattr(idp_db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = idp_db.make_engine(database_url, pool_size=1, max_overflow=0)
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


def test_concurrent_units_keep_their_connections(database_url: str) -> None:
    """As many units at once as one worker's threads reuse the same backends afterwards.

    With SQLAlchemy's default pool of 5, the sixth to eighth connections were
    closed on return and reopened by the next burst (a PostgreSQL fork each).
    """
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool is PostgreSQL's")
    import threading

    from idp.settings import IdpSettings

    settings = IdpSettings.from_env({"YIWANG_DATABASE_URL": database_url})
    database = idp_db.Database(database_url, pool_size=settings.database_pool_size)
    barrier = threading.Barrier(10)

    def burst() -> set[int]:
        pids: set[int] = set()
        lock = threading.Lock()

        def unit() -> None:
            with database.engine.connect() as conn:
                barrier.wait(timeout=10)  # all ten connections are out at once
                pid = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
            with lock:
                pids.add(pid)

        threads = [threading.Thread(target=unit) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return pids

    try:
        first, second = burst(), burst()
        assert len(first) == 10
        assert second == first
    finally:
        database.engine.dispose()


def test_the_pool_size_is_a_setting() -> None:
    from idp.settings import IdpSettings
    from keys.errors import ConfigurationError

    assert IdpSettings.from_env({}).database_pool_size == 20
    assert IdpSettings.from_env({"YIWANG_IDP_DATABASE_POOL_SIZE": "40"}).database_pool_size == 40
    with pytest.raises(ConfigurationError, match="at least 1"):
        IdpSettings.from_env({"YIWANG_IDP_DATABASE_POOL_SIZE": "0"})
