"""The SQL of one delivery attempt: one statement to read, one to record (issue 16).

A back-channel fan-out is one attempt per relying party, so what an attempt
costs besides its POST is paid fifty times for a session signed in to fifty
portals. Through ORM sessions an attempt cost eight round trips (BEGIN, the
row, its client, COMMIT; BEGIN, the row again, its UPDATE, COMMIT) and about
half of a worker's CPU per delivery. Here it is two autocommit statements,
built once with bind parameters and, on PostgreSQL, run straight on the
pooled psycopg connection (:class:`idp.oauth.pgdirect.Direct`: the same
compiled SQL without SQLAlchemy's per-execution machinery, 50 against 190 µs
of CPU for the read); SQLite runs them through SQLAlchemy:

- :func:`read_attempt`: the row joined with its client's signing algorithm
  and attributes (an outer join: a deleted client still leaves its row
  deliverable, as before);
- :func:`record_outcome`: one ``UPDATE … WHERE id = … AND status = 'pending'``,
  so a row another attempt already settled is left alone exactly as the
  ORM path's re-read did, and the attempt counter is incremented in the
  database.

Each statement is atomic on its own; nothing here needs the two to be one
transaction (the Redis lock of :meth:`idp.logout.queue.JobQueue._deliver`
keeps attempts of one delivery apart, as it did).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from ..models import Citizen, Client, LogoutDelivery
from ..oauth.pgdirect import Direct
from ..oauth.subject import sector_of, subject_for

__all__ = ["Attempt", "DeliveryRows", "insert_oidc_deliveries", "retry_delay_ms"]


class Attempt(NamedTuple):
    """A delivery row as an attempt reads it, with its client's ``registered``/``alg``/``attributes``."""

    id: int
    status: str
    sid: str
    client_id: str
    sub: str | None
    uri: str
    attempts: int
    created_at: Any
    registered: str | None
    """The client's id when the client still exists, else ``None``."""
    alg: str | None
    attributes: Any


_ATTEMPT = (
    sa.select(
        LogoutDelivery.id,
        LogoutDelivery.status,
        LogoutDelivery.sid,
        LogoutDelivery.client_id,
        LogoutDelivery.sub,
        LogoutDelivery.uri,
        LogoutDelivery.attempts,
        LogoutDelivery.created_at,
        Client.client_id.label("registered"),
        Client.id_token_signed_response_alg.label("alg"),
        Client.attributes.label("attributes"),
    )
    .outerjoin(Client, Client.client_id == LogoutDelivery.client_id)
    .where(LogoutDelivery.id == sa.bindparam("delivery_id"))
)

_WHEN = LogoutDelivery.created_at.type


def _settle(**values: Any) -> Any:
    return (
        sa.update(LogoutDelivery)
        .where(LogoutDelivery.id == sa.bindparam("delivery_id"), LogoutDelivery.status == "pending")
        .values(attempts=LogoutDelivery.attempts + 1, **values)
        .returning(LogoutDelivery.id)
    )


_DELIVERED = _settle(
    status="delivered", delivered_at=sa.bindparam("now", type_=_WHEN), next_attempt_at=None, last_error=None
)
_FAILED = _settle(status="failed", next_attempt_at=None, last_error=sa.bindparam("error", type_=sa.String()))
_RETRY = _settle(
    next_attempt_at=sa.bindparam("next_attempt_at", type_=_WHEN), last_error=sa.bindparam("error", type_=sa.String())
)


_clients = Client.__table__.c
_TOLD = sa.select(
    _clients.client_id, _clients.subject_type, _clients.sector_identifier, _clients.redirect_uris,
    _clients.backchannel_logout_uri,
).where(_clients.client_id.in_(sa.bindparam("client_ids", expanding=True)), _clients.backchannel_logout_uri.is_not(None))
_PUBLIC_ID = sa.select(Citizen.__table__.c.public_id).where(Citizen.__table__.c.id == sa.bindparam("citizen_id"))
_INSERT = sa.insert(LogoutDelivery.__table__).returning(LogoutDelivery.__table__.c.id, sort_by_parameter_order=True)


def insert_oidc_deliveries(
    db: Any, *, sid: str, citizen_id: str, client_ids: list[str], reason: str, now: dt.datetime, salt: bytes
) -> list[int]:
    """One pending row per client of ``client_ids`` with a back-channel URI, in ``db``'s transaction.

    Core statements on the session's connection (one multi-row ``INSERT … RETURNING``):
    the rows are the ones the ORM wrote, without building fifty entities to flush.
    ``sub``: the subject as each client knows the citizen, ``None`` when the citizen is gone.
    """
    conn = db.connection()
    clients = [c for c in conn.execute(_TOLD, {"client_ids": client_ids}) if c.backchannel_logout_uri]
    if not clients:
        return []
    try:
        public_id = conn.execute(_PUBLIC_ID, {"citizen_id": int(citizen_id)}).scalar()
    except (TypeError, ValueError):
        public_id = None
    rows = [
        {
            "sid": sid,
            "client_id": c.client_id,
            "sub": None if public_id is None else subject_for(
                subject_type=c.subject_type,
                sector=sector_of(c.sector_identifier, c.redirect_uris, c.client_id),
                public_id=public_id,
                salt=salt,
            ),
            "uri": c.backchannel_logout_uri,
            "status": "pending",
            "attempts": 0,
            "last_error": None,
            "reason": reason,
            "created_at": now,
            "next_attempt_at": now,
            "delivered_at": None,
        }
        for c in clients
    ]
    return [r[0] for r in conn.execute(_INSERT, rows)]


def retry_delay_ms(attempts: int, *, min_ms: int, max_ms: int) -> int:
    """The wait before the next attempt once ``attempts`` attempts were made (exponential, capped)."""
    return int(min(max_ms, min_ms * 2 ** min(attempts - 1, 30)))


class DeliveryRows:
    """The two statements of an attempt on ``database`` (an :class:`idp.db.Database`)."""

    def __init__(self, database: Any) -> None:
        self._db = database
        self._direct: dict[int, Direct] | None = None
        if database.dialect == "postgresql":
            engine = database.engine
            self._direct = {id(s): Direct(s, engine) for s in (_ATTEMPT, _DELIVERED, _FAILED, _RETRY)}

    def _run(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        if self._direct is not None:
            return self._direct[id(statement)].rows(self._db.engine, params)[1]
        return self._db.all_rows(statement, params)

    def read(self, delivery_id: int) -> Attempt | None:
        """The row of ``delivery_id`` and its client, or ``None`` when there is no such row."""
        found = self._run(_ATTEMPT, {"delivery_id": delivery_id})
        if not found:
            return None
        row = Attempt(*found[0])
        # As the column type reads it on every path: aware UTC (psycopg gives the session's zone).
        return row._replace(created_at=_WHEN.process_result_value(row.created_at, self._db.engine.dialect))

    def settle(
        self,
        delivery_id: int,
        result: Literal["delivered", "failed", "retry"],
        *,
        now: dt.datetime,
        error: str | None = None,
        next_attempt_at: dt.datetime | None = None,
    ) -> bool:
        """Count the attempt and settle the row (or set its next attempt); ``False`` when it was not pending."""
        if result == "delivered":
            statement, params = _DELIVERED, {"delivery_id": delivery_id, "now": now}
        elif result == "failed":
            statement, params = _FAILED, {"delivery_id": delivery_id, "error": (error or "")[:500]}
        else:
            statement, params = _RETRY, {
                "delivery_id": delivery_id, "error": (error or "")[:500], "next_attempt_at": next_attempt_at,
            }
        if self._direct is not None:
            dialect = self._db.engine.dialect
            params = {k: _WHEN.process_bind_param(v, dialect) if isinstance(v, dt.datetime) else v
                      for k, v in params.items()}
        return bool(self._run(statement, params))
