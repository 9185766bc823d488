"""The background writer's batch append straight on psycopg (PostgreSQL; issue 16).

Through an ORM Session and SQLAlchemy's Core execution, one batch of a few
records cost 0.7–1 ms of the writer's CPU on a quiet machine and about twice
that beside password logins (the session, the execution contexts, the
compiled-cache lookups and psycopg's pipelined ``executemany``): 1–1.8 ms a
login, on the one core the request threads and the hash share
(docs/performance.md). :class:`DirectAppend` runs the same transaction with
the same statements, compiled once by SQLAlchemy for the engine's dialect: the
head's ``UPDATE … RETURNING`` (which takes its row lock first), one multi-row
``INSERT`` of the batch, the head's new MAC, ``COMMIT``. Values go through the
columns' own bind processors, so the rows are those the Core path writes, and
the chain and its MACs are :class:`~.log.AuditLog`'s (``chain``). Errors come
back as SQLAlchemy's exceptions (the writer's back-off for a database that is
away still applies) and a dead connection leaves the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .records import Pending

__all__ = ["DirectAppend", "MAX_ROWS"]

MAX_ROWS = 64
"""The largest batch written as one multi-row INSERT; larger ones go in slices of this size."""

Chain = Callable[[list[Pending], int, str], list[dict[str, Any]]]
"""``(batch, last seq reserved, head MAC)`` → the rows, keyed and chained (``AuditLog._chain``)."""


class HeadMissing(Exception):
    """The ``audit_head`` row is gone: the caller's Core path recreates it (and logs it)."""


class DirectAppend:
    """``write(batch)`` → the rows written, in order, in one transaction of its own."""

    def __init__(self, engine: sa.Engine, bump: Any, set_head: Any, events: sa.Table, chain: Chain) -> None:
        self.engine = engine
        dialect = engine.dialect
        self._bump = bump.compile(dialect=dialect)
        self._set_head = set_head
        self._head_params = dict(set_head.compile(dialect=dialect).params)
        self._events = events
        self._chain = chain
        self._processors = [(c.key, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in events.columns]
        self._statements: dict[tuple[int, bool], str] = {}

    def _sql(self, n: int, *, head: bool) -> str:
        """``n`` rows' INSERT; with ``head``, inside the head's ``UPDATE`` (built once per shape)."""
        sql = self._statements.get((n, head))
        if sql is None:
            rows = [{c.key: sa.bindparam(f"{c.key}_m{i}", type_=c.type) for c in self._events.columns}
                    for i in range(n)]
            insert = sa.insert(self._events).values(rows)
            statement = self._set_head.add_cte(insert.cte("appended")) if head else insert
            sql = self._statements[(n, head)] = str(statement.compile(dialect=self.engine.dialect))
        return sql

    def _bound(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The multi-row INSERT's parameters (``seq_m0``, ``at_m0``…), as SQLAlchemy binds them."""
        params: dict[str, Any] = {}
        for i, row in enumerate(rows):
            for key, process in self._processors:
                value = row[key]
                params[f"{key}_m{i}"] = process(value) if process is not None and value is not None else value
        return params

    def write(self, batch: list[Pending]) -> list[dict[str, Any]]:
        import psycopg

        fairy = self.engine.raw_connection()
        conn: Any = None
        sql = self._bump.string
        params: Any = None
        try:
            conn = fairy.driver_connection
            with conn.transaction():
                params = {**self._bump.params, "n": len(batch)}
                got = conn.execute(sql, params, prepare=True).fetchone()
                if got is None:
                    raise HeadMissing
                rows = self._chain(batch, int(got[0]), str(got[1]))
                for start in range(0, len(rows), MAX_ROWS):
                    part = rows[start:start + MAX_ROWS]
                    last = start + MAX_ROWS >= len(rows)
                    sql, params = self._sql(len(part), head=last), self._bound(part)
                    if last:
                        params.update(self._head_params, new_hash=rows[-1]["hash"])
                    conn.execute(sql, params, prepare=len(part) <= 8)
            return rows
        except psycopg.Error as e:
            if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError) or conn is None or conn.closed:
                fairy.invalidate(e)  # a dead connection leaves the pool
            raise sa.exc.DBAPIError.instance(sql, params, e, psycopg.Error) from e
        finally:
            fairy.close()
