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

import atexit
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .db import Database
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


_HASHED = ("seq", "at", "kind", "actor", "subject", "client_id", "ip", "detail", "prev_hash")


def _digest(fields: Mapping[str, Any]) -> str:
    body = {name: fields[name] for name in _HASHED}
    body["at"] = _at_text(body["at"])
    return hashlib.sha256(_canonical(body)).hexdigest()


def record_hash(event: AuditEvent) -> str:
    """SHA-256 hex over the canonical JSON of ``event`` (without its own hash)."""
    return _digest({name: getattr(event, name) for name in _HASHED})


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


@dataclass(frozen=True)
class _Pending:
    """A checked record waiting for its place in the chain."""

    at: dt.datetime
    kind: str
    actor: str | None
    subject: str | None
    client_id: str | None
    ip: str | None
    detail: dict[str, Any]


class AuditLog:
    """Writes and verifies the audit chain.

    With ``background=True`` (the web process) records written outside a
    caller's transaction are queued and appended by one writer thread in
    batches: a commit costs milliseconds of disk sync on PostgreSQL, and one
    per token grant would cap the token endpoint at a few hundred requests a
    second, while one per batch costs nothing noticeable. The queue is
    drained at exit and by :meth:`flush`; records written with ``session``
    (admin actions, together with the change they describe) are always
    synchronous.
    """

    def __init__(
        self,
        db: Database,
        *,
        background: bool = False,
        batch_max: int = 500,
        queue_max: int = 50_000,
        linger_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.background = background
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.linger_seconds = linger_seconds
        """How long the writer waits for more records after the first of a batch.

        Without it every token grant under moderate load was a batch of one:
        five SQL round trips and the ORM's work per record, on a thread that
        competes for the GIL with the request threads (profiled: the writer
        took a fifth of the worker's CPU during SSO sign-ins). Records still
        reach the database within about this delay.
        """
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Pending | None] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        if background:
            atexit.register(self.close)

    def __repr__(self) -> str:
        return f"AuditLog(background={self.background})"

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
    ) -> AuditEvent | None:
        """Append one record.

        With ``session`` the record joins that transaction (and commits or
        rolls back with the change it describes). Otherwise it is written in
        a transaction of its own — at once, or by the background writer (then
        ``None`` is returned). ``subject`` is a masked ID number or a client
        id, never anything secret; :class:`ValueError` if it looks otherwise.
        """
        if not _KIND.match(kind):
            raise ValueError(f"audit kind {kind!r} is not of the form area.event")
        detail = dict(detail or {})
        _check_clean(detail, "detail")
        for name, value, limit in (
            ("actor", actor, 200),
            ("subject", subject, 200),
            ("client_id", client_id, 64),
            ("ip", ip, 64),
        ):
            _check_clean(value, name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise ValueError(f"audit field {name} must be text of at most {limit} characters")
        pending = _Pending(utcnow(), kind, actor, subject, client_id, ip, detail)
        if session is not None:
            return AuditEvent(**self._append(session, [pending])[0])
        if self.background:
            self._enqueue(pending)
            return None
        with self.db.session() as s:
            return AuditEvent(**self._append(s, [pending])[0])

    # ------------------------------------------------------ background writer

    def _enqueue(self, pending: _Pending) -> None:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                # first use, or first use in a forked worker: the parent's
                # thread did not survive the fork
                self._queue = queue.Queue(self.queue_max)
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="audit-writer", daemon=True
                )
                self._thread.start()
            q = self._queue
        assert q is not None
        q.put(pending)  # blocks when the database has been away for long: back-pressure

    def _run(self, q: queue.Queue[_Pending | None]) -> None:
        delay = 0.1
        while True:
            first = q.get()
            if first is None:
                q.task_done()
                return
            batch = [first]
            stop = False
            until = time.monotonic() + self.linger_seconds
            while len(batch) < self.batch_max:
                try:
                    wait = until - time.monotonic()
                    item = q.get(timeout=wait) if wait > 0 else q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            while True:
                try:
                    with self.db.session() as s:
                        self._append(s, batch)
                    delay = 0.1
                    break
                except (sa.exc.OperationalError, sa.exc.InterfaceError):
                    # the database is away: keep the records, try again later
                    logger.warning("audit writer: database unavailable, %d records waiting", len(batch))
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
                except Exception:
                    # a record the database refuses must not block the others
                    logger.exception("audit writer: batch refused, writing one by one")
                    self._write_singly(batch)
                    break
            for _ in range(len(batch) + (1 if stop else 0)):
                q.task_done()
            if stop:
                return

    def _write_singly(self, batch: list[_Pending]) -> None:
        for p in batch:
            try:
                with self.db.session() as s:
                    self._append(s, [p])
            except Exception:
                logger.error("audit writer: dropped an unwritable %s record", p.kind, exc_info=True)

    def flush(self) -> None:
        """Wait until every queued record is in the database."""
        with self._lock:
            q = self._queue if self._pid == os.getpid() else None
        if q is not None:
            q.join()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        with self._lock:
            q, thread = (self._queue, self._thread) if self._pid == os.getpid() else (None, None)
            self._queue = self._thread = None
        if q is not None and thread is not None and thread.is_alive():
            q.put(None)
            thread.join(timeout=30)

    # ---------------------------------------------------------------- append

    def _append(self, s: Session, batch: list[_Pending]) -> list[dict[str, Any]]:
        n = len(batch)
        # One UPDATE … RETURNING reserves the batch's seqs and reads the head:
        # it takes the row lock (PostgreSQL) or the write lock (SQLite) first,
        # so the head we chain onto cannot change under us.
        bump = (
            sa.update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + n)
            .returning(AuditHead.seq, AuditHead.hash)
        )
        got = s.execute(bump).one_or_none()
        if got is None:
            self._create_head(s)
            got = s.execute(bump).one()
        head_seq, head_hash = int(got[0]), str(got[1])
        prev = head_hash
        rows: list[dict[str, Any]] = []
        for i, p in enumerate(batch):
            row: dict[str, Any] = {
                "seq": head_seq - n + 1 + i,
                "at": p.at,
                "kind": p.kind,
                "actor": p.actor,
                "subject": p.subject,
                "client_id": p.client_id,
                "ip": p.ip,
                "detail": p.detail,
                "prev_hash": prev,
            }
            row["hash"] = prev = _digest(row)
            rows.append(row)
        # Core-speed bulk insert (the Table, not the mapped class, so the ORM's
        # bulk-persistence layer stays out): the background writer appends hundreds at once.
        table: sa.Table = AuditEvent.__table__  # type: ignore[assignment]
        s.execute(sa.insert(table), rows)
        s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(hash=prev))
        if n == 1:
            logger.info("audit %s seq=%d client=%s", batch[0].kind, rows[0]["seq"], batch[0].client_id or "-")
        else:
            logger.info("audit %d records seq=%d..%d", n, rows[0]["seq"], rows[-1]["seq"])
        return rows

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

    def _walk(self, s: Session, upto: int, batch: int = 1000) -> Iterator[AuditEvent]:
        last = 0
        while True:
            rows = s.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.seq > last, AuditEvent.seq <= upto)
                .order_by(AuditEvent.seq)
                .limit(batch)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            s.expunge_all()

    def verify(self) -> ChainReport:
        """Walk the chain up to the head; report the first record that does not fit.

        The head is read first and the walk stops at its ``seq``, so records
        appended while verifying (by a running idp) are left for next time.
        """
        with self.db.session() as s:
            head = s.get(AuditHead, 1)
            head_seq = head.seq if head else 0
            head_hash = head.hash if head else GENESIS_HASH
            expected_seq = 1
            prev = GENESIS_HASH
            count = 0
            for event in self._walk(s, head_seq):
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
            if head_seq > count:
                return ChainReport(count, count + 1, f"record {count + 1} is missing")
            if head_hash != prev:
                # the head disagrees with an intact chain: the head itself (or
                # the last record together with its hash) was rewritten
                return ChainReport(count, count, "the chain head does not match the last record")
        return ChainReport(count)
