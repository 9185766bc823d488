"""The Alembic migrations create exactly the models' schema (PostgreSQL in CI, SQLite locally)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from idp.audit import GENESIS_HASH, AuditLog
from idp.db import VERSION_TABLE, Database, alembic_config, current_revision, head_revision, upgrade
from idp.models import Base


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


def _differences(db: Database) -> list[object]:
    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return not (type_ == "table" and name == VERSION_TABLE)

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": include_name}
        )
        return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_creates_the_models_schema(db: Database) -> None:
    assert current_revision(db) is None
    upgrade(db)
    assert current_revision(db) == head_revision() is not None
    assert _differences(db) == []
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} | {VERSION_TABLE} == tables
    # the audit chain's head row comes with the schema
    with db.engine.connect() as conn:
        head = conn.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    assert tuple(head) == (0, GENESIS_HASH)
    AuditLog(db).record("admin.client_added", subject="portal")
    assert AuditLog(db).verify().records == 1


def test_upgrade_twice_is_harmless_and_downgrade_goes_back_to_empty(db: Database) -> None:
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision()
    command.downgrade(alembic_config(db), "base")
    assert current_revision(db) is None
    assert set(sa.inspect(db.engine).get_table_names()) <= {VERSION_TABLE}
    upgrade(db)
    assert _differences(db) == []


def test_the_database_is_really_the_configured_one(db: Database) -> None:
    from tests.conftest import TEST_DATABASE_URL

    expected = "postgresql" if TEST_DATABASE_URL else "sqlite"
    assert db.dialect == expected
