"""This region's trust list (export) and other regions' (import), merged for verifiers.

Export: the local issuers with a signer certificate, the issuing CA, the
types they may issue, and this deployment's status-list base URL, signed by
the region root (:func:`signing.trustlist.export_trust_list`).

Import: a region's trust list file, its root certificate and what was agreed
with that region (the certificate types it may vouch for, the area its
agencies are registered in), all obtained out of band: the *anchor* and the
*agreement*. The document is verified against both
(:func:`signing.trustlist.import_trust_list`) and refused whole when any
issuer in it carries the credit code of a local agency, or of an agency
another imported region already vouches for: trust does not travel sideways
(docs/design.md, "Boundaries"). It is stored with its anchor; it
is verified again every time it is loaded, so an import that has passed its
``next_update`` stops counting by itself (with a warning in the log) until a
current list is imported.

:meth:`TrustStore.merged` is what every verifier here uses: local issuers
plus every imported region's issuers, with, per signer key, the base URL of
the status lists to ask. An imported key never shadows or joins a local
issuer: an imported entry with a local credit code (an agency added locally
after the import) or one another region already lists is left out, with a
warning in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from keys import pki
from keys.certs import certificate_der, certificate_pem, load_pem_certificate
from keys.errors import KeyNotFound
from keys.keyring import Keyring
from signing.qr import TrustedIssuer, TrustList, qr_kid
from signing.trustlist import (
    Agreement,
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
        """Where ``list_id`` (from a QR code) lives: on the host the issuer's region registered, or nowhere.

        Raises :class:`certstore.remote.InvalidListId` for an id that is not
        ``[A-Za-z0-9_-]{1,64}`` or would leave that host (issue 11 §11).
        """
        from .remote import status_list_url

        base = self.status_base.get(issuer.kid)
        return None if base is None else status_list_url(base, list_id)


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
        self._warned: set[tuple[str, str]] = set()

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

    def import_(
        self,
        text: str,
        anchor_pem: bytes,
        *,
        types: Iterable[str] | None,
        uscc_areas: Iterable[str] | None = None,
        actor: str = "cli",
    ) -> RegionTrustList:
        """Verify and store another region's list.

        ``types``: the certificate types agreed with that region (required: a
        region vouches for nothing it was not asked to). ``uscc_areas``: the
        division-code prefixes its agencies may be registered under (default:
        the region's own code, :func:`signing.trustlist.region_areas`).
        """
        try:
            anchor = load_pem_certificate(anchor_pem)
        except ValueError:
            raise InvalidInput("the anchor is not a PEM certificate", field="anchor") from None
        agreed = sorted({t.strip() for t in types or () if t.strip()})
        if not agreed:
            raise InvalidInput(
                "name the certificate types agreed with that region (--types JZZM,YYZZ)",
                field="types",
                code="trust_agreement",
            )
        areas = None if uscc_areas is None else tuple(a.strip() for a in uscc_areas if a.strip())
        if areas is not None and (not areas or not all(a.isascii() and a.isdigit() and len(a) <= 6 for a in areas)):
            raise InvalidInput("an area is 1 to 6 digits of a division code (e.g. 31)", field="uscc_areas")
        agreement = Agreement(frozenset(agreed), areas)
        try:
            doc = import_trust_list(text, [anchor], now=self.clock(), agreement=agreement)
        except TrustListError as e:
            raise InvalidInput(f"trust list refused: {e}", field="file", code=f"trust_{e.reason}") from None
        if doc.region == self.settings.region:
            raise InvalidInput(
                f"the list names region {doc.region}, which is this region: refused", field="file", code="trust_local"
            )
        self._refuse_sideways(doc)
        try:
            own = pki.region_root(self.keyring)
        except KeyNotFound:
            own = None
        if own is not None and certificate_der(own) == certificate_der(anchor):
            raise InvalidInput("this is this region's own trust list; import other regions' lists", field="file")
        with session_scope(self.sessions) as s:
            row = s.get(TrustImport, doc.region)
            if row is not None and row.anchor_pem.strip() != certificate_pem(anchor).strip():
                # Another root may not take over a region already trusted: a new root is
                # an out-of-band event (remove the region first, then import).
                raise InvalidInput(
                    f"region {doc.region} was imported with another root; if its root really changed, "
                    f"run: certstore trust remove {doc.region}, then import again",
                    field="anchor",
                    code="trust_anchor_changed",
                )
            if row is None:
                row = TrustImport(region=doc.region)
                s.add(row)
            row.region_name = doc.region_name
            row.document = text.strip()
            row.anchor_pem = certificate_pem(anchor)
            row.next_update = doc.next_update
            row.imported_at = self.clock()
            s.add(
                AuditEvent(
                    actor=actor,
                    action="trust.import",
                    subject=doc.region,
                    detail={
                        "issuers": [i.uscc for i in doc.issuers],
                        "next_update": doc.next_update.isoformat(),
                        "agreed_types": agreed,
                        "uscc_areas": list(agreement.areas(doc.region)),
                    },
                )
            )
        with self._lock:
            self._imports = None
        logger.info("imported trust list of region %s (%d issuers)", doc.region, len(doc.issuers))
        return doc

    def _refuse_sideways(self, doc: RegionTrustList) -> None:
        """An imported issuer may not carry a local agency's credit code, nor one another region lists."""
        local = {i.uscc for i in self.registry.issuers()}
        for listed in doc.issuers:
            if listed.uscc in local:
                raise InvalidInput(
                    f"trust list refused: region {doc.region} lists {listed.uscc}, an agency of this region",
                    field="file",
                    code="trust_local_issuer",
                )
        for other in self.imported():
            if other.region == doc.region:
                continue
            theirs = {i.uscc for i in other.issuers}
            for listed in doc.issuers:
                if listed.uscc in theirs:
                    raise InvalidInput(
                        f"trust list refused: region {doc.region} lists {listed.uscc}, "
                        f"which region {other.region} already vouches for",
                        field="file",
                        code="trust_foreign_issuer",
                    )

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
                anchor = load_pem_certificate(r.anchor_pem)
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
        # Credit code -> the region that speaks for it; local agencies (with or
        # without a signer certificate) are this region's whatever any list says.
        owner: dict[str, str] = {i.uscc: self.settings.region for i in self.registry.issuers()}
        for i in issuers:
            owner.setdefault(i.uscc, self.settings.region)
        for doc in self.imported(session):
            if doc.region == self.settings.region:
                continue
            regions.append(doc.region)
            for listed in doc.issuers:
                t = listed.trusted(doc.region)
                claimed = owner.setdefault(listed.uscc, doc.region)
                if claimed != doc.region or t.kid in base:
                    self._warn_left_out(doc.region, listed.uscc, claimed)
                    continue
                issuers.append(t)
                base[qr_kid(listed.certificate)] = doc.status_list_base_url
        return MergedTrust(TrustList(issuers), base, tuple(regions))

    def _warn_left_out(self, region: str, uscc: str, owner: str) -> None:
        key = (region, uscc)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(
            "imported issuer %s of region %s left out: its credit code or key is already vouched for by region %s", uscc, region, owner
        )
