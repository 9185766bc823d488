"""Issuance's SQL: serials, status-list positions, the certificate row, idempotency replay.

Serials come from a per-issuer-and-type counter bumped with one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in its own short transaction:
concurrency-safe on PostgreSQL (the row lock serialises bumps) and SQLite. A
request that fails after allocation leaves a gap in the serials; a gap is
harmless, reusing a serial would not be. On PostgreSQL the bump and the
draw of a free status-list position are one statement, and the certificate,
its status-list slot, its audit event and idempotency record another
(data-modifying CTEs, each its own atomic transaction in autocommit mode):
two round trips per certificate instead of seventeen (docs/design.md: a round
trip on the hot path is a visible share).

The status-list slot is taken in the certificate's transaction, on
PostgreSQL and SQLite alike (:func:`certstore.statuslists.take`): a request
that fails before the certificate is stored leaves no slot behind (issue 20
§3). The drawn position is only checked free at the draw; if another
certificate took it since, the store raises
:class:`~certstore.statuslists.SlotTaken` and stores nothing.

``Idempotency-Key``: the key and the keyed fingerprint of the normalised
request (:func:`certstore.issue_request.prepare`) are stored with the
certificate. The same key with the same request returns the stored
certificate; with a different request it is a conflict.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .db import autocommit, session_scope
from .errors import Conflict, Forbidden, InvalidInput
from .issue_request import IssueResult
from .lifecycle import Action, transition
from .models import (
    AuditEvent,
    Certificate,
    IdempotencyRecord,
    SerialCounter,
    StatusListRow,
    StatusSlot,
)
from .reading import CertificateReader
from .status_changes import LifecycleService
from .statuslists import FILL_LIMIT, Slot, SlotTaken, take

__all__ = ["IssueStore"]


class IssueStore:
    """Where a newly issued certificate's numbers come from and where it is written."""

    def __init__(
        self, sessions: sessionmaker[Session], *, reader: CertificateReader, lifecycle: LifecycleService
    ) -> None:
        self.sessions = sessions
        self.reader = reader
        self.lifecycle = lifecycle
        self.postgresql = sessions.kw["bind"].dialect.name == "postgresql"

    def allocate_serial(self, uscc: str, type_code: str) -> int:
        """The next serial of ``(uscc, type_code)``, in its own short transaction.

        On PostgreSQL that transaction commits without waiting for the WAL
        flush (``synchronous_commit`` off for it alone): the flush (~3 ms,
        a third of the database time per issue) buys nothing here, because
        the serial only matters once the certificate row that uses it is
        committed, and that commit is synchronous and flushes the WAL up to
        and including this increment. After a crash in between, the counter
        may give the same serial again, but no stored certificate has it.
        """
        with session_scope(self.sessions) as s:
            dialect = s.get_bind().dialect.name
            if dialect == "postgresql":
                s.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = (
                insert(SerialCounter)
                .values(issuer_uscc=uscc, type_code=type_code, last=1)
                .on_conflict_do_update(
                    index_elements=["issuer_uscc", "type_code"], set_={"last": SerialCounter.last + 1}
                )
                .returning(SerialCounter.last)
            )
            return int(s.execute(stmt).scalar_one())

    def allocate_pg(self, uscc: str, type_code: str) -> tuple[int, Slot | None]:
        """:meth:`allocate_serial` and :meth:`StatusListService.draw` in one PostgreSQL statement.

        Sent in autocommit mode, it is one round trip instead of twelve
        (two transactions, each with its pre-ping, ``BEGIN``, ``SET LOCAL``
        and ``COMMIT``); like them it commits without waiting for the WAL
        flush (``set_config(..., true)`` for its own transaction), for the
        reason given at :meth:`allocate_serial`. The status-list position
        is drawn as there (``secrets``; the modulo bias of a 62-bit draw is
        below 2⁻⁴⁴) and only checked free: :meth:`store_pg` takes it. When
        the issuer has no open list yet, or the drawn position is taken, the
        slot comes back empty and :meth:`StatusListService.draw` draws it
        (the serial stays).
        """
        params = {"uscc": uscc, "type_code": type_code, "fill": FILL_LIMIT, "draw": secrets.randbits(62)}
        with autocommit(self.sessions) as conn:
            serial, list_id, index, _ = conn.execute(_ALLOCATE_PG, params).one()
        slot = Slot(str(list_id), int(index)) if list_id is not None else None
        return int(serial), slot

    def superseded(self, identifier: str, agency_uscc: str, type_code: str, *, now: dt.datetime) -> tuple[str, int, int]:
        """``(old identifier, serial, next version)`` for a new version of ``identifier``."""
        with self.sessions() as s:
            old = self.reader.find(s, identifier)
            if old.issuer_uscc != agency_uscc:
                raise Forbidden("only the issuing agency may issue a new version", field="supersedes")
            if old.type_code != type_code:
                raise InvalidInput("a new version keeps the certificate type", field="type")
            # Refuse early (before any signing) what the state machine would refuse at commit.
            transition(old.status, Action.SUPERSEDE, identifier=old.identifier, reason="new version",
                       actor=agency_uscc, at=now, superseded_by=old.identifier)
            return old.identifier, int(old.serial), old.version + 1

    def store(
        self,
        row: Certificate,
        audit: dict[str, Any],
        key: str | None,
        fingerprint: str | None,
        *,
        slot: Slot,
        old_id: str | None,
        actor: str,
        at: dt.datetime,
    ) -> None:
        """Certificate, its status-list slot, idempotency record and audit event in one transaction
        (ORM, any database); :class:`SlotTaken` if the slot went to another certificate."""
        with session_scope(self.sessions) as s:
            take(s, slot, at=audit["at"])
            if old_id is not None:
                row.supersedes = old_id
                self.lifecycle.supersede(s, old_id, row.identifier, actor=actor, at=at)
            s.add(row)
            if key is not None:
                s.flush()
                s.add(
                    IdempotencyRecord(
                        issuer_uscc=row.issuer_uscc,
                        key=key,
                        request_sha256=fingerprint or "",
                        certificate_id=row.id,
                    )
                )
            s.add(AuditEvent(**audit))

    def store_pg(
        self, values: dict[str, Any], audit: dict[str, Any], key: str | None, fingerprint: str | None, *, slot: Slot
    ) -> None:
        """:meth:`store` on PostgreSQL: one ``INSERT`` statement with the status-list slot, the audit
        event (and idempotency record) as data-modifying CTEs, sent in autocommit mode.

        One statement is atomic by itself, so this is still one transaction,
        committed synchronously; it spares the ``BEGIN``, the second
        ``INSERT`` and the ``COMMIT`` round trips, and the ORM's unit of work.
        A slot another certificate took since the draw violates the slots'
        primary key: nothing is stored and :class:`SlotTaken` is raised.
        """
        params = {f"c_{col.name}": values.get(col.name) for col in Certificate.__table__.c if col.name != "id"}
        params.update({f"a_{k}": v for k, v in audit.items()})
        params.update(s_list_id=int(slot.list_id), s_idx=slot.index, s_created_at=audit["at"])
        if key is not None:
            params.update(i_issuer_uscc=values["issuer_uscc"], i_key=key, i_request_sha256=fingerprint or "",
                          i_created_at=audit["at"])
        try:
            with autocommit(self.sessions) as conn:
                conn.execute(_store_statement(key is not None), params)
        except IntegrityError as e:
            if getattr(getattr(e.orig, "diag", None), "table_name", None) == StatusSlot.__tablename__:
                raise SlotTaken(f"position {slot.index} of list {slot.list_id}") from None
            raise

    def replay(self, uscc: str, key: str, fingerprint: str | None) -> IssueResult | None:
        """The certificate an earlier request with this ``Idempotency-Key`` made, if any."""
        with self.sessions() as s:
            rec = s.get(IdempotencyRecord, (uscc, key))
            if rec is None:
                return None
            if fingerprint is None or not hmac.compare_digest(rec.request_sha256.encode(), fingerprint.encode()):
                raise Conflict(
                    "this Idempotency-Key was already used with a different request",
                    field="Idempotency-Key",
                    code="idempotency_conflict",
                )
            row = s.get(Certificate, rec.certificate_id)
            assert row is not None
            return IssueResult(self.reader.view(row), replayed=True)


_ALLOCATE_PG = sa.text(
    """
WITH serial AS (
    INSERT INTO cert_serials AS c (issuer_uscc, type_code, last) VALUES (:uscc, :type_code, 1)
    ON CONFLICT (issuer_uscc, type_code) DO UPDATE SET last = c.last + 1
    RETURNING c.last
), open_list AS (
    SELECT id, size FROM cert_status_lists
    WHERE issuer_uscc = :uscc AND used < size * CAST(:fill AS double precision)
    ORDER BY id LIMIT 1
), free AS (
    SELECT id AS list_id, mod(CAST(:draw AS bigint), size) AS idx FROM open_list o
    WHERE NOT EXISTS (
        SELECT 1 FROM cert_status_slots t WHERE t.list_id = o.id AND t.idx = mod(CAST(:draw AS bigint), o.size)
    )
)
SELECT (SELECT last FROM serial), (SELECT list_id FROM free), (SELECT idx FROM free),
       set_config('synchronous_commit', 'off', true)
"""
)
"""Serial counter bump and a free status-list position in one statement (:meth:`IssueStore.allocate_pg`)."""


@functools.cache
def _store_statement(with_idempotency: bool) -> sa.Select[Any]:
    """``INSERT`` of a certificate with its status-list slot, audit event (and idempotency record) as CTEs.

    Built once per shape, with named bind parameters (``c_``, ``a_``, ``i_``
    plus the column name), so SQLAlchemy and psycopg reuse the compiled and
    prepared statement.
    """
    cert = cast(sa.Table, Certificate.__table__)
    audit = cast(sa.Table, AuditEvent.__table__)
    c = (
        sa.insert(cert)
        .values({col.name: sa.bindparam(f"c_{col.name}", type_=col.type) for col in cert.c if col.name != "id"})
        .returning(cert.c.id)
        .cte("new_certificate")
    )
    a = (
        sa.insert(audit)
        .values({col.name: sa.bindparam(f"a_{col.name}", type_=col.type) for col in audit.c if col.name != "id"})
        .cte("new_audit")
    )
    slots = cast(sa.Table, StatusSlot.__table__)
    lists = cast(sa.Table, StatusListRow.__table__)
    list_id = sa.bindparam("s_list_id", type_=slots.c.list_id.type)
    # No ON CONFLICT: a slot taken since the draw fails the whole statement (SlotTaken).
    slot = sa.insert(slots).values(
        list_id=list_id,
        idx=sa.bindparam("s_idx", type_=slots.c.idx.type),
        created_at=sa.bindparam("s_created_at", type_=slots.c.created_at.type),
    ).cte("new_slot")
    used = sa.update(lists).where(lists.c.id == list_id).values(used=lists.c.used + 1).cte("slot_used")
    stmt = sa.select(c.c.id).add_cte(a).add_cte(slot).add_cte(used)
    if with_idempotency:
        idem = cast(sa.Table, IdempotencyRecord.__table__)
        i = (
            sa.insert(idem)
            .from_select(
                ["issuer_uscc", "key", "request_sha256", "created_at", "certificate_id"],
                sa.select(
                    sa.bindparam("i_issuer_uscc", type_=idem.c.issuer_uscc.type),
                    sa.bindparam("i_key", type_=idem.c.key.type),
                    sa.bindparam("i_request_sha256", type_=idem.c.request_sha256.type),
                    sa.bindparam("i_created_at", type_=idem.c.created_at.type),
                    c.c.id,
                ),
            )
            .cte("new_idempotency")
        )
        stmt = stmt.add_cte(i)
    return stmt
