"""The issuer's log: which credential was issued for which certificate, to which holder key, how.

One row per credential (a batch of five is five rows): the certificate, the
credential configuration, the RFC 7638 thumbprint of the holder key the
credential is bound to, the flow (``pre-authorized_code`` or
``authorization_code``), the wallet's client id when it has one, and the time.
No claim value is stored: the certificate row already holds them, and the
holder key's thumbprint is what a later investigation needs to tie a
presented credential to this issuance. Table ``cert_vc_issued`` (migration
0004).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from ..db import session_scope
from ..models import AuditEvent, Base

__all__ = ["IssuedCredentialRow", "IssueRecord", "record_issued", "issued_for"]


class IssuedCredentialRow(Base):
    __tablename__ = "cert_vc_issued"
    __table_args__ = (sa.Index("ix_cert_vc_issued_certificate", "certificate_id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    certificate_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("certificates.id", ondelete="CASCADE")
    )
    configuration_id: Mapped[str] = mapped_column(sa.String(64))
    holder_jkt: Mapped[str] = mapped_column(sa.String(64))
    """RFC 7638 SHA-256 thumbprint of the holder key (``cnf.jwk``)."""
    flow: Mapped[str] = mapped_column(sa.String(24))
    client_id: Mapped[str | None] = mapped_column(sa.String(200))
    issued_at: Mapped[dt.datetime]


@dataclass(frozen=True)
class IssueRecord:
    certificate_id: int
    identifier: str
    configuration_id: str
    holder_jkts: tuple[str, ...]
    flow: str
    client_id: str | None
    at: dt.datetime


def record_issued(sessions: sessionmaker[Session], record: IssueRecord) -> None:
    """One row per credential and one audit event for the request, in one transaction."""
    with session_scope(sessions) as s:
        for jkt in record.holder_jkts:
            s.add(IssuedCredentialRow(
                certificate_id=record.certificate_id, configuration_id=record.configuration_id,
                holder_jkt=jkt, flow=record.flow, client_id=record.client_id, issued_at=record.at,
            ))
        s.add(AuditEvent(
            at=record.at, actor=f"client:{record.client_id}" if record.client_id else "wallet",
            action="certificate.vc_issue", subject=record.identifier,
            detail={"flow": record.flow, "configuration": record.configuration_id, "count": len(record.holder_jkts)},
        ))


def issued_for(sessions: sessionmaker[Session], certificate_ids: Iterable[int]) -> list[IssuedCredentialRow]:
    ids = list(certificate_ids)
    with sessions() as s:
        rows = s.scalars(
            sa.select(IssuedCredentialRow).where(IssuedCredentialRow.certificate_id.in_(ids))
            .order_by(IssuedCredentialRow.id)
        ).all()
        s.expunge_all()
        return list(rows)
