"""A password login's citizen read: one prebuilt Core statement, no ORM Session.

Loading the citizen as an ORM entity through a Session was the largest part of a
password login besides the hash (0.5–0.85 ms of CPU, issue 16; docs/performance.md).
This reads every mapped column of the one row with the blind index in one
autocommit statement (on PostgreSQL straight on the pooled psycopg connection,
:mod:`idp.oauth.pgdirect`) and builds the same detached :class:`Citizen` the
ORM query gave, so the rest of the login (and a later ``merge`` to store a
rehashed password) sees no difference (tests/idp/test_perf_login_store.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached

from .db import Database
from .models import Citizen

__all__ = ["LoginRead"]

_KEYS = tuple(a.key for a in sa.inspect(Citizen).column_attrs)
_STATEMENT = sa.select(*(getattr(Citizen.__table__.c, k) for k in _KEYS)).where(
    Citizen.__table__.c.id_number_index == sa.bindparam("index"))
_CONVERTED = [(i, c.type) for i, c in enumerate(_STATEMENT.selected_columns)
              if isinstance(c.type, sa.types.TypeDecorator)]
_new_citizen = sa.inspect(Citizen).class_manager.new_instance


def _citizen_from_row(values: Any) -> Citizen:
    """A detached :class:`Citizen` with every column loaded, as the ORM query gives it: the values
    go into its dict as the ORM's loader puts them (no change history), then it gets its identity."""
    citizen = _new_citizen()
    citizen.__dict__.update(zip(_KEYS, values, strict=True))
    make_transient_to_detached(citizen)
    return citizen


class LoginRead:
    """``citizen(index)``: the account with blind index ``index``, or ``None``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._direct: Any = None  # the statement on psycopg (PostgreSQL), made on first use

    def citizen(self, index: str) -> Citizen | None:
        params = {"index": index}
        if self.db.dialect == "postgresql":
            if self._direct is None:
                from .oauth.pgdirect import Direct

                self._direct = Direct(_STATEMENT, self.db.engine)
            rows = self._direct.rows(self.db.engine, params)[1]
            if not rows:
                return None
            values = list(rows[0])  # psycopg's values: the column types' own conversion (UTC timestamps) as SQLAlchemy's
            for i, type_ in _CONVERTED:
                values[i] = type_.process_result_value(values[i], self.db.engine.dialect)
            return _citizen_from_row(values)
        row = self.db.first_row(_STATEMENT, params)
        return None if row is None else _citizen_from_row(row)
