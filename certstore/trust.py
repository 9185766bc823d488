"""This region's trust list (export) and other regions' (import), merged for verifiers.

Export: the local issuers with a signer certificate, the issuing CA, the
types they may issue, and this deployment's status-list base URL, signed by
the region root (:func:`signing.trustlist.export_trust_list`).

Import: a region's trust list file and its root certificate, which the
operator obtained out of band (the *anchor*). The document is verified
(:func:`signing.trustlist.import_trust_list`) and stored with its anchor; it
is verified again every time it is loaded, so an import that has passed its
``next_update`` stops counting by itself (with a warning in the log) until a
current list is imported.

:meth:`TrustStore.merged` is what every verifier here uses: local issuers
plus every imported region's issuers, with, per signer key, the base URL of
the status lists to ask.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session, sessionmaker

from keys import pki
from keys.errors import KeyNotFound
from keys.keyring import Keyring
from signing.qr import TrustedIssuer, TrustList, qr_kid
from signing.trustlist import (
    ListedIssuer,
    ListedType,
    RegionTrustList,
    TrustListError,
    export_trust_list,
    import_trust_list,
)

from .db import session_scope
from .errors import InvalidInput, ServiceUnavailable
from .models import AuditEvent, TrustImport
from .registry import Registry
from .settings import CertstoreSettings

__all__ = ["TrustStore", "MergedTrust", "TRUST_LIST_VALIDITY"]

logger = logging.getLogger(__name__)

TRUST_LIST_VALIDITY = dt.timedelta(days=30)
"""``next_update`` of an exported list: re-export and re-send before then."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MergedTrust:
    """Local and imported issuers, and where each signer's status lists live."""

    trust_list: TrustList
    status_base: dict[bytes, str]
    """QR ``kid`` -> status-list base URL of the signer's region."""
    regions: tuple[str, ...]

    def status_uri(self, issuer: TrustedIssuer, list_id: str) -> str | None:
        base = self.status_base.get(issuer.kid)
        return None if base is None else base + list_id


class TrustStore:
    def __init__(
        self,
        settings: CertstoreSettings,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        registry: Registry,
        *,
        status_base_url: str,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keyring = keyring
        self.registry = registry
        self.status_base_url = status_base_url
        self.clock = clock
        self._lock = threading.Lock()
        self._imports: tuple[object, list[RegionTrustList]] | None = None

    # -- export ------------------------------------------------------------

    def local_document(self) -> RegionTrustList:
        try:
            ca = pki.region_ca(self.keyring)
        except KeyNotFound:
            raise ServiceUnavailable("this deployment has no region CA yet (run: certstore init)") from None
        now = self.clock().replace(microsecond=0)
        issuers = []
        used_types: set[str] = set()
        for info in self.registry.issuers():
            if info.certificate is None or info.certificate.not_valid_after_utc < now:
                continue
            issuers.append(
                ListedIssuer(
                    uscc=info.uscc,
                    name_zh=info.name_zh,
                    name_en=info.name_en,
                    certificate=info.certificate,
                    allowed_types=tuple(info.allowed_types),
                )
            )
            used_types.update(info.allowed_types)
        types = tuple(
            ListedType(t.code, t.name_zh, t.name_en) for t in self.registry.types() if t.code in used_types
        )
        return RegionTrustList(
            region=ca.region,
            region_name=ca.name,
            issued_at=now,
            next_update=now + TRUST_LIST_VALIDITY,
            status_list_base_url=self.status_base_url,
            root=ca.root,
            issuers=tuple(issuers),
            intermediates=(ca.issuing,),
            types=types,
        )

    def export(self) -> str:
        """This region's trust list, signed by the region root (compact JWS text)."""
        doc = self.local_document()
        text = export_trust_list(doc, pki.root_signer(self.keyring))
        logger.info("exported trust list of region %s with %d issuers", doc.region, len(doc.issuers))
        return text

    # -- import ------------------------------------------------------------

    def import_(self, text: str, anchor_pem: bytes, *, actor: str = "cli") -> RegionTrustList:
        try:
            anchor = x509.load_pem_x509_certificate(anchor_pem)
        except ValueError:
            raise InvalidInput("the anchor is not a PEM certificate", field="anchor") from None
        try:
            doc = import_trust_list(text, [anchor], now=self.clock())
        except TrustListError as e:
            raise InvalidInput(f"trust list refused: {e}", field="file", code=f"trust_{e.reason}") from None
        try:
            own = pki.region_root(self.keyring)
        except KeyNotFound:
            own = None
        if own is not None and own.public_bytes(Encoding.DER) == anchor.public_bytes(Encoding.DER):
            raise InvalidInput("this is this region's own trust list; import other regions' lists", field="file")
        with session_scope(self.sessions) as s:
            row = s.get(TrustImport, doc.region)
            if row is None:
                row = TrustImport(region=doc.region)
                s.add(row)
            row.region_name = doc.region_name
            row.document = text.strip()
            row.anchor_pem = anchor.public_bytes(Encoding.PEM).decode()
            row.next_update = doc.next_update
            row.imported_at = self.clock()
            s.add(
                AuditEvent(
                    actor=actor,
                    action="trust.import",
                    subject=doc.region,
                    detail={"issuers": [i.uscc for i in doc.issuers], "next_update": doc.next_update.isoformat()},
                )
            )
        with self._lock:
            self._imports = None
        logger.info("imported trust list of region %s (%d issuers)", doc.region, len(doc.issuers))
        return doc

    def remove(self, region: str, *, actor: str = "cli") -> bool:
        with session_scope(self.sessions) as s:
            row = s.get(TrustImport, region)
            if row is None:
                return False
            s.delete(row)
            s.add(AuditEvent(actor=actor, action="trust.remove", subject=region, detail={}))
        with self._lock:
            self._imports = None
        return True

    def imported(self, session: Session | None = None) -> list[RegionTrustList]:
        """Every imported list that still verifies now (cached until the table changes).

        Each call reads only the table's ``(region, imported_at)`` stamp (another
        process may have imported or removed a list); the documents are read and
        verified again only when it changed. ``session``: run that query in the
        caller's session (one connection checkout per verification, not two).
        """
        if session is None:
            with self.sessions() as s:
                return self.imported(s)
        stamp_rows = session.execute(
            sa.select(TrustImport.region, TrustImport.imported_at).order_by(TrustImport.region)
        ).all()
        stamp = tuple((region, _aware(at).isoformat()) for region, at in stamp_rows)
        now = self.clock()
        with self._lock:
            cached = self._imports
        if cached is not None and cached[0] == stamp and all(d.next_update > now for d in cached[1]):
            return cached[1]
        rows = list(session.scalars(sa.select(TrustImport).order_by(TrustImport.region)))
        stamp = tuple((r.region, _aware(r.imported_at).isoformat()) for r in rows)
        docs = []
        for r in rows:
            try:
                anchor = x509.load_pem_x509_certificate(r.anchor_pem.encode())
                docs.append(import_trust_list(r.document, [anchor], now=now))
            except (TrustListError, ValueError) as e:
                logger.warning("imported trust list of region %s no longer counts: %s", r.region, e)
        with self._lock:
            self._imports = (stamp, docs)
        return docs

    def import_rows(self) -> list[TrustImport]:
        with self.sessions() as s:
            return list(s.scalars(sa.select(TrustImport).order_by(TrustImport.region)))

    # -- merged ------------------------------------------------------------

    def merged(self, local: TrustList, *, session: Session | None = None) -> MergedTrust:
        """``local`` (this region's issuers) plus every imported region's (``session``: see :meth:`imported`)."""
        issuers: list[TrustedIssuer] = list(local)
        base: dict[bytes, str] = {i.kid: self.status_base_url for i in issuers}
        regions = [self.settings.region]
        for doc in self.imported(session):
            regions.append(doc.region)
            for listed in doc.issuers:
                t = listed.trusted(doc.region)
                if t.kid in base:  # a key both local and imported: the local entry wins
                    continue
                issuers.append(t)
                base[qr_kid(listed.certificate)] = doc.status_list_base_url
        return MergedTrust(TrustList(issuers), base, tuple(regions))
