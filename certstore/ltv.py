"""Long-term validity of stored certificate PDFs: which are due, and the archive-timestamp renewal.

A PAdES B-LTA PDF verifies long after the agency's signer certificate has
expired because its last document timestamp vouches for everything before it.
That holds only while the last timestamp's TSA certificate is valid (and not
revoked): before it expires a new document timestamp must be added, with the
validation data of the old one (ETSI EN 319 142-1 §5.5; pyHanko's
``update_archival_timestamp_chain``). This module

* lists every stored PDF with its level and the expiry of its last timestamp's
  TSA certificate (:meth:`LtvService.status`), *due* when that is within
  ``settings.ltv_renew_days``;
* renews them (:meth:`LtvService.renew`): the new PDF is an incremental update
  of the stored one (earlier signatures and timestamps stay intact), computed
  outside any transaction, then swapped in one transaction only if the stored
  PDF is still the one renewed (compare-and-set on its hash), with the old
  hash kept in ``cert_pdf_history`` (copies holders downloaded still verify
  against the record) and an audit event ``certificate.ltv_renew``.

The renewal is idempotent and safe to run from several processes at once: a
PDF renewed by another run is no longer due, and a lost compare-and-set is
skipped. ``certstore ltv renew --due-only`` is what a scheduler runs
(docs/operators.md); nothing in certstore runs it by itself. With Redis,
``ltv renew --due-only --enqueue`` hands each due certificate to the job queue
instead (:class:`LtvQueue`: its own Dramatiq queue ``certstore-ltv`` on the
batch queue's broker, one message per certificate, consumed by ``certstore
ltv worker`` processes), for a registry too large for one process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from keys import pki
from keys.keyring import Keyring
from signing.errors import PdfError, SigningError
from signing.pades import add_archive_timestamp
from signing.pades.ltv import TimestampInfo, last_timestamp

from .dates import utcnow
from .db import session_scope
from .errors import InvalidInput
from .models import AuditEvent, Certificate, PdfHistory
from .pdf_trust import PdfTrust
from .settings import CertstoreSettings

__all__ = ["LtvEntry", "LtvQueue", "LtvService", "RenewReport", "earlier_pdf_owner", "LTV_QUEUE"]

logger = logging.getLogger(__name__)

_BATCH = 200
LTV_QUEUE = "certstore-ltv"
_LTV_ACTOR = "certstore_ltv_renew"


@dataclass(frozen=True)
class LtvEntry:
    """One stored PDF's long-term state."""

    identifier: str
    issuer_uscc: str
    level: str
    """``B-LTA`` (document timestamps), ``B-T`` (a signature timestamp only) or ``B-B``."""
    last_timestamp: dt.datetime | None
    tsa_not_after: dt.datetime | None
    """Expiry of the last timestamp's TSA certificate: renew before it."""
    document_timestamps: int
    due: bool
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "identifier": self.identifier,
            "issuer": self.issuer_uscc,
            "level": self.level,
            "last_timestamp": self.last_timestamp.isoformat() if self.last_timestamp else None,
            "tsa_not_after": self.tsa_not_after.isoformat() if self.tsa_not_after else None,
            "document_timestamps": self.document_timestamps,
            "due": self.due,
            "note": self.note,
        }


@dataclass
class RenewReport:
    renewed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Not due (with ``due_only``), or changed by another run meanwhile."""
    failed: list[tuple[str, str]] = field(default_factory=list)


def _entry(identifier: str, issuer: str, pdf: bytes, *, now: dt.datetime, margin: dt.timedelta) -> LtvEntry:
    try:
        info: TimestampInfo | None = last_timestamp(pdf)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError) as e:
        # One odd stored PDF must not stop the listing of the rest: it is named instead.
        return LtvEntry(identifier, issuer, "?", None, None, 0, False, f"unreadable: {type(e).__name__}")
    if info is None:
        return LtvEntry(identifier, issuer, "B-B", None, None, 0, False,
                        "no timestamp: cannot be renewed; re-issue for B-LTA")
    level = "B-LTA" if info.document_timestamps else "B-T"
    expired = info.tsa_not_after <= now
    note = "the last timestamp's TSA certificate has expired: the chain is broken, re-issue" if expired else ""
    due = not expired and info.tsa_not_after - now <= margin
    return LtvEntry(identifier, issuer, level, info.time, info.tsa_not_after, info.document_timestamps, due, note)


class LtvService:
    """Status and renewal of the archive timestamps of stored PDFs."""

    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.clock = clock
        self.pdf_trust = PdfTrust(settings, keyring)

    def margin(self, days: int | None = None) -> dt.timedelta:
        days = self.settings.ltv_renew_days if days is None else days
        if not 0 <= days <= 3650:
            raise InvalidInput("the margin is 0 to 3650 days", field="margin")
        return dt.timedelta(days=days)

    def _rows(self, identifiers: Sequence[str] | None) -> Iterator[tuple[str, str, bytes]]:
        """(identifier, issuer, pdf) of every stored certificate, a batch at a time, by id."""
        last_id = 0
        while True:
            with self.sessions() as s:
                q = (
                    sa.select(Certificate.id, Certificate.identifier, Certificate.issuer_uscc, Certificate.pdf)
                    .where(Certificate.id > last_id)
                    .order_by(Certificate.id)
                    .limit(_BATCH)
                )
                if identifiers is not None:
                    q = q.where(Certificate.identifier.in_(list(identifiers)))
                rows = s.execute(q).all()
            if not rows:
                return
            for row in rows:
                yield row.identifier, row.issuer_uscc, bytes(row.pdf)
            last_id = rows[-1].id

    def status(
        self, *, due_only: bool = False, margin_days: int | None = None, identifiers: Sequence[str] | None = None
    ) -> list[LtvEntry]:
        """Every stored PDF (or those ``due``), soonest TSA expiry first."""
        margin, now = self.margin(margin_days), self.clock()
        out = [_entry(i, u, pdf, now=now, margin=margin) for i, u, pdf in self._rows(identifiers)]
        if identifiers is not None:
            unknown = sorted(set(identifiers) - {e.identifier for e in out})
            if unknown:
                raise InvalidInput(f"no certificate {unknown[0]!r} in this registry", field="identifier")
        if due_only:
            out = [e for e in out if e.due]
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        return sorted(out, key=lambda e: (e.tsa_not_after or far, e.identifier))

    def renew(
        self,
        *,
        due_only: bool = True,
        margin_days: int | None = None,
        identifiers: Sequence[str] | None = None,
        actor: str = "certstore ltv renew",
    ) -> RenewReport:
        """Add a document timestamp to each due PDF (each stored PDF with ``due_only=False``)."""
        if not self.settings.tsa_url:
            raise InvalidInput("no timestamp authority is configured (YIWANG_CERTSTORE_TSA_URL)", field="tsa")
        report = RenewReport()
        for entry in self.status(margin_days=margin_days, identifiers=identifiers):
            if entry.level not in ("B-LTA", "B-T") or entry.note:
                if identifiers is not None or not due_only:
                    report.failed.append((entry.identifier, entry.note or f"level {entry.level}"))
                continue
            if due_only and not entry.due:
                report.skipped.append(entry.identifier)
                continue
            try:
                outcome = self._renew_one(entry.identifier, actor=actor)
            except (SigningError, PdfError) as e:
                logger.warning("archive timestamp for %s failed: %s", entry.identifier, e)
                report.failed.append((entry.identifier, str(e)))
                continue
            (report.renewed if outcome else report.skipped).append(entry.identifier)
        return report

    def _renew_one(self, identifier: str, *, actor: str) -> bool:
        with self.sessions() as s:
            row = s.execute(
                sa.select(Certificate.id, Certificate.pdf, Certificate.pdf_sha256).where(
                    Certificate.identifier == identifier
                )
            ).one()
        old_pdf, old_sha = bytes(row.pdf), row.pdf_sha256
        # The TSA round trips happen outside the transaction; the swap below is a compare-and-set.
        chain = [pki.region_ca(self.keyring).issuing]
        new_pdf = add_archive_timestamp(
            old_pdf,
            validation_context=self.pdf_trust.signing_context(chain),
            timestamper_url=self.settings.tsa_url,
        )
        info = last_timestamp(new_pdf)
        new_sha = hashlib.sha256(new_pdf).hexdigest()
        with session_scope(self.sessions) as s:
            changed = s.execute(
                sa.update(Certificate)
                .where(Certificate.id == row.id, Certificate.pdf_sha256 == old_sha)
                .values(pdf=new_pdf, pdf_sha256=new_sha)
            ).rowcount
            if changed != 1:
                logger.info("%s changed while it was renewed; left to the other run", identifier)
                return False
            s.add(PdfHistory(certificate_id=row.id, pdf_sha256=old_sha, replaced_at=self.clock()))
            s.add(
                AuditEvent(
                    at=utcnow(),
                    actor=actor,
                    action="certificate.ltv_renew",
                    subject=identifier,
                    detail={
                        "previous_sha256": old_sha,
                        "sha256": new_sha,
                        "document_timestamps": info.document_timestamps if info else None,
                        "tsa_not_after": info.tsa_not_after.isoformat() if info else None,
                    },
                )
            )
        logger.info("renewed the archive timestamp of %s", identifier)
        return True


def earlier_pdf_owner(session: Session, digest: str) -> Certificate | None:
    """The certificate an earlier (pre-renewal) version of a PDF with this SHA-256 belongs to."""
    cid = session.scalar(sa.select(PdfHistory.certificate_id).where(PdfHistory.pdf_sha256 == digest).limit(1))
    return session.get(Certificate, cid) if cid is not None else None


class LtvQueue:
    """Renewals on the job queue: Dramatiq queue ``certstore-ltv``, one certificate per message.

    Same Redis broker namespace as batch issuance (``<prefix>certstore-dramatiq``,
    :mod:`keys.jobqueue`: a dead worker's messages are back within
    ``YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS``), its own queue so renewals never
    wait behind a batch. The handler renews only if still due, so a message
    run twice renews once.
    """

    def __init__(self, settings: CertstoreSettings, handler: Callable[[str], object] | None = None) -> None:
        url = settings.common.redis_url
        if not url:
            raise InvalidInput("the renewal queue needs YIWANG_REDIS_URL", field="redis")
        import dramatiq
        from dramatiq.middleware import (
            AgeLimit,
            Callbacks,
            Retries,
            ShutdownNotifications,
            TimeLimit,
        )

        from keys.jobqueue import redis_broker

        self.broker = redis_broker(
            url=url,  # one server, Sentinel or Cluster (keys.redis_urls)
            namespace=f"{settings.common.redis_prefix}certstore-dramatiq",
            middleware=[
                AgeLimit(),
                TimeLimit(time_limit=120_000),
                ShutdownNotifications(),
                Callbacks(),
                Retries(max_retries=5, min_backoff=10_000, max_backoff=600_000),
            ],
            requeue_seconds=settings.queue_requeue_seconds,
        )
        self._handler = handler
        self.actor = dramatiq.Actor(
            self._run, broker=self.broker, actor_name=_LTV_ACTOR, queue_name=LTV_QUEUE, priority=10, options={}
        )

    def _run(self, identifier: str) -> None:
        if self._handler is None:  # pragma: no cover - producers do not consume
            raise RuntimeError("this LtvQueue has no handler")
        self._handler(str(identifier))

    def enqueue(self, identifiers: Sequence[str]) -> None:
        for identifier in identifiers:
            self.actor.send(identifier)

    def worker(self, *, threads: int = 1):  # type: ignore[no-untyped-def]
        import dramatiq

        return dramatiq.Worker(self.broker, queues={LTV_QUEUE}, worker_threads=threads, worker_timeout=200)

    def close(self) -> None:
        self.broker.close()


def queue_handler(service: LtvService) -> Callable[[str], object]:
    """What an ``ltv worker`` does with a message: renew that certificate if it is still due.

    A failed renewal raises, so Dramatiq retries it later (the TSA may be back).
    """

    def handle(identifier: str) -> object:
        report = service.renew(due_only=True, identifiers=[identifier], actor="certstore ltv worker")
        if report.failed:
            raise SigningError(f"renewing {identifier} failed: {report.failed[0][1]}")
        return report

    return handle
