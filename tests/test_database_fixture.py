"""The test suite's own isolation: each test gets an empty schema and Redis namespace."""

import os

import pytest
import sqlalchemy as sa

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL


def test_each_test_gets_an_empty_database(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id integer primary key)"))
        conn.execute(sa.text("INSERT INTO probe (id) VALUES (1)"))
        assert conn.execute(sa.text("SELECT count(*) FROM probe")).scalar_one() == 1
    engine.dispose()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs YIWANG_TEST_DATABASE_URL")
def test_postgresql_is_really_used(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.dialect.name == "postgresql"
        schema = conn.execute(sa.text("select current_schema()")).scalar_one()
        assert schema.startswith("t_")
    engine.dispose()


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs YIWANG_TEST_REDIS_URL")
def test_redis_is_really_used(redis_url: str, redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "probe", "1", ex=10)
    assert client.get(redis_prefix + "probe") == b"1"
    client.close()


def test_ci_runs_against_real_services() -> None:
    # In CI the PostgreSQL/Redis tests must run, not be skipped.
    if os.environ.get("CI") == "true":
        assert TEST_DATABASE_URL and TEST_REDIS_URL
