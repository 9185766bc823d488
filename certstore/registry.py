"""Certificate types and issuers: adding, listing and loading them.

Types and issuers change rarely and are read on every issue and verify, so
:class:`Registry` keeps a short-lived in-process cache (``ttl`` seconds) that
its own writes invalidate; other processes see a change within ``ttl``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from keys import pki
from keys.certs import certificate_pem, load_pem_certificate
from keys.errors import InvalidIdentifier, KeyNotFound
from keys.identifiers import parse_uscc
from keys.keyring import Keyring

from .db import session_scope
from .errors import InvalidInput, NotFound
from .models import AuditEvent, CertificateTypeRow, Issuer
from .types import CertificateType, parse_type

__all__ = ["Registry", "IssuerInfo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuerInfo:
    uscc: str
    name_zh: str
    name_en: str | None
    region: str
    allowed_types: tuple[str, ...]
    client_id: str | None
    certificate: x509.Certificate | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uscc": self.uscc,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "region": self.region,
            "allowed_types": list(self.allowed_types),
            "signer_certificate": certificate_pem(self.certificate)
            if self.certificate
            else None,
            "not_after": self.certificate.not_valid_after_utc.isoformat() if self.certificate else None,
        }


def _info(row: Issuer) -> IssuerInfo:
    cert = load_pem_certificate(row.signer_cert_pem) if row.signer_cert_pem else None
    return IssuerInfo(
        uscc=row.uscc,
        name_zh=row.name_zh,
        name_en=row.name_en,
        region=row.region,
        allowed_types=tuple(row.allowed_types or ()),
        client_id=row.client_id,
        certificate=cert,
    )


class Registry:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._keyring = keyring
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._types: dict[str, CertificateType] | None = None
        self._issuers: dict[str, IssuerInfo] | None = None
        self._loaded_at = 0.0
        self.generation = 0
        """Bumped on every reload, so callers can cache what they derive from it."""

    # -- cache -------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._types = None
            self._issuers = None

    def _load(self) -> tuple[dict[str, CertificateType], dict[str, IssuerInfo]]:
        with self._lock:
            if self._types is not None and self._issuers is not None and self._clock() - self._loaded_at < self._ttl:
                return self._types, self._issuers
        with self._sessions() as s:
            types = {r.code: parse_type(r.spec) for r in s.scalars(sa.select(CertificateTypeRow))}
            issuers = {r.uscc: _info(r) for r in s.scalars(sa.select(Issuer))}
        with self._lock:
            self._types, self._issuers, self._loaded_at = types, issuers, self._clock()
            self.generation += 1
        return types, issuers

    # -- types -------------------------------------------------------------

    def types(self) -> list[CertificateType]:
        return sorted(self._load()[0].values(), key=lambda t: t.code)

    def get_type(self, code: str) -> CertificateType:
        t = self._load()[0].get(code) if isinstance(code, str) else None
        if t is None:
            raise NotFound(f"there is no certificate type {str(code)[:24]!r}", field="type")
        return t

    def add_type(self, spec: CertificateType, *, actor: str = "cli") -> bool:
        """Store ``spec``; returns ``True`` when it was new, ``False`` when it replaced one."""
        with session_scope(self._sessions) as s:
            row = s.get(CertificateTypeRow, spec.code)
            created = row is None
            if row is None:
                row = CertificateTypeRow(code=spec.code)
                s.add(row)
            elif row.holder_code_type != spec.holder_code_type:
                raise InvalidInput(
                    f"type {spec.code} exists with holder code type {row.holder_code_type}; "
                    "the holder code type of a type cannot change",
                    field="holder_code_type",
                )
            row.name_zh, row.name_en = spec.name_zh, spec.name_en
            row.holder_code_type = spec.holder_code_type
            row.spec = spec.to_dict()
            s.add(AuditEvent(actor=actor, action="type.add" if created else "type.update", subject=spec.code))
        self.invalidate()
        logger.info("certificate type %s %s", spec.code, "added" if created else "updated")
        return created

    # -- issuers -----------------------------------------------------------

    def issuers(self) -> list[IssuerInfo]:
        return sorted(self._load()[1].values(), key=lambda i: i.uscc)

    def get_issuer(self, uscc: str) -> IssuerInfo:
        info = self._load()[1].get(uscc) if isinstance(uscc, str) else None
        if info is None:
            raise NotFound("there is no issuer with that credit code", field="issuer")
        return info

    def issuer_for_client(self, client_id: str) -> IssuerInfo | None:
        for info in self._load()[1].values():
            if info.client_id is not None and info.client_id == client_id:
                return info
        return None

    def add_issuer(
        self,
        *,
        uscc: str,
        name_zh: str,
        region: str,
        name_en: str | None = None,
        types: Iterable[str] = (),
        client_id: str | None = None,
        actor: str = "cli",
    ) -> IssuerInfo:
        """Create or update an issuer and make sure it has a signer certificate.

        The certificate comes from the region's issuing CA (``keys.pki``); an
        existing valid one is kept, so running this twice changes nothing.
        """
        try:
            code, _ = parse_uscc(uscc, strict=True)
        except InvalidIdentifier as e:
            raise InvalidInput(f"uscc: {e}", field="uscc") from None
        if not name_zh or not name_zh.strip():
            raise InvalidInput("the issuer needs a name", field="name")
        if not region or not region.isalnum() or len(region) > 12:
            raise InvalidInput("region must be a short code such as 110000", field="region")
        type_list = list(dict.fromkeys(types))
        self.invalidate()  # a type added by another process a moment ago counts
        known = self._load()[0]
        for t in type_list:
            if t not in known:
                raise InvalidInput(f"there is no certificate type {t!r}; add it first", field="type")
        try:
            signer = self._keyring.agency_signer(code)
        except KeyNotFound:
            signer = pki.issue_signer(self._keyring, uscc=code, name=name_zh.strip())
        pem = certificate_pem(signer.certificate)
        with session_scope(self._sessions) as s:
            row = s.get(Issuer, code)
            created = row is None
            if row is None:
                row = Issuer(uscc=code, allowed_types=[])
                s.add(row)
            row.name_zh = name_zh.strip()
            if name_en is not None:
                row.name_en = name_en.strip() or None
            row.region = region
            if type_list:
                row.allowed_types = sorted(set(row.allowed_types or []) | set(type_list))
            if client_id is not None:
                other = s.scalar(sa.select(Issuer).where(Issuer.client_id == client_id, Issuer.uscc != code))
                if other is not None:
                    raise InvalidInput("that client id is already linked to another issuer", field="client_id")
                row.client_id = client_id or None
            row.signer_cert_pem = pem
            s.add(
                AuditEvent(
                    actor=actor,
                    action="issuer.add" if created else "issuer.update",
                    subject=code,
                    detail={"types": sorted(row.allowed_types), "client_id": row.client_id},
                )
            )
            info = _info(row)
        self.invalidate()
        return info
