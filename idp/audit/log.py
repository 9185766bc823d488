"""The audit log: appending records to the keyed chain, its keys, and when to anchor.

Owns :class:`AuditLog`, the one object the rest of idp holds: it checks a
record (:mod:`.records`), appends it to the chain in the caller's transaction,
in one of its own, or through the background writer (:mod:`.writer`; on PostgreSQL its
batches go straight to psycopg, :mod:`.direct`), keys it
with the active ``idp-audit`` MAC key, and anchors the head in the signed
anchor file (:mod:`.anchors`) every :data:`~.anchors.ANCHOR_EVERY_RECORDS`
records or :data:`~.anchors.ANCHOR_EVERY_SECONDS` seconds. Reading and
verifying come from :class:`~.verify.ChainReader`.

Appends are serialised on the one ``audit_head`` row: on PostgreSQL the first
statement of an append is an ``UPDATE`` of that row, which takes its row lock
until commit, so two instances cannot both extend the same head and fork the
chain; on SQLite the same ``UPDATE`` takes the database's write lock.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.errors import KeyNotFound
from keys.mac import MacKey, ephemeral_key

from ..db import Database
from ..metrics import on_audit_event
from ..models import AuditEvent, AuditHead
from .anchors import (
    ANCHOR_EVERY_RECORDS,
    ANCHOR_EVERY_SECONDS,
    ANCHOR_PURPOSE,
    AnchorFile,
    Checkpoint,
)
from .direct import DirectAppend, HeadMissing
from .records import GENESIS_HASH, MAC_PURPOSE, Pending, checked, mac_input
from .verify import ChainReader
from .writer import BatchWriter

if TYPE_CHECKING:
    from keys.keyring import Keyring

__all__ = ["AuditLog"]

logger = logging.getLogger(__name__)

_HEAD: sa.Table = AuditHead.__table__  # type: ignore[assignment]
_EVENTS: sa.Table = AuditEvent.__table__  # type: ignore[assignment]
# The append's statements, built once on the tables (not the mapped classes) and run
# on the session's connection: built per batch through the ORM they cost more than a
# millisecond of the writer's CPU per batch, which the request threads then lacked
# (profiled: the ORM's bulk-update path, statement building and cache keys; issue 16).
_BUMP = (
    sa.update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + sa.bindparam("n", type_=sa.BigInteger()))
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HEAD = sa.update(_HEAD).where(_HEAD.c.id == 1).values(hash=sa.bindparam("new_hash", type_=sa.String()))
_INSERT = sa.insert(_EVENTS)

# One throw-away key per process for an AuditLog built without a key ring
# (tests of other areas): every instance in the process agrees on it, and
# nothing it keys verifies anywhere else, which verify reports.
_EPHEMERAL = ephemeral_key()


class AuditLog(ChainReader):
    """Writes and verifies the audit chain.

    With ``background=True`` (the web process) records written outside a
    caller's transaction are queued and appended by one writer thread in
    batches (:class:`~.writer.BatchWriter`). The queue is drained at exit and
    by :meth:`flush`; records written with ``session`` (admin actions,
    together with the change they describe) are always synchronous.
    """

    def __init__(
        self,
        db: Database,
        *,
        keyring: Keyring | None = None,
        anchor_path: Path | None = None,
        anchor_every: int = ANCHOR_EVERY_RECORDS,
        anchor_seconds: float = ANCHOR_EVERY_SECONDS,
        background: bool = False,
        batch_max: int = 500,
        queue_max: int = 50_000,
        linger_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.keyring = keyring
        if keyring is None:
            logger.debug("audit log without a key ring: records are keyed with a throw-away key")
        self.anchor: AnchorFile | None = (
            AnchorFile(anchor_path, keyring.keyset(ANCHOR_PURPOSE, algorithm="ES256"))
            if keyring is not None and anchor_path is not None
            else None
        )
        self.anchor_every = anchor_every
        self.anchor_seconds = anchor_seconds
        self._anchor_lock = threading.Lock()
        self._unanchored = 0
        self._anchored_at: float | None = None
        """When this process last anchored; ``None``: its first commit anchors at once."""
        self.background = background
        self.writer: BatchWriter | None = None
        self._direct: DirectAppend | None = None
        if background:
            if db.dialect == "postgresql":
                self._direct = DirectAppend(db.engine, _BUMP, _SET_HEAD, _EVENTS, self._chain)
            self.writer = BatchWriter(
                db, self._append, self._committed, write=self._write_batch,
                batch_max=batch_max, queue_max=queue_max, linger_seconds=linger_seconds,
            )
            atexit.register(self.close)

    def __repr__(self) -> str:
        return f"AuditLog(background={self.background})"

    # ------------------------------------------------------------------ keys

    def _active_key(self) -> MacKey:
        if self.keyring is None:
            return _EPHEMERAL
        return self.keyring.mac_keyset(MAC_PURPOSE).active()

    def mac_key(self, kid: str) -> MacKey | None:
        """The MAC key ``kid`` (retired ones included), or ``None`` if this idp does not hold it."""
        if kid == _EPHEMERAL.kid:
            return _EPHEMERAL
        if self.keyring is None:
            return None
        try:
            return self.keyring.mac_keyset(MAC_PURPOSE).get(kid)
        except KeyNotFound:
            return None

    def rotate_key(self) -> str:
        """Start keying new records with a new MAC key; the old one stays for verification. Returns its id."""
        if self.keyring is None:
            raise RuntimeError("the audit log has no key ring")
        return self.keyring.mac_keyset(MAC_PURPOSE).rotate().kid

    # ---------------------------------------------------------------- record

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
        pending = checked(kind, actor=actor, subject=subject, client_id=client_id, ip=ip, detail=detail)
        on_audit_event(kind, subject=subject, client_id=client_id, ip=ip)  # sign-in metrics and log lines
        if session is not None:
            row = self._append(session, [pending])[0]
            if self.anchor is not None:
                # Anchored only once the caller's transaction commits: it may still roll back.
                seq, mac = row["seq"], row["hash"]
                sa.event.listen(session, "after_commit", lambda _s: self._committed(1, seq, mac), once=True)
            return AuditEvent(**row)
        if self.writer is not None:
            self.writer.put(pending)
            return None
        with self.db.session() as s:
            row = self._append(s, [pending])[0]
        self._committed(1, row["seq"], row["hash"])
        return AuditEvent(**row)

    def flush(self) -> None:
        """Wait until every queued record is in the database."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        if self.writer is not None:
            self.writer.close()

    def _append(self, s: Session, batch: list[Pending]) -> list[dict[str, Any]]:
        n = len(batch)
        conn = s.connection()
        # One UPDATE … RETURNING reserves the batch's seqs and reads the head:
        # it takes the row lock (PostgreSQL) or the write lock (SQLite) first,
        # so the head we chain onto cannot change under us.
        got = conn.execute(_BUMP, {"n": n}).one_or_none()
        if got is None:
            self._create_head(s)
            got = conn.execute(_BUMP, {"n": n}).one()
        rows = self._chain(batch, int(got[0]), str(got[1]))
        # Core-speed bulk insert (the Table, not the mapped class, so the ORM's
        # bulk-persistence layer stays out): the background writer appends hundreds at once.
        conn.execute(_INSERT, rows)
        conn.execute(_SET_HEAD, {"new_hash": rows[-1]["hash"]})
        self._log_appended(batch, rows)
        return rows

    def _chain(self, batch: list[Pending], head_seq: int, head_hash: str) -> list[dict[str, Any]]:
        """The batch's rows, keyed and chained onto the head (``head_seq`` already counts the batch)."""
        n = len(batch)
        prev = head_hash
        key = self._active_key()
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
                "key_id": key.kid,
            }
            # One HMAC per record (about a microsecond): the writer stays fast on the login path.
            row["hash"] = prev = key.digest(mac_input(row, key.kid))
            rows.append(row)
        return rows

    @staticmethod
    def _log_appended(batch: list[Pending], rows: list[dict[str, Any]]) -> None:
        if len(batch) == 1:
            logger.info("audit %s seq=%d client=%s", batch[0].kind, rows[0]["seq"], batch[0].client_id or "-")
        else:
            logger.info("audit %d records seq=%d..%d", len(batch), rows[0]["seq"], rows[-1]["seq"])

    def _write_batch(self, batch: list[Pending]) -> list[dict[str, Any]]:
        """The background writer's append, in a transaction of its own (straight on psycopg on PostgreSQL)."""
        if self._direct is not None:
            try:
                rows = self._direct.write(batch)
            except HeadMissing:
                pass  # the Core path below recreates the head row, and says so
            else:
                self._log_appended(batch, rows)
                return rows
        with self.db.session() as s:
            return self._append(s, batch)

    @staticmethod
    def _create_head(s: Session) -> None:
        """Insert the head row if it is missing.

        The migration (and ``create_all``) already insert it, so this only
        runs on a database whose head row was deleted; ``verify`` reports
        that as tampering all the same.
        """
        logger.warning("audit head row missing; recreating it")
        s.execute(sa.insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))

    # ---------------------------------------------------------------- anchors

    def _committed(self, n: int, seq: int, mac: str) -> None:
        """After a commit: anchor the head every ``anchor_every`` records or ``anchor_seconds``."""
        if self.anchor is None:
            return
        with self._anchor_lock:
            self._unanchored += n
            now = time.monotonic()
            if (
                self._anchored_at is not None
                and self._unanchored < self.anchor_every
                and now - self._anchored_at < self.anchor_seconds
            ):
                return
            try:
                self.anchor.write(seq, mac)
            except Exception:
                # The records are safe in the database; the next commit tries again.
                logger.exception("audit: could not write a checkpoint to %s", self.anchor.path)
                return
            self._unanchored = 0
            self._anchored_at = now

    def checkpoint(self) -> Checkpoint:
        """Verify the chain, then anchor its head (``idp audit checkpoint``).

        Refuses (:class:`ValueError`) when the chain does not verify: an
        anchor must never bless a rewritten database.
        """
        if self.anchor is None:
            raise RuntimeError("the audit log has no anchor file or key ring")
        report = self.verify()
        if not report.intact:
            raise ValueError(f"the chain is broken at seq {report.broken_seq}: {report.problem}")
        with self.db.session() as s:
            head = s.get(AuditHead, 1)
            seq, mac = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        with self._anchor_lock:
            written = self.anchor.write(seq, mac)
            self._unanchored, self._anchored_at = 0, time.monotonic()
        return written
