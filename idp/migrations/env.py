"""Alembic environment for the idp's schema.

Run through :func:`idp.db.upgrade` (``idp db upgrade``), which hands over the
engine in ``config.attributes["engine"]``. ``render_as_batch`` makes the
same revision scripts work on SQLite, whose ``ALTER TABLE`` is limited.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from idp.db import VERSION_TABLE
from idp.models import Base, UtcDateTime

target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revision scripts stay free of idp imports: UtcDateTime is a timestamptz.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
    )


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        from idp.db import make_engine

        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine or sqlalchemy.url given to the idp migrations")
        engine = make_engine(url)
    with engine.begin() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("the idp migrations run online only (idp db upgrade)")
run_migrations_online()
