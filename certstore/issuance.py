"""Issuing a certificate: the one place that ties the rules, keys, signing and the database.

Validate the request (:mod:`certstore.issue_request`), allocate a serial and
draw a free status-list position (:mod:`certstore.issue_store`), build the
identifier, sign the QR payload, render and PAdES-sign the PDF, then store
the record, the PDF *and* the status-list slot in one transaction.
Everything slow (signatures, PDF) happens before the transaction opens, so a
failure anywhere leaves nothing stored but a gap in the serials (no
status-list slot without a certificate: issue 20 §3), and a short
transaction holds no lock while PDFs are rendered. Should the drawn position
be taken by another certificate in the meantime (two draws meeting in a
list at most half full of 131,072), the certificate is signed again with a
new position.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

import signing.pades
import signing.pdf
import signing.qr
from keys.identifiers import HOLDER_CODE_USCC
from keys.keyring import Keyring
from signing.errors import PayloadTooLarge, SigningError

from .dates import Clock, china_date, utcnow
from .errors import Conflict, InvalidInput, ServiceUnavailable
from .faults import fault_point
from .identifier import build_identifier, format_serial
from .issue_request import IssueRequest, IssueResult, Prepared, prepare
from .issue_store import IssueStore
from .models import STATUS_VALID, Certificate
from .pdf_trust import PdfTrust
from .reading import PII_PURPOSE, CertificateReader
from .registry import Registry
from .settings import DEFAULT_TSA_URL, CertstoreSettings
from .signers import AgencySigners
from .statuslists import Slot, SlotTaken, StatusListService
from .types import mask_holder_code

__all__ = ["Issuance"]

logger = logging.getLogger(__name__)

_SLOT_ATTEMPTS = 4
"""Positions tried per certificate before giving up with 503 (each collision is rare already)."""


class Issuance:
    """Issue certificates for agencies. One instance per process is enough."""

    def __init__(
        self,
        settings: CertstoreSettings,
        keyring: Keyring,
        registry: Registry,
        *,
        store: IssueStore,
        reader: CertificateReader,
        status_lists: StatusListService,
        pdf_trust: PdfTrust,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.registry = registry
        self.store = store
        self.reader = reader
        self.status_lists = status_lists
        self.pdf_trust = pdf_trust
        self.clock = clock
        self.signers = AgencySigners(keyring)
        if settings.signing_level != settings.pades_level:
            # Only settings built in code get here: from_env refuses a level without a TSA.
            logger.warning(
                "PAdES %s asked for but no TSA configured: certificates are signed B-B, which stops "
                "verifying when the agency's signer certificate expires", settings.pades_level,
            )

    def prepare(self, request: IssueRequest, agency_uscc: str) -> Prepared:
        return prepare(request, agency_uscc, registry=self.registry, keyring=self.keyring, now=self.clock())

    def issue(self, request: IssueRequest, *, agency_uscc: str, actor: str | None = None) -> IssueResult:
        """Issue one certificate for the agency ``agency_uscc`` (the authenticated caller)."""
        prepared = self.prepare(request, agency_uscc)
        key = request.idempotency_key
        store = self.store
        if key is not None:
            existing = store.replay(agency_uscc, key, prepared.fingerprint)
            if existing is not None:
                return existing
        now = self.clock().replace(microsecond=0)
        slot: Slot | None = None
        if request.supersedes is not None:
            old_id, serial, version = store.superseded(
                request.supersedes, agency_uscc, prepared.spec.code, now=self.clock()
            )
        elif store.postgresql:
            old_id, version = None, 1
            serial, slot = store.allocate_pg(agency_uscc, prepared.spec.code)
        else:
            old_id, serial, version = None, store.allocate_serial(agency_uscc, prepared.spec.code), 1
        cid = str(build_identifier(prepared.spec.code, agency_uscc, serial, version))
        signer = self.signers.get(agency_uscc)
        for _ in range(_SLOT_ATTEMPTS):
            if slot is None:
                slot = self.status_lists.draw(agency_uscc)
            values, audit = self._signed_record(
                prepared, request, cid=cid, serial=serial, version=version, slot=slot, now=now, signer=signer,
                actor=actor or agency_uscc,
            )
            row = Certificate(**values)
            fault_point("issue.before_store")
            try:
                if old_id is None and store.postgresql:
                    store.store_pg(values, audit, key, prepared.fingerprint, slot=slot)
                else:
                    store.store(row, audit, key, prepared.fingerprint, slot=slot, old_id=old_id,
                                actor=actor or agency_uscc, at=now)
            except SlotTaken:
                logger.info("status-list position taken while %s was signed; drawing again", cid)
                slot = None
                continue
            except IntegrityError:
                if key is None and old_id is not None:
                    raise Conflict("a new version of this certificate was issued a moment ago", field="supersedes") from None
                if key is None:
                    raise
                # Another request with the same key won the race: answer as it did.
                existing = store.replay(agency_uscc, key, prepared.fingerprint)
                if existing is None:
                    raise
                return existing
            logger.info("issued %s (type %s) for %s", cid, prepared.spec.code, agency_uscc)
            return IssueResult(self.reader.view(row, prepared.spec, prepared.issuer))
        raise ServiceUnavailable("no free status-list position could be found; try again")

    def _signed_record(
        self, prepared: Prepared, request: IssueRequest, *, cid: str, serial: int, version: int, slot: Slot,
        now: dt.datetime, signer: Any, actor: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The certificate's column values (QR payload and PDF signed for ``slot``) and its audit event."""
        agency_uscc = prepared.issuer.uscc
        claims = signing.qr.QrClaims(
            identifier=cid,
            type_code=prepared.spec.code,
            issuer_uscc=agency_uscc,
            holder_name=prepared.holder_name,
            holder_code_masked=mask_holder_code(prepared.spec.holder_code_type, prepared.holder_code),
            holder_code_type=prepared.spec.holder_code_type,
            valid_from=prepared.valid_from,
            valid_until=prepared.valid_until,
            issued_at=china_date(now),
            fields={k: str(prepared.fields[k]) for k in prepared.spec.qr_fields if k in prepared.fields},
            status_list=slot.list_id,
            status_index=slot.index,
        )
        try:
            qr_text = signing.qr.encode_qr_payload(claims, signer)
        except PayloadTooLarge as e:
            raise InvalidInput(
                f"the QR payload would be {e.length} characters but a QR code of version 11 at "
                f"level M holds {e.limit}: shorten holder_name or the fields the QR carries "
                f"({', '.join(prepared.spec.qr_fields) or 'none'})",
                field="holder_name",
                code="payload_too_large",
            ) from None
        pdf = self._render_and_sign(prepared, cid=cid, qr_text=qr_text, issued_at=now, signer=signer)
        pii = self.keyring.pii()
        values: dict[str, Any] = dict(
            identifier=cid,
            type_code=prepared.spec.code,
            issuer_uscc=agency_uscc,
            serial=format_serial(int(serial)),
            version=version,
            holder_code_type=prepared.spec.holder_code_type,
            holder_code_index=pii.blind_index(prepared.holder_code, purpose=PII_PURPOSE),
            holder_code_enc=pii.encrypt(prepared.holder_code, purpose=PII_PURPOSE),
            holder_code_masked=claims.holder_code_masked,
            holder_name=prepared.holder_name,
            fields=prepared.fields,
            issued_at=now,
            valid_from=prepared.valid_from,
            valid_until=prepared.valid_until,
            status=STATUS_VALID,
            paper_serial=prepared.paper_serial,
            pdf=pdf,
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
            qr_text=qr_text,
            idempotency_key=request.idempotency_key,
            external_ref=request.external_ref,
            status_list=slot.list_id,
            status_index=slot.index,
        )
        audit = dict(
            at=utcnow(),
            actor=actor,
            action="certificate.issue",
            subject=cid,
            detail={"type": prepared.spec.code, "holder": claims.holder_code_masked},
        )
        return values, audit

    def _render_and_sign(
        self, p: Prepared, *, cid: str, qr_text: str, issued_at: dt.datetime, signer: Any
    ) -> bytes:
        spec = p.spec
        rows = tuple(
            (f.label_zh, f.label_en, str(p.fields[f.name])) for f in spec.ordered_fields() if f.name in p.fields
        )
        labels: dict[str, str] = {}
        if spec.holder_code_type == HOLDER_CODE_USCC:
            labels = {
                "holder_label_zh": "名称",
                "holder_label_en": "Name",
                "holder_code_label_zh": "统一社会信用代码",
                "holder_code_label_en": "Unified social credit code",
            }
        doc = signing.pdf.CertificateDocument(
            title_zh=spec.title_zh,
            title_en=spec.title_en,
            holder_name=p.holder_name,
            holder_code_masked=mask_holder_code(spec.holder_code_type, p.holder_code),
            issuer_name=p.issuer.name_zh,
            identifier=cid,
            paper_serial=p.paper_serial or "—",
            qr_text=qr_text,
            issued_at=china_date(issued_at),
            valid_from=p.valid_from,
            valid_until=p.valid_until,
            fields=rows,
            issuer_uscc=p.issuer.uscc,
            accent=spec.layout.accent if spec.layout else "#1F4E79",
            **labels,
        )
        try:
            pdf = signing.pdf.render_certificate_pdf(doc)
            level = self.settings.signing_level
            if level == "B-B":
                return signing.pades.sign_pdf(pdf, signer, level="B-B")
            # B-T and up: an RFC 3161 signature timestamp; B-LT/B-LTA: the chain's CRLs in the DSS;
            # B-LTA: a document timestamp over it all (renewed by certstore.ltv before its TSA expires).
            return signing.pades.sign_pdf(
                pdf,
                signer,
                level=level,
                timestamper_url=self.settings.tsa_url,
                validation_context=self.pdf_trust.signing_context(signer.chain) if level != "B-T" else None,
            )
        except SigningError as e:
            logger.warning("signing %s failed: %s", cid, e)
            hint = (
                " (the local TSA: is `certstore tsa serve` running?)"
                if self.settings.tsa_url == DEFAULT_TSA_URL and "timestamp authority" in str(e)
                else ""
            )
            raise ServiceUnavailable(f"the certificate could not be signed: {e}{hint}") from e
