"""Prebuilt SQLAlchemy statements run straight on the pooled psycopg connection (issue 16).

The token endpoint's hottest statements (the refresh token's take, the grant's
records) are built once with bind parameters. Executed through a SQLAlchemy
``Connection`` each one still costs the execution context, the compiled-cache
lookup, parameter processing, the result proxy and the pool's characteristic
switching: profiled, about a third of a refresh's CPU in the request thread,
more than psycopg itself. :class:`Direct` compiles the statement once for the
engine's dialect and runs the SQL text on the same pool's connection
(``engine.raw_connection()``: the pool's checkout hooks, such as the idle
ping of :mod:`idp.db`, still run), in autocommit mode, as a prepared
statement. The SQL is SQLAlchemy's own compilation, so both paths send the
same statement; errors come back as SQLAlchemy's exceptions (a lost database
is ``OperationalError``, a 503 as before) and a dead connection is dropped
from the pool.

PostgreSQL only; the callers keep the SQLAlchemy path for SQLite.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

__all__ = ["Direct", "json_param"]


def json_param(value: Any) -> str:
    """A JSON column's value as SQLAlchemy's ``JSON`` type binds it (``None`` is JSON ``null``)."""
    return json.dumps(value)


class Direct:
    """One statement: ``rows(db, params)`` → ``(column names, rows)``."""

    def __init__(self, statement: Any, engine: sa.Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        """The statement's literal values (``kind = 'refresh'``…), under SQLAlchemy's names."""
        self._names: list[str] | None = None
        """The result's column names, read once (psycopg builds its description anew on each access)."""

    def rows(self, engine: sa.Engine, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        import psycopg

        values = {**self.defaults, **params}
        fairy = engine.raw_connection()
        conn: Any = None
        try:
            conn = fairy.driver_connection
            conn.autocommit = True  # one statement, atomic by itself: no BEGIN/COMMIT round trips
            try:
                cur = conn.execute(self.sql, values, prepare=True)
                result = cur.pgresult
                if result is None or not result.nfields:
                    return [], []
                if self._names is None:
                    self._names = [c.name for c in cur.description or ()]
                return self._names, cur.fetchall()
            finally:
                if not conn.closed:
                    conn.autocommit = False  # as the pool hands it to everyone else
        except psycopg.Error as e:
            wrapped = sa.exc.DBAPIError.instance(self.sql, values, e, psycopg.Error)
            if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError) or conn is None or conn.closed:
                fairy.invalidate(e)  # a dead connection leaves the pool
            raise wrapped from e
        finally:
            fairy.close()
