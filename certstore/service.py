"""Issuing and verifying certificates: the one place that ties keys, signing and the database.

Issue (issue 5, "Build" 1–3): validate the request against the type's schema
and the issuer's rights, allocate a serial, build the identifier, sign the QR
payload, render and PAdES-sign the PDF, then store the record *and* the PDF
in one transaction. Everything slow (signatures, PDF) happens before the
transaction opens, so a failure anywhere leaves nothing stored and a short
transaction holds no lock while PDFs are rendered.

Serials come from a per-issuer-and-type counter bumped with one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in its own short transaction:
concurrency-safe on PostgreSQL (the row lock serialises bumps) and SQLite. A
request that fails after allocation leaves a gap in the serials; a gap is
harmless, reusing a serial would not be. On PostgreSQL the bump and the
status-list position are one statement, and the certificate, its audit event
and idempotency record another (data-modifying CTEs, each its own atomic
transaction in autocommit mode): two round trips per certificate instead of
seventeen (DESIGN.md: a round trip on the hot path is a visible share).

``Idempotency-Key``: the key and a keyed fingerprint of the normalised
request are stored with the certificate. The same key with the same request
returns the stored certificate; with a different request it is a conflict.
The fingerprint is an HMAC (the request holds an ID number, whose small
space a plain hash would not protect).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import signing.pades
import signing.pdf
import signing.qr
from keys import pki
from keys.errors import KeyNotFound
from keys.identifiers import HOLDER_CODE_RESIDENT_ID, HOLDER_CODE_USCC
from keys.keyring import Keyring
from signing.errors import PayloadError, PayloadTooLarge, PdfError, SigningError

from .db import autocommit, session_scope
from .errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLargeError,
    ServiceUnavailable,
)
from .identifier import build_identifier, format_serial, parse_identifier
from .lifecycle import Action, is_expired, transition
from .models import (
    STATUS_CODES,
    STATUS_VALID,
    AuditEvent,
    Certificate,
    IdempotencyRecord,
    SerialCounter,
)
from .qrscan import check_image, decode_qr_image
from .registry import IssuerInfo, Registry
from .settings import CertstoreSettings
from .statuslists import FILL_LIMIT, Slot
from .types import (
    CertificateType,
    mask_holder_code,
    validate_holder_code,
    validate_holder_name,
)
from .views import CertificateView, Check, VerificationResult, checks_from, mask_name

__all__ = ["IssueRequest", "IssueResult", "CertificateService", "PII_PURPOSE"]

logger = logging.getLogger(__name__)

PII_PURPOSE = "certstore-holder-code"
_IDEMPOTENCY_PURPOSE = "certstore-idempotency"
_MAX_KEY = 200
_PAPER_SERIAL_MAX = 64
CLOCK_SKEW = dt.timedelta(minutes=5)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


def _china_date(moment: dt.datetime) -> dt.date:
    """The calendar date printed on a certificate: China Standard Time, not UTC."""
    return _aware(moment).astimezone(CHINA_STANDARD_TIME).date()


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class IssueRequest:
    """What an agency asks for. Build it with :meth:`from_json` from untrusted input."""

    type_code: str
    holder_code: str
    holder_name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    paper_serial: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    issuer: str | None = None
    """The issuer named in the body; when given it must be the caller's."""
    idempotency_key: str | None = None
    external_ref: str | None = None
    """Batch issuance's idempotency (issue 6): unique per issuer (``certstore.batch``)."""
    supersedes: str | None = None
    """Identifier of the certificate this one replaces (issue 6): same serial, next version;
    the old one is cancelled (04, action ``supersede``) in the same transaction."""

    def __repr__(self) -> str:  # the holder code stays out of logs
        return f"IssueRequest(type={self.type_code!r}, issuer={self.issuer!r})"

    @classmethod
    def from_json(cls, body: Any, *, idempotency_key: str | None = None) -> IssueRequest:
        if not isinstance(body, Mapping):
            raise InvalidInput("the request body must be a JSON object", field="body")
        allowed = {
            "type", "issuer", "holder_code", "holder_name", "fields", "paper_serial",
            "valid_from", "valid_until",
        }
        extra = sorted(str(k) for k in body if k not in allowed)
        if extra:
            raise InvalidInput(f"unknown member {extra[0][:40]!r}", field=extra[0][:40])
        for name in ("type", "holder_code", "holder_name"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise InvalidInput(f"{name} is required (text)", field=name)
        fields = body.get("fields", {})
        if not isinstance(fields, Mapping):
            raise InvalidInput("fields must be an object", field="fields")
        paper = body.get("paper_serial")
        if paper is not None and not isinstance(paper, str):
            raise InvalidInput("paper_serial must be text", field="paper_serial")
        issuer = body.get("issuer")
        if issuer is not None and not isinstance(issuer, str):
            raise InvalidInput("issuer must be text", field="issuer")
        return cls(
            type_code=body["type"].strip(),
            holder_code=body["holder_code"],
            holder_name=body["holder_name"],
            fields=dict(fields),
            paper_serial=paper,
            valid_from=_date(body.get("valid_from"), "valid_from"),
            valid_until=_date(body.get("valid_until"), "valid_until"),
            issuer=issuer.strip().upper() if issuer else None,
            idempotency_key=idempotency_key,
        )


def _date(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a date written YYYY-MM-DD", field=name)


@dataclass(frozen=True)
class IssueResult:
    certificate: CertificateView
    replayed: bool = False
    """``True`` when an earlier request with the same ``Idempotency-Key`` made it."""


@dataclass(frozen=True)
class _Prepared:
    spec: CertificateType
    issuer: IssuerInfo
    holder_code: str = field(repr=False)  # an ID number stays out of reprs and logs
    holder_name: str
    fields: dict[str, Any]
    paper_serial: str | None
    valid_from: dt.date
    valid_until: dt.date | None
    fingerprint: str | None


class CertificateService:
    """Issue, read and verify certificates. One instance per process is enough."""

    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        *,
        registry: Registry | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.registry = registry or Registry(sessions, keyring)
        self.clock = clock
        self._signers: dict[str, tuple[object, Any]] = {}
        self._lock = threading.Lock()
        self._trust: tuple[int, Any] | None = None
        # Lifecycle, status lists and trust lists (issue 6: certstore.statuslists, .trust, .status_changes).
        from .status_changes import LifecycleService
        from .statuslists import StatusListCache, StatusListService
        from .trust import TrustStore

        self.status_lists = StatusListService(settings, sessions, keyring, clock=clock)
        self.lifecycle = LifecycleService(sessions, clock=clock)
        self.trust_store = TrustStore(
            settings, sessions, keyring, self.registry, status_base_url=self.status_lists.base_url, clock=clock
        )
        from .remote import loopback_allowed
        from .statuslists import requests_fetch

        self.status_cache = StatusListCache(
            functools.partial(requests_fetch, allow_loopback=loopback_allowed(settings)),
            cache_dir=settings.home / "cache" / "status-lists",
            clock=clock,
            max_age=dt.timedelta(seconds=settings.status_list_max_age),
            default_ttl=settings.status_list_ttl,
        )
        self._tsa_roots: list[x509.Certificate] | None = None
        # Anonymous uploads cost CPU and memory: a few at a time per process, the rest 503.
        self._pdf_slots = _Slots(settings.verify_concurrency, "PDF verifications")
        self._image_slots = _Slots(settings.verify_concurrency, "QR image decodes")
        self.pdf_limits = signing.pades.PdfLimits(max_bytes=settings.verify_pdf_max_bytes)
        self._postgresql = sessions.kw["bind"].dialect.name == "postgresql"

    # -- issuing -----------------------------------------------------------

    def issue(self, request: IssueRequest, *, agency_uscc: str, actor: str | None = None) -> IssueResult:
        """Issue one certificate for the agency ``agency_uscc`` (the authenticated caller)."""
        prepared = self._prepare(request, agency_uscc)
        key = request.idempotency_key
        if key is not None:
            existing = self._replay(agency_uscc, key, prepared.fingerprint)
            if existing is not None:
                return existing
        now = self.clock().replace(microsecond=0)
        slot: Slot | None = None
        if request.supersedes is not None:
            old_id, serial, version = self._superseded(request.supersedes, agency_uscc, prepared.spec.code)
        elif self._postgresql:
            old_id, version = None, 1
            serial, slot = self._allocate_pg(agency_uscc, prepared.spec.code)
        else:
            old_id, serial, version = None, self._allocate_serial(agency_uscc, prepared.spec.code), 1
        cid = build_identifier(prepared.spec.code, agency_uscc, serial, version)
        signer = self._signer(agency_uscc)
        if slot is None:
            slot = self.status_lists.allocate(agency_uscc)
        claims = signing.qr.QrClaims(
            identifier=str(cid),
            type_code=prepared.spec.code,
            issuer_uscc=agency_uscc,
            holder_name=prepared.holder_name,
            holder_code_masked=mask_holder_code(prepared.spec.holder_code_type, prepared.holder_code),
            holder_code_type=prepared.spec.holder_code_type,
            valid_from=prepared.valid_from,
            valid_until=prepared.valid_until,
            issued_at=_china_date(now),
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
        pdf = self._render_and_sign(prepared, cid=str(cid), qr_text=qr_text, issued_at=now, signer=signer)
        pii = self.keyring.pii()
        values: dict[str, Any] = dict(
            identifier=str(cid),
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
            idempotency_key=key,
            external_ref=request.external_ref,
            status_list=slot.list_id,
            status_index=slot.index,
        )
        row = Certificate(**values)
        audit = dict(
            at=_utcnow(),
            actor=actor or agency_uscc,
            action="certificate.issue",
            subject=str(cid),
            detail={"type": prepared.spec.code, "holder": claims.holder_code_masked},
        )
        try:
            if old_id is None and self._postgresql:
                self._store_pg(values, audit, key, prepared.fingerprint)
            else:
                self._store(row, audit, key, prepared.fingerprint, old_id=old_id, actor=actor or agency_uscc, at=now)
        except IntegrityError:
            if key is None and old_id is not None:
                raise Conflict("a new version of this certificate was issued a moment ago", field="supersedes") from None
            if key is None:
                raise
            # Another request with the same key won the race: answer as it did.
            existing = self._replay(agency_uscc, key, prepared.fingerprint)
            if existing is None:
                raise
            return existing
        logger.info("issued %s (type %s) for %s", cid, prepared.spec.code, agency_uscc)
        return IssueResult(self._view(row, prepared.spec, prepared.issuer))

    def _store(
        self,
        row: Certificate,
        audit: dict[str, Any],
        key: str | None,
        fingerprint: str | None,
        *,
        old_id: str | None,
        actor: str,
        at: dt.datetime,
    ) -> None:
        """Certificate, idempotency record and audit event in one transaction (ORM, any database)."""
        with session_scope(self.sessions) as s:
            if old_id is not None:
                row.supersedes = old_id
                self.lifecycle.supersede(s, old_id, row.identifier, actor=actor, at=at)
            s.add(row)
            if key is not None:
                s.flush()
                s.add(
                    IdempotencyRecord(
                        issuer_uscc=row.issuer_uscc,
                        key=key,
                        request_sha256=fingerprint or "",
                        certificate_id=row.id,
                    )
                )
            s.add(AuditEvent(**audit))

    def _store_pg(
        self, values: dict[str, Any], audit: dict[str, Any], key: str | None, fingerprint: str | None
    ) -> None:
        """:meth:`_store` on PostgreSQL: one ``INSERT`` statement with the audit event (and
        idempotency record) as data-modifying CTEs, sent in autocommit mode.

        One statement is atomic by itself, so this is still one transaction,
        committed synchronously; it spares the ``BEGIN``, the second
        ``INSERT`` and the ``COMMIT`` round trips, and the ORM's unit of work.
        """
        params = {f"c_{col.name}": values.get(col.name) for col in Certificate.__table__.c if col.name != "id"}
        params.update({f"a_{k}": v for k, v in audit.items()})
        if key is not None:
            params.update(i_issuer_uscc=values["issuer_uscc"], i_key=key, i_request_sha256=fingerprint or "",
                          i_created_at=audit["at"])
        with autocommit(self.sessions) as conn:
            conn.execute(_store_statement(key is not None), params)

    def _superseded(self, identifier: str, agency_uscc: str, type_code: str) -> tuple[str, int, int]:
        """``(old identifier, serial, next version)`` for a new version of ``identifier``."""
        with self.sessions() as s:
            old = self._find(s, identifier)
            if old.issuer_uscc != agency_uscc:
                raise Forbidden("only the issuing agency may issue a new version", field="supersedes")
            if old.type_code != type_code:
                raise InvalidInput("a new version keeps the certificate type", field="type")
            # Refuse early (before any signing) what the state machine would refuse at commit.
            transition(old.status, Action.SUPERSEDE, identifier=old.identifier, reason="new version",
                       actor=agency_uscc, at=self.clock(), superseded_by=old.identifier)
            return old.identifier, int(old.serial), old.version + 1

    def _prepare(self, request: IssueRequest, agency_uscc: str) -> _Prepared:
        if request.issuer is not None and request.issuer != agency_uscc:
            raise Forbidden("a client may only issue for its own agency", field="issuer")
        try:
            issuer = self.registry.get_issuer(agency_uscc)
        except NotFound:
            raise Forbidden("the caller is not a registered issuer", field="issuer") from None
        try:
            spec = self.registry.get_type(request.type_code)
        except NotFound as e:
            raise InvalidInput(str(e), field="type") from None
        if spec.code not in issuer.allowed_types:
            raise Forbidden(
                f"issuer {agency_uscc} may not issue certificates of type {spec.code}", field="type"
            )
        holder_code = validate_holder_code(spec.holder_code_type, request.holder_code)
        holder_name = validate_holder_name(request.holder_name, spec.holder_name_max_length)
        fields = spec.validate_fields(request.fields)
        paper = request.paper_serial.strip() if request.paper_serial else None
        if paper is not None and (len(paper) > _PAPER_SERIAL_MAX or not paper.isprintable()):
            raise InvalidInput(
                f"paper_serial must be printable text of at most {_PAPER_SERIAL_MAX} characters",
                field="paper_serial",
            )
        valid_from = request.valid_from or _china_date(self.clock())
        valid_until = spec.validity.valid_until(valid_from, request.valid_until)
        key = request.idempotency_key
        fingerprint = None
        if key is not None:
            if not key or len(key) > _MAX_KEY or not key.isprintable():
                raise InvalidInput(
                    f"Idempotency-Key must be 1 to {_MAX_KEY} printable characters",
                    field="Idempotency-Key",
                )
            canonical = json.dumps(
                {
                    "type": spec.code,
                    "holder_code": holder_code,
                    "holder_name": holder_name,
                    "fields": fields,
                    "paper_serial": paper,
                    "valid_from": request.valid_from.isoformat() if request.valid_from else None,
                    "valid_until": request.valid_until.isoformat() if request.valid_until else None,
                },
                sort_keys=True,
                ensure_ascii=False,
            )
            fingerprint = self.keyring.pii().blind_index(canonical, purpose=_IDEMPOTENCY_PURPOSE)
        return _Prepared(spec, issuer, holder_code, holder_name, fields, paper, valid_from, valid_until, fingerprint)

    def _replay(self, uscc: str, key: str, fingerprint: str | None) -> IssueResult | None:
        with self.sessions() as s:
            rec = s.get(IdempotencyRecord, (uscc, key))
            if rec is None:
                return None
            if fingerprint is None or not _same(rec.request_sha256, fingerprint):
                raise Conflict(
                    "this Idempotency-Key was already used with a different request",
                    field="Idempotency-Key",
                    code="idempotency_conflict",
                )
            row = s.get(Certificate, rec.certificate_id)
            assert row is not None
            return IssueResult(self._view(row), replayed=True)

    def _allocate_serial(self, uscc: str, type_code: str) -> int:
        """The next serial of ``(uscc, type_code)``, in its own short transaction.

        On PostgreSQL that transaction commits without waiting for the WAL
        flush (``synchronous_commit`` off for it alone): the flush (~3 ms,
        a third of the database time per issue) buys nothing here, because
        the serial only matters once the certificate row that uses it is
        committed, and that commit is synchronous and flushes the WAL up to
        and including this increment. After a crash in between, the counter
        may give the same serial again, but no stored certificate has it.
        """
        with session_scope(self.sessions) as s:
            dialect = s.get_bind().dialect.name
            if dialect == "postgresql":
                s.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = (
                insert(SerialCounter)
                .values(issuer_uscc=uscc, type_code=type_code, last=1)
                .on_conflict_do_update(
                    index_elements=["issuer_uscc", "type_code"], set_={"last": SerialCounter.last + 1}
                )
                .returning(SerialCounter.last)
            )
            return int(s.execute(stmt).scalar_one())

    def _allocate_pg(self, uscc: str, type_code: str) -> tuple[int, Slot | None]:
        """:meth:`_allocate_serial` and :meth:`StatusListService.allocate` in one PostgreSQL statement.

        Sent in autocommit mode, it is one round trip instead of twelve
        (two transactions, each with its pre-ping, ``BEGIN``, ``SET LOCAL``
        and ``COMMIT``); like them it commits without waiting for the WAL
        flush (``set_config(..., true)`` for its own transaction), for the
        reason given at :meth:`_allocate_serial`. The status-list position
        is drawn as there (``secrets``; the modulo bias of a 62-bit draw is
        below 2⁻⁴⁴). When the issuer has no open list yet, or the drawn
        position is taken, the slot comes back empty and
        :meth:`StatusListService.allocate` draws it (the serial stays).
        """
        params = {
            "uscc": uscc,
            "type_code": type_code,
            "fill": FILL_LIMIT,
            "draw": secrets.randbits(62),
            "now": _utcnow(),
        }
        with autocommit(self.sessions) as conn:
            serial, list_id, index, _ = conn.execute(_ALLOCATE_PG, params).one()
        slot = Slot(str(list_id), int(index)) if list_id is not None else None
        return int(serial), slot

    def _signer(self, uscc: str) -> Any:
        """The agency's signer, cached until ``keys.pki`` replaces or revokes it."""
        stamp = pki.signer_stamp(self.keyring, uscc)
        with self._lock:
            cached = self._signers.get(uscc)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            signer = self.keyring.agency_signer(uscc)
        except KeyNotFound:
            raise ServiceUnavailable(
                "the issuer has no valid signer certificate (run: certstore issuers add)",
                field="issuer",
            ) from None
        with self._lock:
            self._signers[uscc] = (stamp, signer)
        return signer

    def _render_and_sign(
        self, p: _Prepared, *, cid: str, qr_text: str, issued_at: dt.datetime, signer: Any
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
            issued_at=_china_date(issued_at),
            valid_from=p.valid_from,
            valid_until=p.valid_until,
            fields=rows,
            issuer_uscc=p.issuer.uscc,
            accent=spec.layout.accent if spec.layout else "#1F4E79",
            **labels,
        )
        try:
            pdf = signing.pdf.render_certificate_pdf(doc)
            if self.settings.tsa_url:
                # B-LT: the timestamp plus the chain's CRL embedded, so the PDF verifies offline for years.
                vc = signing.pades.make_validation_context(
                    self._trust_roots(),
                    crls=[pki.current_crl(self.keyring)],
                    other_certs=list(signer.chain),
                )
                return signing.pades.sign_pdf(
                    pdf, signer, timestamper_url=self.settings.tsa_url, validation_context=vc
                )
            return signing.pades.sign_pdf(pdf, signer)
        except SigningError as e:
            logger.warning("signing %s failed: %s", cid, e)
            raise ServiceUnavailable(f"the certificate could not be signed: {e}") from e

    def _trust_roots(self) -> list[x509.Certificate]:
        """The region root, plus the TSA's root(s) when timestamps are configured."""
        roots = [pki.region_root(self.keyring)]
        path = self.settings.tsa_root_file
        if path is not None:
            if self._tsa_roots is None:
                try:
                    self._tsa_roots = x509.load_pem_x509_certificates(path.read_bytes())
                except (OSError, ValueError) as e:
                    raise ServiceUnavailable(f"the TSA root file {path} cannot be read: {e}") from None
            roots += self._tsa_roots
        return roots

    # -- reading -----------------------------------------------------------

    def _view(self, row: Certificate, spec: CertificateType | None = None, issuer: IssuerInfo | None = None) -> CertificateView:
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
            issued_at=_aware(row.issued_at),
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

    def _find(self, s: Session, identifier: str) -> Certificate:
        try:
            text = str(parse_identifier(identifier))
        except ValueError:
            raise NotFound("there is no certificate with that identifier", field="identifier") from None
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == text))
        if row is None:
            raise NotFound("there is no certificate with that identifier", field="identifier")
        return row

    def get(self, identifier: str, *, agency_uscc: str | None = None) -> CertificateView:
        """One certificate; with ``agency_uscc`` only that agency's own."""
        with self.sessions() as s:
            row = self._find(s, identifier)
            if agency_uscc is not None and row.issuer_uscc != agency_uscc:
                raise NotFound("there is no certificate with that identifier", field="identifier")
            return self._view(row)

    def pdf(self, identifier: str, *, agency_uscc: str | None = None) -> bytes:
        with self.sessions() as s:
            row = self._find(s, identifier)
            if agency_uscc is not None and row.issuer_uscc != agency_uscc:
                raise NotFound("there is no certificate with that identifier", field="identifier")
            return bytes(row.pdf)

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
        stmt = stmt.limit(max(1, min(limit, 500))).offset(max(0, offset))
        with self.sessions() as s:
            return [self._view(r) for r in s.scalars(stmt)]

    def holder_code(self, identifier: str, *, agency_uscc: str) -> str:
        """The unmasked holder code, for the issuing agency only."""
        with self.sessions() as s:
            row = self._find(s, identifier)
            if row.issuer_uscc != agency_uscc:
                raise NotFound("there is no certificate with that identifier", field="identifier")
            return self.keyring.pii().decrypt(row.holder_code_enc, purpose=PII_PURPOSE)

    # -- verification ------------------------------------------------------

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
                public_claims = _public_claims(claims)
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
                    view = self._view(row)
                    checks.append(_status_check(row.status))
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
            roots = self._trust_roots()
            crls = [pki.current_crl(self.keyring)]
        except KeyNotFound:
            raise ServiceUnavailable("this deployment has no region CA yet (run: certstore init)") from None
        try:
            # Byte counts first: a hostile file is refused in milliseconds, before it takes a slot.
            signing.pades.check_pdf_bounds(bytes(pdf), self.pdf_limits)
            with self._pdf_slots():
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
            if row is None:
                checks.append(
                    Check("record", False, "no certificate in this registry has this exact PDF (changed after issue?)")
                )
            else:
                view = self._view(row)
                checks.append(Check("record", True, ""))
                checks.append(_status_check(row.status))
        valid = bool(outcome.valid) and all(c.ok for c in checks)
        return VerificationResult("pdf", valid, checks, view)

    def verify_file(self, data: bytes) -> VerificationResult:
        """Verify an uploaded PDF, or the QR code in an uploaded image."""
        if bytes(data[:1024]).lstrip().startswith(b"%PDF-"):
            return self.verify_pdf(data)
        check_image(data)  # header bounds first: a hostile image is refused without taking a slot
        with self._image_slots():
            texts = decode_qr_image(data)
        return self.verify_qr(texts[0])


RETRY_AFTER_SECONDS = 5


class _Slots:
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


_ALLOCATE_PG = sa.text(
    """
WITH serial AS (
    INSERT INTO cert_serials AS c (issuer_uscc, type_code, last) VALUES (:uscc, :type_code, 1)
    ON CONFLICT (issuer_uscc, type_code) DO UPDATE SET last = c.last + 1
    RETURNING c.last
), open_list AS (
    SELECT id, size FROM cert_status_lists
    WHERE issuer_uscc = :uscc AND used < size * CAST(:fill AS double precision)
    ORDER BY id LIMIT 1
), slot AS (
    INSERT INTO cert_status_slots (list_id, idx, created_at)
    SELECT id, mod(CAST(:draw AS bigint), size), :now FROM open_list
    ON CONFLICT (list_id, idx) DO NOTHING
    RETURNING list_id, idx
), counted AS (
    UPDATE cert_status_lists SET used = used + 1 WHERE id IN (SELECT list_id FROM slot)
)
SELECT (SELECT last FROM serial), (SELECT list_id FROM slot), (SELECT idx FROM slot),
       set_config('synchronous_commit', 'off', true)
"""
)
"""Serial counter bump and status-list position in one statement (:meth:`CertificateService._allocate_pg`)."""


@functools.cache
def _store_statement(with_idempotency: bool) -> sa.Select[Any]:
    """``INSERT`` of a certificate with its audit event (and idempotency record) as CTEs.

    Built once per shape, with named bind parameters (``c_``, ``a_``, ``i_``
    plus the column name), so SQLAlchemy and psycopg reuse the compiled and
    prepared statement.
    """
    cert = cast(sa.Table, Certificate.__table__)
    audit = cast(sa.Table, AuditEvent.__table__)
    c = (
        sa.insert(cert)
        .values({col.name: sa.bindparam(f"c_{col.name}", type_=col.type) for col in cert.c if col.name != "id"})
        .returning(cert.c.id)
        .cte("new_certificate")
    )
    a = (
        sa.insert(audit)
        .values({col.name: sa.bindparam(f"a_{col.name}", type_=col.type) for col in audit.c if col.name != "id"})
        .cte("new_audit")
    )
    stmt = sa.select(c.c.id).add_cte(a)
    if with_idempotency:
        idem = cast(sa.Table, IdempotencyRecord.__table__)
        i = (
            sa.insert(idem)
            .from_select(
                ["issuer_uscc", "key", "request_sha256", "created_at", "certificate_id"],
                sa.select(
                    sa.bindparam("i_issuer_uscc", type_=idem.c.issuer_uscc.type),
                    sa.bindparam("i_key", type_=idem.c.key.type),
                    sa.bindparam("i_request_sha256", type_=idem.c.request_sha256.type),
                    sa.bindparam("i_created_at", type_=idem.c.created_at.type),
                    c.c.id,
                ),
            )
            .cte("new_idempotency")
        )
        stmt = stmt.add_cte(i)
    return stmt


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _status_check(status: str) -> Check:
    if status == STATUS_VALID:
        return Check("status", True, "")
    zh, en = STATUS_CODES.get(status, ("?", "unknown"))
    return Check("status", False, f"the certificate is {en} ({zh}, status {status})")


def _public_claims(claims: Any) -> dict[str, Any]:
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
