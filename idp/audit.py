"""The append-only, keyed and anchored audit chain (issue 3 §8, issue 11 §6).

Each record carries ``prev_hash``, the MAC of the record before it, ``key_id``
and its own ``hash`` = HMAC-SHA256 under the key ``key_id`` names (an
``idp-audit`` MAC key set in :mod:`keys.mac`, rotated like the other keys
and never destroyed) over a canonical JSON of its fields, ``key_id`` and
``prev_hash``. Someone who can write the database but not the key store can
therefore not recompute the chain after editing a record: a plain hash
would let them rewrite any record and every hash after it.

Editing a record breaks its own MAC; deleting one leaves a gap in ``seq``
(and a ``prev_hash`` that no longer matches); cutting off the tail disagrees
with the ``audit_head`` row, and since the head lives in the same database,
also with the **anchors**: signed checkpoints of the head (``seq``, MAC),
signed with the ``idp-audit-anchor`` key set and appended as JSON lines to a
file outside the database (:class:`AnchorFile`) every
:data:`ANCHOR_EVERY_RECORDS` records or :data:`ANCHOR_EVERY_SECONDS` seconds
and by ``idp audit checkpoint``. :meth:`AuditLog.verify` walks the chain,
names the first broken record, and checks that the database still holds
every anchored head.

Records written before the chain was keyed (``key_id`` NULL, plain SHA-256)
still verify, but only as the chain's beginning: an unkeyed record after a
keyed one is reported.

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
import base64
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.errors import KeyNotFound
from keys.mac import MacKey, ephemeral_key

from .db import Database
from .models import AuditEvent, AuditHead, utcnow

if TYPE_CHECKING:
    from keys.keyring import Keyring, KeySet

__all__ = [
    "AuditLog",
    "AnchorFile",
    "Checkpoint",
    "ChainReport",
    "GENESIS_HASH",
    "MAC_PURPOSE",
    "ANCHOR_PURPOSE",
    "record_hash",
    "record_mac",
    "KINDS",
]

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

MAC_PURPOSE = "idp-audit"
"""The MAC key set that keys the chain (:meth:`keys.keyring.Keyring.mac_keyset`)."""
ANCHOR_PURPOSE = "idp-audit-anchor"
"""The ES256 key set that signs checkpoints of the head."""
ANCHOR_EVERY_RECORDS = 1000
ANCHOR_EVERY_SECONDS = 60.0
_CHECKPOINT_TYP = "yiwang-audit-checkpoint+jwt"

# One throw-away key per process for an AuditLog built without a key ring
# (tests of other areas): every instance in the process agrees on it, and
# nothing it keys verifies anywhere else, which verify reports.
_EPHEMERAL = ephemeral_key()


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    body = {name: fields[name] for name in _HASHED}
    body["at"] = _at_text(body["at"])
    return body


def _digest(fields: Mapping[str, Any]) -> str:
    """The unkeyed SHA-256 of records written before the chain was keyed."""
    return hashlib.sha256(_canonical(_body(fields))).hexdigest()


def _mac_input(fields: Mapping[str, Any], key_id: str) -> bytes:
    body = _body(fields)
    body["key_id"] = key_id
    return _canonical(body)


def record_hash(event: AuditEvent) -> str:
    """SHA-256 hex over the canonical JSON of an unkeyed (pre-keying) ``event``."""
    return _digest({name: getattr(event, name) for name in _HASHED})


def record_mac(event: AuditEvent, key: MacKey) -> str:
    """HMAC-SHA256 hex of ``event`` under ``key`` (what its ``hash`` must be)."""
    return key.digest(_mac_input({name: getattr(event, name) for name in _HASHED}, key.kid))


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
    anchors: int = 0
    """Checkpoints whose signature verified and whose head the database still holds."""
    unverifiable_anchors: int = 0
    """Checkpoints signed by an anchor key no longer published (rotated out): not counted."""
    legacy: int = 0
    """Records from before the chain was keyed (plain SHA-256)."""

    @property
    def intact(self) -> bool:
        return self.broken_seq is None


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: at ``at``, record ``seq`` of the chain had MAC ``hash``."""

    seq: int
    hash: str
    at: str
    line: int
    signed: bool
    """The signature verified with a published ``idp-audit-anchor`` key."""


class AnchorError(Exception):
    """A line of the anchor file is not a checkpoint we signed."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"anchor file line {line}: {why}")
        self.line = line


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class AnchorFile:
    """Signed checkpoints of the chain head, appended as JSON lines to a file outside the database.

    Each line is ``{"seq", "hash", "at", "jws"}``; the compact JWS (ES256,
    ``idp-audit-anchor`` key set) over the same three values is what counts.
    The file is opened for appending only and each line is written under an
    exclusive ``flock`` and synced, so several idp processes can share it.
    """

    def __init__(self, path: Path, keyset: KeySet) -> None:
        self.path = path
        self.keyset = keyset

    def write(self, seq: int, mac: str) -> Checkpoint:
        from keys.jws import encode_jws

        at = utcnow().isoformat(timespec="seconds")
        claims = {"seq": seq, "hash": mac, "at": at}
        token = encode_jws(self.keyset.active(), claims, typ=_CHECKPOINT_TYP)
        line = json.dumps({**claims, "jws": token}, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return Checkpoint(seq, mac, at, 0, True)

    def read(self) -> list[Checkpoint]:
        """Every checkpoint in the file; :class:`AnchorError` for a line that is not one of ours."""
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet as JoseKeySet

        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        published = JoseKeySet.import_key_set(self.keyset.jwks())  # type: ignore[arg-type]
        kids = {k["kid"] for k in self.keyset.jwks()["keys"]}
        out = []
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                token = json.loads(raw)["jws"]
                header = json.loads(_b64decode(token.split(".")[0]))
                claims = json.loads(_b64decode(token.split(".")[1]))
                seq, mac, at = int(claims["seq"]), str(claims["hash"]), str(claims["at"])
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                raise AnchorError(number, "not a checkpoint") from None
            if header.get("typ") != _CHECKPOINT_TYP or header.get("alg") != "ES256":
                raise AnchorError(number, "not a checkpoint")
            signed = header.get("kid") in kids
            if signed:
                try:
                    jws.deserialize_compact(token, published, algorithms=["ES256"])
                except (JoseError, ValueError):
                    raise AnchorError(number, "its signature does not verify (forged or altered)") from None
            out.append(Checkpoint(seq, mac, at, number, signed))
        return out



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
            row = self._append(session, [pending])[0]
            if self.anchor is not None:
                # Anchored only once the caller's transaction commits: it may still roll back.
                seq, mac = row["seq"], row["hash"]
                sa.event.listen(session, "after_commit", lambda _s: self._committed(1, seq, mac), once=True)
            return AuditEvent(**row)
        if self.background:
            self._enqueue(pending)
            return None
        with self.db.session() as s:
            row = self._append(s, [pending])[0]
        self._committed(1, row["seq"], row["hash"])
        return AuditEvent(**row)

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
                        rows = self._append(s, batch)
                    delay = 0.1
                    self._committed(len(rows), rows[-1]["seq"], rows[-1]["hash"])
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
            row["hash"] = prev = key.digest(_mac_input(row, key.kid))
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
        """Walk the chain up to the head; report the first record that does not fit, then check the anchors.

        The head is read first and the walk stops at its ``seq``, so records
        appended while verifying (by a running idp) are left for next time.
        Every checkpoint in the anchor file must name a record the database
        still holds, with the same MAC: a cut-off or rewritten tail (head
        row included) is reported even though it forms an intact chain.
        """
        try:
            checkpoints = self.anchor.read() if self.anchor is not None else []
        except AnchorError as e:
            return ChainReport(0, e.line, str(e))
        wanted = {c.seq for c in checkpoints}
        seen: dict[int, str] = {}
        legacy = 0
        with self.db.session() as s:
            head = s.get(AuditHead, 1)
            head_seq = head.seq if head else 0
            head_hash = head.hash if head else GENESIS_HASH
            expected_seq = 1
            prev = GENESIS_HASH
            count = 0
            keyed = False
            for event in self._walk(s, head_seq):
                if event.seq != expected_seq:
                    return ChainReport(count, expected_seq, f"record {expected_seq} is missing")
                if event.prev_hash != prev:
                    return ChainReport(
                        count, event.seq, f"record {event.seq} does not follow the one before"
                    )
                problem = self._check(event, keyed)
                if problem is not None:
                    return ChainReport(count, event.seq, problem)
                if event.key_id is None:
                    legacy += 1
                else:
                    keyed = True
                if event.seq in wanted:
                    seen[event.seq] = event.hash
                prev = event.hash
                expected_seq += 1
                count += 1
            if head_seq > count:
                return ChainReport(count, count + 1, f"record {count + 1} is missing")
            if head_hash != prev:
                # the head disagrees with an intact chain: the head itself (or
                # the last record together with its hash) was rewritten
                return ChainReport(count, count, "the chain head does not match the last record")
        anchors = unverifiable = 0
        for c in sorted(checkpoints, key=lambda c: c.seq):
            if not c.signed:
                unverifiable += 1
                continue
            if c.seq > count:
                return ChainReport(
                    count, count + 1,
                    f"record {c.seq} was anchored at {c.at} but the database ends at record {count}: its tail was cut",
                )
            if c.seq > 0 and not _same(seen.get(c.seq), c.hash):
                return ChainReport(count, c.seq, f"record {c.seq} differs from its checkpoint of {c.at}: rewritten")
            anchors += 1
        return ChainReport(count, anchors=anchors, unverifiable_anchors=unverifiable, legacy=legacy)

    def _check(self, event: AuditEvent, keyed: bool) -> str | None:
        """Why ``event``'s own MAC does not hold, or ``None``."""
        if event.key_id is None:
            if keyed:
                return f"record {event.seq} is not keyed, after keyed records: rewritten"
            return None if _same(record_hash(event), event.hash) else f"record {event.seq} was altered"
        key = self.mac_key(event.key_id)
        if key is None:
            return f"record {event.seq} names an audit key this idp does not hold ({event.key_id[:40]})"
        if not key.verify(_mac_input({n: getattr(event, n) for n in _HASHED}, key.kid), event.hash):
            return f"record {event.seq} was altered"
        return None


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())
