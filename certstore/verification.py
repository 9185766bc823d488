"""Verifying a certificate from what a verifier holds: QR text, a QR image, or the PDF.

Owns the verification rules: the offline checks (``signing.qr``,
``signing.pades``) against this deployment's trust list merged with the
imported regions' (:mod:`certstore.trust`), then this registry's record and
its status, or, for another region's certificate, its issuer's status list
(:mod:`certstore.statuslists`). Anonymous uploads are bounded here: byte
counts before work, and a few PDF verifications and image decodes at a time
per process (:class:`Slots`), the rest refused with 503.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

import signing.pades
import signing.qr
from keys.errors import KeyNotFound
from keys.identifiers import HOLDER_CODE_RESIDENT_ID
from signing.errors import PayloadError, PdfError

from .dates import Clock
from .errors import InvalidInput, PayloadTooLargeError, ServiceUnavailable
from .lifecycle import is_expired
from .ltv import earlier_pdf_owner
from .models import STATUS_CODES, STATUS_VALID, Certificate
from .pdf_trust import PdfTrust
from .qrscan import check_image, decode_qr_image
from .reading import CertificateReader
from .registry import Registry
from .settings import CertstoreSettings
from .status_changes import LifecycleService
from .statuslists import StatusListCache
from .trust import TrustStore
from .views import Check, VerificationResult, checks_from, mask_name

__all__ = ["Verifier", "Slots", "CLOCK_SKEW", "RETRY_AFTER_SECONDS"]

logger = logging.getLogger(__name__)

CLOCK_SKEW = dt.timedelta(minutes=5)
RETRY_AFTER_SECONDS = 5


class Slots:
    """At most ``n`` at once; one more is refused at once (503, ``Retry-After``), never queued:
    a queue of hostile uploads would hold every server thread."""

    def __init__(self, n: int, what: str) -> None:
        self._free = threading.BoundedSemaphore(max(1, n))
        self._what = what

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            logger.warning("too many %s at once: one refused", self._what)
            raise ServiceUnavailable(
                f"too many {self._what} are running right now; try again in a few seconds",
                field="file",
                code="busy",
                retry_after=RETRY_AFTER_SECONDS,
            )
        try:
            yield
        finally:
            self._free.release()


class Verifier:
    """Answer "is this certificate genuine and in force?" for anyone, without a login."""

    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        registry: Registry,
        *,
        reader: CertificateReader,
        lifecycle: LifecycleService,
        trust_store: TrustStore,
        status_cache: StatusListCache,
        pdf_trust: PdfTrust,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.reader = reader
        self.lifecycle = lifecycle
        self.trust_store = trust_store
        self.status_cache = status_cache
        self.pdf_trust = pdf_trust
        self.clock = clock
        self._trust: tuple[int, Any] | None = None
        # Anonymous uploads cost CPU and memory: a few at a time per process, the rest 503.
        self.pdf_slots = Slots(settings.verify_concurrency, "PDF verifications")
        self.image_slots = Slots(settings.verify_concurrency, "QR image decodes")
        self.pdf_limits = signing.pades.PdfLimits(max_bytes=settings.verify_pdf_max_bytes)

    def trust_list(self) -> Any:
        """The issuers whose QR signatures this deployment accepts (``signing.qr.TrustList``)."""
        infos = self.registry.issuers()
        generation = self.registry.generation
        cached = self._trust
        if cached is not None and cached[0] == generation:
            return cached[1]
        issuers = []
        for info in infos:
            if info.certificate is None:
                continue
            issuers.append(
                signing.qr.TrustedIssuer.from_certificate(
                    info.certificate,
                    uscc=info.uscc,
                    name=info.name_zh,
                    region=info.region,
                    allowed_types=info.allowed_types,
                )
            )
        trust = signing.qr.TrustList(issuers)
        self._trust = (generation, trust)
        return trust

    def verify_qr(self, text: str) -> VerificationResult:
        """Check a QR payload: offline checks (``signing.qr``), then this registry's record.

        One session (one connection checkout) serves both database reads: the
        imported trust lists' stamp and the record.
        """
        with self.sessions() as s:
            try:
                local = self.trust_list()
                merged = self.trust_store.merged(local, session=s)
                outcome = signing.qr.verify_qr_payload(
                    text, merged.trust_list, now=self.clock(), skew=CLOCK_SKEW
                )
            except PayloadError as e:
                return VerificationResult("qr", False, [Check("format", False, str(e))])
            checks = checks_from(outcome.checks)
            claims = outcome.claims
            view = None
            public_claims: dict[str, Any] = {}
            signature_ok = any(c.name == "signature" and c.ok for c in checks)
            if claims is not None and signature_ok:
                # Claims are shown only once their signature verified: a forged payload's
                # "holder" and "issuer" would otherwise be displayed as if they meant something.
                public_claims = public_claims_of(claims)
                if is_expired(claims.valid_until, self.clock()):
                    # Expiry applied on read (issue 6): the record turns 05 before it is shown.
                    # It commits in its own transaction; ending ours first means the
                    # read below starts a fresh one and sees it (SQLite snapshots too).
                    s.rollback()
                    self.lifecycle.expire_if_due(claims.identifier)
                row = self._record_of(s, claims, outcome.issuer, local)
                if row is None:
                    checks.append(self._remote_status(claims, outcome.issuer, merged))
                else:
                    view = self.reader.view(row)
                    checks.append(status_check(row.status))
            else:
                checks.append(Check("status", False, "not checked: the signature did not verify"))
        valid = bool(outcome.valid) and all(c.ok for c in checks)
        return VerificationResult("qr", valid, checks, view, public_claims)

    @staticmethod
    def _record_of(s: Session, claims: Any, issuer: Any, local: Any) -> Certificate | None:
        """This registry's record of a verified payload, bound to the issuer whose key verified it.

        Only a local issuer's key can bring up a local record, and only that
        issuer's own: an imported key, whatever credit code its payload names,
        gets the remote status check, never a local agency's record.
        """
        if issuer is None or local.get(issuer.kid) is not issuer or claims.issuer_uscc != issuer.uscc:
            return None
        return cast(
            Certificate | None,
            s.scalar(
                sa.select(Certificate).where(
                    Certificate.identifier == claims.identifier, Certificate.issuer_uscc == issuer.uscc
                )
            ),
        )

    def _remote_status(self, claims: Any, issuer: Any, merged: Any) -> Check:
        """Status of a certificate not in this registry: from its issuer's status list, fetched whole."""
        if claims.status_list is None or claims.status_index is None:
            return Check("status", False, "no certificate with this identifier in this registry, and it names no status list")
        from .remote import InvalidListId

        try:
            uri = merged.status_uri(issuer, claims.status_list) if issuer is not None else None
        except InvalidListId:
            return Check("status", False, "the QR code names a status list id that is not valid; not fetched")
        if uri is None:
            return Check("status", False, "the issuer's region publishes no status list this deployment knows")
        # Any current key of that agency may have signed the list (its signer may have been renewed).
        keys = [issuer.public_key] + [
            i.public_key
            for i in merged.trust_list
            if i.uscc == issuer.uscc and i.region == issuer.region and i.kid != issuer.kid
        ]
        answer = self.status_cache.lookup(uri, claims.status_index, keys)
        return Check("status", answer.ok, answer.reason)

    def verify_pdf(self, pdf: bytes) -> VerificationResult:
        """Check a certificate PDF: its PAdES signature (``signing.pades``), the record's hash and status."""
        if not isinstance(pdf, bytes | bytearray) or not bytes(pdf[:1024]).lstrip().startswith(b"%PDF-"):
            raise InvalidInput("the upload is not a PDF file", field="file", code="not_a_pdf")
        try:
            roots = self.pdf_trust.roots()
            crls = self.pdf_trust.crls()
        except KeyNotFound:
            raise ServiceUnavailable("this deployment has no region CA yet (run: certstore init)") from None
        try:
            # Byte counts first: a hostile file is refused in milliseconds, before it takes a slot.
            signing.pades.check_pdf_bounds(bytes(pdf), self.pdf_limits)
            with self.pdf_slots():
                outcome = signing.pades.verify_pdf(
                    bytes(pdf), trust_roots=roots, crls=crls, limits=self.pdf_limits
                )
        except signing.pades.PdfTooComplex as e:
            if e.what == "size":
                raise PayloadTooLargeError(
                    f"the PDF is {e.found} bytes; a certificate PDF is far smaller (at most {e.limit} are accepted)",
                    field="file",
                    code="pdf_too_large",
                ) from None
            raise InvalidInput(f"the PDF is refused: {e}", field="file", code="pdf_too_complex") from None
        except PdfError as e:
            raise InvalidInput(f"the PDF cannot be read: {e}", field="file", code="not_a_pdf") from None
        checks = checks_from(outcome.checks)
        digest = hashlib.sha256(pdf).hexdigest()
        view = None
        with self.sessions() as s:
            row = s.scalar(sa.select(Certificate).where(Certificate.pdf_sha256 == digest))
            if row is None:  # a copy downloaded before an archive-timestamp renewal (certstore.ltv)
                row = earlier_pdf_owner(s, digest)
            if row is None:
                checks.append(
                    Check("record", False, "no certificate in this registry has this exact PDF (changed after issue?)")
                )
            else:
                view = self.reader.view(row)
                checks.append(Check("record", True, ""))
                checks.append(status_check(row.status))
        valid = bool(outcome.valid) and all(c.ok for c in checks)
        return VerificationResult("pdf", valid, checks, view)

    def verify_file(self, data: bytes) -> VerificationResult:
        """Verify an uploaded PDF, or the QR code in an uploaded image."""
        if bytes(data[:1024]).lstrip().startswith(b"%PDF-"):
            return self.verify_pdf(data)
        check_image(data)  # header bounds first: a hostile image is refused without taking a slot
        with self.image_slots():
            texts = decode_qr_image(data)
        return self.verify_qr(texts[0])


def status_check(status: str) -> Check:
    """The ``status`` check of a local record: only 01 (valid) passes."""
    if status == STATUS_VALID:
        return Check("status", True, "")
    zh, en = STATUS_CODES.get(status, ("?", "unknown"))
    return Check("status", False, f"the certificate is {en} ({zh}, status {status})")


def public_claims_of(claims: Any) -> dict[str, Any]:
    """A verified payload's claims as public pages show them (a person's name masked)."""

    def iso(v: Any) -> Any:
        return v.isoformat() if isinstance(v, dt.date | dt.datetime) else v

    name = claims.holder_name
    if claims.holder_code_type == HOLDER_CODE_RESIDENT_ID:
        name = mask_name(name)
    return {
        "identifier": claims.identifier,
        "type": claims.type_code,
        "issuer": claims.issuer_uscc,
        "holder_name": name,
        "holder_code_masked": claims.holder_code_masked,
        "holder_code_type": claims.holder_code_type,
        "valid_from": iso(claims.valid_from),
        "valid_until": iso(claims.valid_until),
        "issued_at": iso(claims.issued_at),
        "fields": {k: iso(v) for k, v in dict(claims.fields or {}).items()},
    }
