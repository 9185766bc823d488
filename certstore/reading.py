"""Reading certificates: one by identifier, its PDF, lists, and the unmasked holder code.

Owns the read-side SQL over ``certificates`` and the rule that turns a row
into a :class:`~certstore.views.CertificateView` (names from the registry,
expiry applied on read). The holder code is stored encrypted and found by a
keyed blind index, both under :data:`PII_PURPOSE`; only the issuing agency
may see it unmasked.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from keys.keyring import Keyring

from .dates import Clock, aware
from .errors import NotFound
from .identifier import parse_identifier
from .lifecycle import is_expired
from .models import STATUS_CODES, Certificate
from .registry import IssuerInfo, Registry
from .types import CertificateType
from .views import CertificateView

__all__ = ["CertificateReader", "PII_PURPOSE", "MAX_LIST"]

PII_PURPOSE = "certstore-holder-code"
"""Purpose of the holder code's encryption and blind index (``keys.pii``)."""
MAX_LIST = 500


class CertificateReader:
    """Certificates as their readers see them: agencies (their own), the wallet, the verify pages."""

    def __init__(
        self, sessions: sessionmaker[Session], keyring: Keyring, registry: Registry, *, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.registry = registry
        self.clock = clock

    def view(
        self, row: Certificate, spec: CertificateType | None = None, issuer: IssuerInfo | None = None
    ) -> CertificateView:
        spec = spec or self.registry.get_type(row.type_code)
        issuer = issuer or self.registry.get_issuer(row.issuer_uscc)
        status = row.status
        if status in ("01", "02") and is_expired(row.valid_until, self.clock()):
            status = "05"  # expiry applied on read (issue 6); `certstore expire-due` records it
        zh, en = STATUS_CODES.get(status, ("?", "unknown"))
        return CertificateView(
            identifier=row.identifier,
            type_code=row.type_code,
            type_name_zh=spec.name_zh,
            type_name_en=spec.name_en,
            issuer_uscc=row.issuer_uscc,
            issuer_name_zh=issuer.name_zh,
            issuer_name_en=issuer.name_en,
            holder_code_type=row.holder_code_type,
            holder_code_masked=row.holder_code_masked,
            holder_name=row.holder_name,
            fields=dict(row.fields),
            issued_at=aware(row.issued_at),
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            status=status,
            status_zh=zh,
            status_en=en,
            version=row.version,
            serial=row.serial,
            paper_serial=row.paper_serial,
            pdf_sha256=row.pdf_sha256,
            qr_text=row.qr_text,
        )

    @staticmethod
    def find(s: Session, identifier: str) -> Certificate:
        """The row of ``identifier`` (any well-formed spelling), or :class:`NotFound`."""
        try:
            text = str(parse_identifier(identifier))
        except ValueError:
            raise NotFound("there is no certificate with that identifier", field="identifier") from None
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == text))
        if row is None:
            raise NotFound("there is no certificate with that identifier", field="identifier")
        return row

    def _own(self, s: Session, identifier: str, agency_uscc: str | None) -> Certificate:
        row = self.find(s, identifier)
        if agency_uscc is not None and row.issuer_uscc != agency_uscc:
            # Another agency's certificate answers as if it did not exist.
            raise NotFound("there is no certificate with that identifier", field="identifier")
        return row

    def get(self, identifier: str, *, agency_uscc: str | None = None) -> CertificateView:
        """One certificate; with ``agency_uscc`` only that agency's own."""
        with self.sessions() as s:
            return self.view(self._own(s, identifier, agency_uscc))

    def pdf(self, identifier: str, *, agency_uscc: str | None = None) -> bytes:
        with self.sessions() as s:
            return bytes(self._own(s, identifier, agency_uscc).pdf)

    def list(
        self,
        *,
        agency_uscc: str | None = None,
        type_code: str | None = None,
        holder_code: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CertificateView]:
        stmt = sa.select(Certificate).order_by(Certificate.id.desc())
        if agency_uscc is not None:
            stmt = stmt.where(Certificate.issuer_uscc == agency_uscc)
        if type_code is not None:
            stmt = stmt.where(Certificate.type_code == type_code)
        if holder_code is not None:
            index = self.keyring.pii().blind_index(holder_code.strip().upper(), purpose=PII_PURPOSE)
            stmt = stmt.where(Certificate.holder_code_index == index)
        stmt = stmt.limit(max(1, min(limit, MAX_LIST))).offset(max(0, offset))
        with self.sessions() as s:
            return [self.view(r) for r in s.scalars(stmt)]

    def holder_code(self, identifier: str, *, agency_uscc: str) -> str:
        """The unmasked holder code, for the issuing agency only."""
        with self.sessions() as s:
            row = self._own(s, identifier, agency_uscc)
            return self.keyring.pii().decrypt(row.holder_code_enc, purpose=PII_PURPOSE)
