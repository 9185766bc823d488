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

Within :func:`one_connection` the statements of one request share one
checkout (the refresh grant's take and its records: profiled, the second
checkout, check-in and autocommit switching were about a tenth of a refresh's
CPU in the request thread). It is checked out on the first statement and
handed back, as the pool hands it out, when the block ends.

PostgreSQL only; the callers keep the SQLAlchemy path for SQLite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

__all__ = ["Direct", "json_param", "one_connection"]

_held = threading.local()
"""``slot``: the :class:`_Slot` of the request this thread is answering, inside :func:`one_connection`."""


class _Slot:
    """One pooled connection kept in autocommit for the statements of one block."""

    __slots__ = ("engine", "fairy")

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.fairy: Any = None

    def take(self) -> Any:
        if self.fairy is None:
            fairy = self.engine.raw_connection()
            try:
                fairy.driver_connection.autocommit = True
            except Exception as e:
                fairy.invalidate(e)
                fairy.close()
                raise
            self.fairy = fairy
        return self.fairy

    def drop(self, error: BaseException) -> None:
        """The connection failed: it leaves the pool; a later statement checks out another."""
        fairy, self.fairy = self.fairy, None
        if fairy is not None:
            fairy.invalidate(error)
            fairy.close()

    def release(self) -> None:
        fairy, self.fairy = self.fairy, None
        if fairy is None:
            return
        try:
            conn = fairy.driver_connection
            if not conn.closed:
                conn.autocommit = False  # as the pool hands it to everyone else
        finally:
            fairy.close()


@contextmanager
def one_connection(engine: sa.Engine) -> Iterator[None]:
    """:class:`Direct` statements on ``engine`` in this block (this thread) share one checkout.

    Nested blocks join the outer one. Nothing is checked out until a statement runs.
    """
    if getattr(_held, "slot", None) is not None:
        yield
        return
    slot = _held.slot = _Slot(engine)
    try:
        yield
    finally:
        _held.slot = None
        slot.release()


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
        slot = getattr(_held, "slot", None)
        if slot is not None and slot.engine is engine:
            return self._run(slot, params)
        own = _Slot(engine)
        try:
            return self._run(own, params)
        finally:
            own.release()

    def _run(self, slot: _Slot, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        import psycopg

        values = {**self.defaults, **params}
        conn: Any = None
        try:
            conn = slot.take().driver_connection
            cur = conn.execute(self.sql, values, prepare=True)
            result = cur.pgresult
            if result is None or not result.nfields:
                return [], []
            if self._names is None:
                self._names = [c.name for c in cur.description or ()]
            return self._names, cur.fetchall()
        except psycopg.Error as e:
            wrapped = sa.exc.DBAPIError.instance(self.sql, values, e, psycopg.Error)
            if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError) or conn is None or conn.closed:
                slot.drop(e)  # a dead connection leaves the pool
            raise wrapped from e
