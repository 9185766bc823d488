"""The certificate service as the web layer, the CLI and the batch worker see it: one facade.

It builds the parts and answers by handing each call to the part that owns
it; it holds no SQL and no rule of its own:

* issuing: :class:`certstore.issuance.Issuance` (rules in
  :mod:`certstore.issue_request`, SQL in :mod:`certstore.issue_store`);
* reading: :class:`certstore.reading.CertificateReader`;
* verifying: :class:`certstore.verification.Verifier`;
* status: :mod:`certstore.status_changes` (suspend, reinstate, revoke,
  expire), :mod:`certstore.statuslists` (publishing and fetching status
  lists) and :mod:`certstore.trust` (imported regions).

Code that needs one of them only may take that part (``services.certificates.verifier``);
``IssueRequest``, ``IssueResult`` and ``PII_PURPOSE`` stay importable from here.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from keys.keyring import Keyring

from .dates import Clock, utcnow
from .issuance import Issuance
from .issue_request import IssueRequest, IssueResult
from .issue_store import IssueStore
from .models import Certificate
from .pdf_trust import PdfTrust
from .reading import PII_PURPOSE, CertificateReader
from .registry import IssuerInfo, Registry
from .remote import loopback_allowed
from .settings import CertstoreSettings
from .status_changes import LifecycleService
from .statuslists import StatusListCache, StatusListService, requests_fetch
from .trust import TrustStore
from .types import CertificateType
from .verification import Verifier
from .views import CertificateView, VerificationResult

__all__ = ["IssueRequest", "IssueResult", "CertificateService", "PII_PURPOSE"]


class CertificateService:
    """Issue, read and verify certificates. One instance per process is enough."""

    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        *,
        registry: Registry | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.registry = registry or Registry(sessions, keyring)
        self.clock = clock
        """Assignable (tests freeze it): issuing, reading and verifying read it on every call."""
        now = self._now
        self.status_lists = StatusListService(settings, sessions, keyring, clock=clock)
        self.lifecycle = LifecycleService(sessions, clock=clock)
        self.trust_store = TrustStore(
            settings, sessions, keyring, self.registry, status_base_url=self.status_lists.base_url, clock=clock
        )
        self.status_cache = StatusListCache(
            functools.partial(requests_fetch, allow_loopback=loopback_allowed(settings)),
            cache_dir=settings.home / "cache" / "status-lists",
            clock=clock,
            max_age=dt.timedelta(seconds=settings.status_list_max_age),
            default_ttl=settings.status_list_ttl,
        )
        self.reader = CertificateReader(sessions, keyring, self.registry, clock=now)
        pdf_trust = PdfTrust(settings, keyring)
        self.issuance = Issuance(
            settings,
            keyring,
            self.registry,
            store=IssueStore(sessions, reader=self.reader, lifecycle=self.lifecycle),
            reader=self.reader,
            status_lists=self.status_lists,
            pdf_trust=pdf_trust,
            clock=now,
        )
        self.verifier = Verifier(
            settings,
            sessions,
            self.registry,
            reader=self.reader,
            lifecycle=self.lifecycle,
            trust_store=self.trust_store,
            status_cache=self.status_cache,
            pdf_trust=pdf_trust,
            clock=now,
        )
        self.pdf_limits = self.verifier.pdf_limits

    def _now(self) -> dt.datetime:
        return self.clock()

    # -- issuing (certstore.issuance) ---------------------------------------

    def issue(self, request: IssueRequest, *, agency_uscc: str, actor: str | None = None) -> IssueResult:
        """Issue one certificate for the agency ``agency_uscc`` (the authenticated caller)."""
        result = self.issuance.issue(request, agency_uscc=agency_uscc, actor=actor)
        # Imported here, not at the top: `certstore serve` forks its workers after importing this module.
        from . import metrics

        metrics.issued(result.certificate.type_code, replayed=result.replayed)
        return result

    # -- reading (certstore.reading) ----------------------------------------

    def _view(
        self, row: Certificate, spec: CertificateType | None = None, issuer: IssuerInfo | None = None
    ) -> CertificateView:
        # certstore.wallet builds its views through this name.
        return self.reader.view(row, spec, issuer)

    def get(self, identifier: str, *, agency_uscc: str | None = None) -> CertificateView:
        """One certificate; with ``agency_uscc`` only that agency's own."""
        return self.reader.get(identifier, agency_uscc=agency_uscc)

    def pdf(self, identifier: str, *, agency_uscc: str | None = None) -> bytes:
        return self.reader.pdf(identifier, agency_uscc=agency_uscc)

    def list(
        self,
        *,
        agency_uscc: str | None = None,
        type_code: str | None = None,
        holder_code: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CertificateView]:
        return self.reader.list(
            agency_uscc=agency_uscc, type_code=type_code, holder_code=holder_code, limit=limit, offset=offset
        )

    def holder_code(self, identifier: str, *, agency_uscc: str) -> str:
        """The unmasked holder code, for the issuing agency only."""
        return self.reader.holder_code(identifier, agency_uscc=agency_uscc)

    # -- verifying (certstore.verification) ---------------------------------

    def trust_list(self) -> Any:
        """The issuers whose QR signatures this deployment accepts (``signing.qr.TrustList``)."""
        return self.verifier.trust_list()

    def verify_qr(self, text: str) -> VerificationResult:
        return _counted(self.verifier.verify_qr(text))

    def verify_pdf(self, pdf: bytes) -> VerificationResult:
        return _counted(self.verifier.verify_pdf(pdf))

    def verify_file(self, data: bytes) -> VerificationResult:
        return _counted(self.verifier.verify_file(data))


def _counted(result: VerificationResult) -> VerificationResult:
    from . import metrics

    metrics.verified(result.kind, valid=result.valid)
    return result
