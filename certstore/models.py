"""certstore's tables (SQLAlchemy 2 declarative models).

The columns follow docs/design.md: a certificate's holder code (a resident ID
number for a person) is never stored in clear — ``holder_code_index`` is the
keyed blind index that finds it, ``holder_code_enc`` the AEAD ciphertext,
``holder_code_masked`` what pages show. The signed PDF is stored with its
record in the same transaction; ``pdf_sha256`` lets a verifier's upload be
matched to its record.

Columns reserved for the lifecycle issue (status lists, batch issuance) are
nullable so they can be filled without a data migration.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "STATUS_CODES",
    "STATUS_VALID",
    "CertificateTypeRow",
    "Issuer",
    "Certificate",
    "SerialCounter",
    "IdempotencyRecord",
    "AuditEvent",
    "StatusListRow",
    "StatusSlot",
    "TrustImport",
    "AccessLog",
    "WalletLink",
    "BatchJob",
    "BatchRow",
]

# docs/design.md, domain reference: certificate status codes.
STATUS_CODES: dict[str, tuple[str, str]] = {
    "01": ("有效", "valid"),
    "02": ("暂扣", "suspended"),
    "03": ("撤销", "revoked"),
    "04": ("注销", "cancelled"),
    "05": ("失效", "expired"),
    "06": ("转出", "transferred out"),
    "07": ("吊销", "withdrawn"),
}
STATUS_VALID = "01"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: sa.JSON,
        list[str]: sa.JSON,
        dt.datetime: sa.DateTime(timezone=True),
    }


class CertificateTypeRow(Base):
    """A certificate type spec; ``spec`` is :meth:`CertificateType.to_dict`."""

    __tablename__ = "cert_types"

    code: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    name_zh: Mapped[str] = mapped_column(sa.String(100))
    name_en: Mapped[str] = mapped_column(sa.String(200))
    holder_code_type: Mapped[str] = mapped_column(sa.String(3))
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, onupdate=_utcnow)


class Issuer(Base):
    """An issuing agency, keyed by its unified social credit code."""

    __tablename__ = "cert_issuers"

    uscc: Mapped[str] = mapped_column(sa.String(18), primary_key=True)
    name_zh: Mapped[str] = mapped_column(sa.String(200))
    name_en: Mapped[str | None] = mapped_column(sa.String(200))
    region: Mapped[str] = mapped_column(sa.String(12))
    allowed_types: Mapped[list[str]] = mapped_column(default=list)
    client_id: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    """The idp client whose client-credentials tokens act for this issuer."""
    signer_cert_pem: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        sa.UniqueConstraint("issuer_uscc", "idempotency_key", name="uq_cert_idempotency"),
        sa.UniqueConstraint("issuer_uscc", "external_ref", name="uq_cert_external_ref"),
        sa.UniqueConstraint("issuer_uscc", "type_code", "serial", "version", name="uq_cert_serial"),
        sa.Index("ix_cert_holder", "holder_code_index"),
        sa.Index("ix_cert_pdf_sha256", "pdf_sha256"),
        sa.Index("ix_cert_status_list", "status_list"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    identifier: Mapped[str] = mapped_column(sa.String(120), unique=True)
    type_code: Mapped[str] = mapped_column(sa.ForeignKey("cert_types.code"))
    issuer_uscc: Mapped[str] = mapped_column(sa.ForeignKey("cert_issuers.uscc"))
    serial: Mapped[str] = mapped_column(sa.String(12))
    version: Mapped[int] = mapped_column(default=1)
    holder_code_type: Mapped[str] = mapped_column(sa.String(3))
    holder_code_index: Mapped[str] = mapped_column(sa.String(64))
    holder_code_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    holder_code_masked: Mapped[str] = mapped_column(sa.String(32))
    holder_name: Mapped[str] = mapped_column(sa.String(100))
    fields: Mapped[dict[str, Any]]
    issued_at: Mapped[dt.datetime]
    valid_from: Mapped[dt.date]
    valid_until: Mapped[dt.date | None]
    status: Mapped[str] = mapped_column(sa.String(2), default="01")
    paper_serial: Mapped[str | None] = mapped_column(sa.String(64))
    pdf: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    pdf_sha256: Mapped[str] = mapped_column(sa.String(64))
    qr_text: Mapped[str] = mapped_column(sa.Text)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    external_ref: Mapped[str | None] = mapped_column(sa.String(200))
    """Batch issuance's idempotency (issue 6)."""
    status_list: Mapped[str | None] = mapped_column(sa.String(200))
    status_index: Mapped[int | None]
    supersedes: Mapped[str | None] = mapped_column(sa.String(120))

    issuer: Mapped[Issuer] = relationship(lazy="joined")
    type: Mapped[CertificateTypeRow] = relationship(lazy="joined")


class SerialCounter(Base):
    """The last serial handed out per issuer and type (see ``service._allocate_serial``)."""

    __tablename__ = "cert_serials"

    issuer_uscc: Mapped[str] = mapped_column(sa.ForeignKey("cert_issuers.uscc"), primary_key=True)
    type_code: Mapped[str] = mapped_column(sa.ForeignKey("cert_types.code"), primary_key=True)
    last: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class IdempotencyRecord(Base):
    """``Idempotency-Key`` of an accepted issue request and the hash of its body."""

    __tablename__ = "cert_idempotency"

    issuer_uscc: Mapped[str] = mapped_column(sa.ForeignKey("cert_issuers.uscc"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(sa.String(64))
    certificate_id: Mapped[int] = mapped_column(sa.ForeignKey("certificates.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class PdfHistory(Base):
    """Earlier versions of a certificate's stored PDF (issue 15 §3).

    The archive-timestamp renewal (:mod:`certstore.ltv`) replaces the stored
    PDF by an incremental update of it; copies a holder downloaded before stay
    the same signed document, so verification recognises their hashes here.
    """

    __tablename__ = "cert_pdf_history"
    __table_args__ = (sa.Index("ix_cert_pdf_history_sha256", "pdf_sha256"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    certificate_id: Mapped[int] = mapped_column(sa.ForeignKey("certificates.id", ondelete="CASCADE"))
    pdf_sha256: Mapped[str] = mapped_column(sa.String(64))
    replaced_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class AuditEvent(Base):
    """Append-only log of what was done, by whom (never an unmasked ID number)."""

    __tablename__ = "cert_audit"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(40))
    subject: Mapped[str | None] = mapped_column(sa.String(120))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# -- lifecycle, status lists, trust lists, wallet (issue 6) ------------------------


class StatusListRow(Base):
    """One IETF Token Status List of an issuer (``certstore.statuslists``).

    The bits are not stored: the list is rebuilt from the certificates that
    point into it whenever ``version`` (bumped in the same transaction as every
    status change) differs from ``token_version``, and the signed token kept.
    """

    __tablename__ = "cert_status_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_uscc: Mapped[str] = mapped_column(sa.ForeignKey("cert_issuers.uscc"), index=True)
    size: Mapped[int]
    bits: Mapped[int] = mapped_column(default=2)
    used: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    token: Mapped[str | None] = mapped_column(sa.Text)
    token_version: Mapped[int] = mapped_column(default=0)
    token_iat: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class StatusSlot(Base):
    """A position taken in a status list; the primary key makes reuse impossible."""

    __tablename__ = "cert_status_slots"

    list_id: Mapped[int] = mapped_column(sa.ForeignKey("cert_status_lists.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class TrustImport(Base):
    """Another region's trust list as imported (``certstore trust import``), re-verified on load."""

    __tablename__ = "cert_trust_imports"

    region: Mapped[str] = mapped_column(sa.String(12), primary_key=True)
    region_name: Mapped[str] = mapped_column(sa.String(200))
    document: Mapped[str] = mapped_column(sa.Text)
    anchor_pem: Mapped[str] = mapped_column(sa.Text)
    next_update: Mapped[dt.datetime]
    imported_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class AccessLog(Base):
    """Who read a citizen's certificates, when and why (shown in the wallet)."""

    __tablename__ = "cert_access_log"
    __table_args__ = (sa.Index("ix_cert_access_holder", "holder_code_index", "at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    holder_code_index: Mapped[str] = mapped_column(sa.String(64))
    client_id: Mapped[str] = mapped_column(sa.String(200))
    client_name: Mapped[str | None] = mapped_column(sa.String(200))
    via: Mapped[str] = mapped_column(sa.String(20))
    """``wallet``, ``consent`` (certs:read) or ``lookup`` (certs:lookup)."""
    purpose: Mapped[str | None] = mapped_column(sa.String(500))
    identifiers: Mapped[list[str]] = mapped_column(default=list)


class WalletLink(Base):
    """The idp ``sub`` certstore received at wallet sign-in, linked to the holder's blind index."""

    __tablename__ = "cert_wallet_links"

    sub: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    holder_code_index: Mapped[str] = mapped_column(sa.String(64), index=True)
    linked_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)


class BatchJob(Base):
    """One ``certstore issue-batch`` run (rows in :class:`BatchRow`), written before any job is queued."""

    __tablename__ = "cert_batch_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_uscc: Mapped[str] = mapped_column(sa.ForeignKey("cert_issuers.uscc"))
    type_code: Mapped[str] = mapped_column(sa.ForeignKey("cert_types.code"))
    source: Mapped[str] = mapped_column(sa.String(300))
    total: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    finished_at: Mapped[dt.datetime | None]


class BatchRow(Base):
    """One CSV row: its data sealed (it holds an ID number), then its outcome."""

    __tablename__ = "cert_batch_rows"

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("cert_batch_jobs.id"), primary_key=True)
    row_no: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    external_ref: Mapped[str] = mapped_column(sa.String(200))
    data_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    state: Mapped[str] = mapped_column(sa.String(12), default="pending")
    """``pending``, ``issued``, ``existing`` (issued by an earlier run) or ``failed``."""
    identifier: Mapped[str | None] = mapped_column(sa.String(120))
    error: Mapped[str | None] = mapped_column(sa.String(500))
