"""Reading and verifying the audit chain (``idp audit verify`` and ``idp audit tail``).

Owns the walk from the first record to the head: every record's ``seq``
follows the one before, its ``prev_hash`` is that record's MAC, and its own
MAC holds under the key it names (or, for records from before the chain was
keyed, its plain SHA-256, only at the chain's beginning); then every signed
checkpoint in the anchor file must name a record the database still holds,
with the same MAC. :class:`ChainReader` is mixed into
:class:`~idp.audit.AuditLog`, which supplies the database, the anchor file and
the MAC keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from keys.mac import MacKey

from ..db import Database
from ..models import AuditEvent, AuditHead
from .anchors import AnchorError, AnchorFile
from .records import GENESIS_HASH, HASHED, mac_input, record_hash, same_digest

__all__ = ["ChainReader", "ChainReport"]


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


class ChainReader:
    """Reads and verifies the chain; the class that mixes it in provides these three."""

    db: Database
    anchor: AnchorFile | None

    def mac_key(self, kid: str) -> MacKey | None:
        raise NotImplementedError

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
            if c.seq > 0 and not same_digest(seen.get(c.seq), c.hash):
                return ChainReport(count, c.seq, f"record {c.seq} differs from its checkpoint of {c.at}: rewritten")
            anchors += 1
        return ChainReport(count, anchors=anchors, unverifiable_anchors=unverifiable, legacy=legacy)

    def _check(self, event: AuditEvent, keyed: bool) -> str | None:
        """Why ``event``'s own MAC does not hold, or ``None``."""
        if event.key_id is None:
            if keyed:
                return f"record {event.seq} is not keyed, after keyed records: rewritten"
            return None if same_digest(record_hash(event), event.hash) else f"record {event.seq} was altered"
        key = self.mac_key(event.key_id)
        if key is None:
            return f"record {event.seq} names an audit key this idp does not hold ({event.key_id[:40]})"
        if not key.verify(mac_input({n: getattr(event, n) for n in HASHED}, key.kid), event.hash):
            return f"record {event.seq} was altered"
        return None
