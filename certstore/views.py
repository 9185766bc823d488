"""Plain-data views of certificates and verification results.

What the API returns, the CLI prints and the verify page shows, built from
database rows by :mod:`certstore.service`. Nothing here carries an unmasked
ID number: the holder code is always the masked form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keys.identifiers import HOLDER_CODE_RESIDENT_ID

__all__ = [
    "Check",
    "CertificateView",
    "VerificationResult",
    "mask_name",
    "checks_from",
]


def mask_name(name: str) -> str:
    """A person's name partly hidden for public pages: 张三丰 → 张*丰, 张三 → 张*."""
    n = name.strip()
    if len(n) <= 1:
        return "*" * len(n)
    if len(n) == 2:
        return n[0] + "*"
    return n[0] + "*" * (len(n) - 2) + n[-1]


@dataclass(frozen=True)
class Check:
    """One named verification step and, when it failed, why."""

    name: str
    ok: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason}


def checks_from(items: Iterable[Any]) -> list[Check]:
    """Copy ``signing``'s check objects (``name``/``ok``/``reason``) into ours."""
    return [Check(str(c.name), bool(c.ok), str(getattr(c, "reason", "") or "")) for c in items]


@dataclass(frozen=True)
class CertificateView:
    identifier: str
    type_code: str
    type_name_zh: str
    type_name_en: str
    issuer_uscc: str
    issuer_name_zh: str
    issuer_name_en: str | None
    holder_code_type: str
    holder_code_masked: str
    holder_name: str
    fields: dict[str, Any]
    issued_at: dt.datetime
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    status_zh: str
    status_en: str
    version: int
    serial: str
    paper_serial: str | None
    pdf_sha256: str
    qr_text: str

    @property
    def holder_name_public(self) -> str:
        """The name as the public verify page shows it (persons masked, companies whole)."""
        if self.holder_code_type == HOLDER_CODE_RESIDENT_ID:
            return mask_name(self.holder_name)
        return self.holder_name

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "type": {"code": self.type_code, "name_zh": self.type_name_zh, "name_en": self.type_name_en},
            "issuer": {"uscc": self.issuer_uscc, "name_zh": self.issuer_name_zh, "name_en": self.issuer_name_en},
            "holder": {
                "name": self.holder_name,
                "code_type": self.holder_code_type,
                "code_masked": self.holder_code_masked,
            },
            "fields": dict(self.fields),
            "issued_at": self.issued_at.isoformat(),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "status": {"code": self.status, "zh": self.status_zh, "en": self.status_en},
            "version": self.version,
            "serial": self.serial,
            "paper_serial": self.paper_serial,
            "pdf_sha256": self.pdf_sha256,
            "qr_text": self.qr_text,
        }

    def to_public_dict(self) -> dict[str, Any]:
        """For verifiers: no fields, the name masked for persons."""
        d = self.to_dict()
        d["holder"]["name"] = self.holder_name_public
        for k in ("fields", "qr_text", "paper_serial", "serial"):
            d.pop(k)
        return d


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of verifying a QR payload or a PDF."""

    kind: str
    """``qr`` or ``pdf``."""
    valid: bool
    checks: list[Check]
    certificate: CertificateView | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    """What the QR payload says (for QR verifications), holder name masked for persons."""

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "valid": self.valid,
            "checks": [c.to_dict() for c in self.checks],
            "certificate": self.certificate.to_public_dict() if self.certificate else None,
            "claims": self.claims,
        }
