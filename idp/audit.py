"""The append-only, hash-chained audit log (issue 3 §8).

Each record carries ``prev_hash``, the hash of the record before it, and its
own ``hash`` = SHA-256 over a canonical JSON of its fields and ``prev_hash``.
Editing a record breaks its own hash; deleting one leaves a gap in ``seq`` (and
a ``prev_hash`` that no longer matches); cutting off the tail disagrees with
the ``audit_head`` row. :meth:`AuditLog.verify` walks the chain and names the
first broken record.

Appends are serialised on the one ``audit_head`` row: on PostgreSQL the first
statement of :meth:`AuditLog.record` is an ``UPDATE`` of that row, which takes
its row lock until commit, so two instances cannot both extend the same
head and fork the chain; on SQLite the same ``UPDATE`` takes the database's
write lock.

Nothing secret goes in: the caller passes masked ID numbers and client ids,
and :meth:`AuditLog.record` refuses detail keys that name secrets, and any
value that looks like a full resident ID number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .db import Database, rowcount
from .models import AuditEvent, AuditHead, utcnow

__all__ = ["AuditLog", "ChainReport", "GENESIS_HASH", "record_hash", "KINDS"]

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record."""

KINDS = frozenset(
    {
        "login.success",
        "login.failure",
        "login.locked",
        "login.totp_failure",
        "login.totp_success",
        "consent.granted",
        "consent.revoked",
        "token.issued",
        "token.refreshed",
        "token.revoked",
        "token.reuse_detected",
        "code.replayed",
        "session.ended",
        "logout.delivery_failed",
        "account.created",
        "account.imported",
        "account.password_set",
        "account.totp_enrolled",
        "account.totp_removed",
        "account.disabled",
        "admin.client_added",
        "admin.client_secret_rotated",
        "admin.client_deleted",
        "admin.sessions_ended",
        "admin.key_rotated",
    }
)
"""The kinds in use. Others are accepted if they look like ``area.event``."""

_KIND = re.compile(r"^[a-z_]+\.[a-z_.]+$")
_FORBIDDEN_KEYS = re.compile(
    r"(secret|password|passwd|token|code|otp|pin|cookie|id_number)$", re.IGNORECASE
)
_ALLOWED_KEYS = frozenset({"token_kind", "error_code", "status_code", "reason_code"})
_FULL_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _at_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def record_hash(event: AuditEvent) -> str:
    """SHA-256 hex over the canonical JSON of ``event`` (without its own hash)."""
    body = {
        "seq": event.seq,
        "at": _at_text(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "subject": event.subject,
        "client_id": event.client_id,
        "ip": event.ip,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


def _check_clean(value: Any, path: str) -> None:
    """Refuse detail that could carry a secret or an unmasked ID number."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"audit detail keys must be text ({path})")
            if _FORBIDDEN_KEYS.search(k) and k not in _ALLOWED_KEYS:
                raise ValueError(f"audit detail may not carry {k!r}")
            _check_clean(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_clean(v, f"{path}[{i}]")
    elif isinstance(value, str):
        if _FULL_ID_NUMBER.search(value):
            raise ValueError(f"audit field {path} looks like an unmasked ID number")
    elif isinstance(value, float):
        raise ValueError(f"audit detail {path}: use whole numbers or text, not floats")
    elif value is not None and not isinstance(value, bool | int):
        raise ValueError(f"audit detail {path} is not JSON text, number, list or object")


@dataclass(frozen=True)
class ChainReport:
    """What :meth:`AuditLog.verify` found."""

    records: int
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_seq is None


class AuditLog:
    """Writes and verifies the audit chain."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        kind: str,
        *,
        actor: str | None = None,
        subject: str | None = None,
        client_id: str | None = None,
        ip: str | None = None,
        detail: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> AuditEvent:
        """Append one record.

        With ``session`` the record joins that transaction (and commits or
        rolls back with the change it describes); otherwise it is written in
        a transaction of its own. ``subject`` is a masked ID number or a
        client id, never anything secret.
        """
        if not _KIND.match(kind):
            raise ValueError(f"audit kind {kind!r} is not of the form area.event")
        detail = dict(detail or {})
        _check_clean(detail, "detail")
        for name, value in (("actor", actor), ("subject", subject), ("client_id", client_id), ("ip", ip)):
            _check_clean(value, name)
        if session is not None:
            return self._append(session, kind, actor, subject, client_id, ip, detail)
        with self.db.session() as s:
            return self._append(s, kind, actor, subject, client_id, ip, detail)

    def _append(
        self,
        s: Session,
        kind: str,
        actor: str | None,
        subject: str | None,
        client_id: str | None,
        ip: str | None,
        detail: dict[str, Any],
    ) -> AuditEvent:
        # The UPDATE comes first: it takes the row lock (PostgreSQL) or the
        # write lock (SQLite) before the head is read, so the head we chain
        # onto cannot change under us.
        bumped = rowcount(
            s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
        )
        if not bumped:
            self._create_head(s)
            s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
        head = s.execute(
            sa.select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
        s.refresh(head)
        event = AuditEvent(
            seq=head.seq,
            at=utcnow(),
            kind=kind,
            actor=actor,
            subject=subject,
            client_id=client_id,
            ip=ip,
            detail=detail,
            prev_hash=head.hash,
        )
        event.hash = record_hash(event)
        head.hash = event.hash
        s.add(event)
        s.flush()
        logger.info("audit %s seq=%d client=%s", kind, event.seq, client_id or "-")
        return event

    @staticmethod
    def _create_head(s: Session) -> None:
        """Insert the head row if it is missing.

        The migration (and ``create_all``) already insert it, so this only
        runs on a database whose head row was deleted; ``verify`` reports
        that as tampering all the same.
        """
        logger.warning("audit head row missing; recreating it")
        s.execute(sa.insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))

    # ---------------------------------------------------------------- reading

    def tail(self, n: int = 20) -> list[AuditEvent]:
        """The last ``n`` records, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(n)).all()
        return list(reversed(rows))

    def _walk(self, s: Session, batch: int = 1000) -> Iterator[AuditEvent]:
        last = 0
        while True:
            rows = s.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(batch)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            s.expunge_all()

    def verify(self) -> ChainReport:
        """Walk the whole chain; report the first record that does not fit."""
        with self.db.session() as s:
            head = s.get(AuditHead, 1)
            expected_seq = 1
            prev = GENESIS_HASH
            count = 0
            for event in self._walk(s):
                if event.seq != expected_seq:
                    return ChainReport(count, expected_seq, f"record {expected_seq} is missing")
                if event.prev_hash != prev:
                    return ChainReport(
                        count, event.seq, f"record {event.seq} does not follow the one before"
                    )
                if record_hash(event) != event.hash:
                    return ChainReport(count, event.seq, f"record {event.seq} was altered")
                prev = event.hash
                expected_seq += 1
                count += 1
            head_seq = head.seq if head else 0
            head_hash = head.hash if head else GENESIS_HASH
            if head_seq != count:
                if head_seq > count:
                    return ChainReport(count, count + 1, f"record {count + 1} is missing")
                return ChainReport(count, head_seq + 1, "the chain head was altered")
            if head_hash != prev:
                return ChainReport(count, count or None, f"record {count} was altered")
        return ChainReport(count)
