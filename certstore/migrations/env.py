"""Alembic environment for certstore: the engine comes from ``certstore.db.upgrade``."""

from __future__ import annotations

from alembic import context

from certstore.db import VERSION_TABLE, make_engine
from certstore.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain ``alembic`` invocation with sqlalchemy.url set
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
