"""The idp's PostgreSQL pool: big enough for a worker's threads, sized by a setting."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp import db as idp_db


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
