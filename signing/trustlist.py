"""Regional trust lists: how one region's certificates verify in another (issue 6, "Build" 6).

A region exports its issuers — credit code, names, signer certificate, the
certificate types each may issue — with the issuing CA certificates that link
them to the region root, the types the region issues, and the base URL of its
status lists. The document is a compact JWS (RFC 7515) with header::

    {"alg": "ES256", "kid": "<root key thumbprint>", "typ": "trustlist+jwt",
     "x5c": ["<region root certificate, base64 DER>"]}

signed by the region *root* key (through :func:`keys.jws.encode_jws`, so the
root can live in an HSM). The payload (JSON)::

    {"format": 1, "region": {"code": "110000", "name": "…"},
     "iat": …, "next_update": …, "status_list_base_url": "https://…/status-lists/",
     "types": [{"code": "JZZM", "name_zh": "…", "name_en": "…"}],
     "intermediates": ["<issuing CA, base64 DER>"],
     "issuers": [{"uscc": "…", "name_zh": "…", "name_en": "…", "allowed_types": ["JZZM"],
                  "certificate": "<signer certificate, base64 DER>"}]}

The importing region has configured the exporter's root certificate out of
band (its *trust anchor*). :func:`import_trust_list` accepts the document
only if every one of these holds, and otherwise raises
:class:`TrustListError` naming what failed:

* the ``x5c`` root is one of the anchors (byte for byte) and the JWS
  signature verifies with its key (joserfc); when the root names its region
  (``OU``, :func:`keys.pki.init_region`), the list is for that region;
* the list is within its validity (``iat`` … ``next_update``);
* every issuer certificate chains to that root through a listed issuing CA,
  is within its validity now, and carries the issuer's credit code (its
  ``organizationIdentifier`` and ``serialNumber``, :func:`keys.pki.issue_signer`):
  a certificate that names no credit code, or another one, cannot be listed
  under a credit code of the exporter's choosing;
* every issuer's allowed types are types the list itself declares;
* with an :class:`Agreement` (what the importing region agreed with the
  exporter, out of band like the anchor): every issuer's types are agreed
  types, and its credit code was registered in the exporter's area
  (GB 32100-2015 §4: characters 3–8 are the registering authority's
  administrative division code, GB/T 2260).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

from keys.backend import Signer
from keys.errors import InvalidIdentifier
from keys.identifiers import parse_uscc
from keys.jws import encode_jws

from .errors import SigningError
from .qr.trust import TrustedIssuer, TrustList

__all__ = [
    "TYP",
    "FORMAT",
    "TrustListError",
    "Agreement",
    "region_areas",
    "ListedType",
    "ListedIssuer",
    "RegionTrustList",
    "export_trust_list",
    "import_trust_list",
    "peek_trust_list",
]

logger = logging.getLogger(__name__)

TYP = "trustlist+jwt"
FORMAT = 1
_MAX_DOCUMENT = 4 * 1024 * 1024
_ALGORITHMS = ["ES256", "RS256"]


class _Registry(JWSRegistry):
    """joserfc's default limits (512-byte header, 128 kB payload) are for tokens;
    a trust list carries an x5c root in its header and many certificates, a status
    list of a million entries can exceed 128 kB once many are revoked."""

    max_header_length = 16384
    max_payload_length = 48 * 1024 * 1024


_REGISTRY = _Registry(algorithms=_ALGORITHMS)


class TrustListError(SigningError):
    """A trust list is refused. ``reason``: ``format``, ``anchor``, ``signature``,
    ``expired``, ``chain``, ``signer_expired``, ``type``, ``uscc``, ``area``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def region_areas(region: str) -> tuple[str, ...]:
    """The division-code prefix of a region code: ``110000`` -> ``("11",)``, ``110100`` -> ``("1101",)``.

    GB/T 2260 codes are province (2 digits), prefecture (2), county (2); a
    region's agencies register under codes that start with its own.
    """
    code = region
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return (code,)


@dataclass(frozen=True)
class Agreement:
    """What the importing region agreed with the exporting one (out of band, like the anchor).

    Trust does not travel sideways (docs/design.md, "Boundaries"): a region vouches
    only for the certificate types agreed with it, and only for agencies
    registered in its own area.
    """

    types: frozenset[str]
    """Certificate type codes the exporter may vouch for."""
    uscc_areas: tuple[str, ...] | None = None
    """Prefixes of the administrative division code (credit-code characters 3–8)
    its issuers may have; ``None``: :func:`region_areas` of the list's region."""

    def areas(self, region: str) -> tuple[str, ...]:
        return self.uscc_areas if self.uscc_areas is not None else region_areas(region)


@dataclass(frozen=True)
class ListedType:
    code: str
    name_zh: str
    name_en: str = ""


@dataclass(frozen=True)
class ListedIssuer:
    uscc: str
    name_zh: str
    certificate: x509.Certificate
    allowed_types: tuple[str, ...]
    name_en: str | None = None

    def trusted(self, region: str) -> TrustedIssuer:
        return TrustedIssuer.from_certificate(
            self.certificate,
            uscc=self.uscc,
            name=self.name_zh,
            region=region,
            allowed_types=self.allowed_types,
        )


@dataclass(frozen=True)
class RegionTrustList:
    """A region's trust list: what is exported, and what an import yields once verified."""

    region: str
    region_name: str
    issued_at: dt.datetime
    next_update: dt.datetime
    status_list_base_url: str
    root: x509.Certificate
    issuers: tuple[ListedIssuer, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    types: tuple[ListedType, ...] = field(default=())

    def trust_list(self) -> TrustList:
        """The issuers as a :class:`signing.qr.TrustList` for QR verification."""
        return TrustList(i.trusted(self.region) for i in self.issuers)

    def summary(self) -> dict[str, Any]:
        """Plain data for ``certstore trust list`` and JSON pages."""
        return {
            "region": self.region,
            "region_name": self.region_name,
            "issued_at": self.issued_at.isoformat(),
            "next_update": self.next_update.isoformat(),
            "status_list_base_url": self.status_list_base_url,
            "issuers": [
                {
                    "uscc": i.uscc,
                    "name_zh": i.name_zh,
                    "allowed_types": list(i.allowed_types),
                    "not_after": i.certificate.not_valid_after_utc.isoformat(),
                }
                for i in self.issuers
            ],
        }


def _b64der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def export_trust_list(document: RegionTrustList, root_signer: Signer) -> str:
    """Sign ``document`` with the region root key; returns the compact JWS text."""
    payload = {
        "format": FORMAT,
        "region": {"code": document.region, "name": document.region_name},
        "iat": int(document.issued_at.timestamp()),
        "next_update": int(document.next_update.timestamp()),
        "status_list_base_url": document.status_list_base_url,
        "types": [
            {"code": t.code, "name_zh": t.name_zh, "name_en": t.name_en} for t in document.types
        ],
        "intermediates": [_b64der(c) for c in document.intermediates],
        "issuers": [
            {
                "uscc": i.uscc,
                "name_zh": i.name_zh,
                "name_en": i.name_en,
                "allowed_types": list(i.allowed_types),
                "certificate": _b64der(i.certificate),
            }
            for i in document.issuers
        ],
    }
    return encode_jws(
        root_signer, payload, typ=TYP, extra_headers={"x5c": [_b64der(document.root)]}
    )


# -- import ---------------------------------------------------------------------


def _fail(message: str, reason: str) -> TrustListError:
    return TrustListError(message, reason=reason)


def _b64url_json(part: str, what: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: JSON nested thousands deep
        raise _fail(f"the trust list's {what} cannot be read", "format") from None


def _cert(value: Any, what: str) -> x509.Certificate:
    if not isinstance(value, str) or not value:
        raise _fail(f"{what} must be a base64 DER certificate", "format")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error):
        raise _fail(f"{what} is not a certificate", "format") from None


def _text(m: Mapping[str, Any], key: str, what: str, *, optional: bool = False) -> str:
    value = m.get(key)
    if value in (None, "") and optional:  # what export writes for a type without an English name
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise _fail(f"{what} must be text", "format")
    return value


_MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold


def _time(value: Any, what: str) -> dt.datetime:
    if type(value) is not int or not 0 < value <= _MAX_TIME:
        raise _fail(f"{what} must be a NumericDate", "format")
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _certificate_usccs(cert: x509.Certificate) -> set[str]:
    """Every credit code the certificate's subject names (``organizationIdentifier``, ``serialNumber``)."""
    found: set[str] = set()
    for oid in (x509.NameOID.ORGANIZATION_IDENTIFIER, x509.NameOID.SERIAL_NUMBER):
        for attr in cert.subject.get_attributes_for_oid(oid):
            value = attr.value
            found.add(value if isinstance(value, str) else value.decode("latin-1"))
    return found


def peek_trust_list(text: str) -> dict[str, Any]:
    """The unverified payload (for error messages and ``trust import --dry-run``); trust nothing in it."""
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise _fail("a trust list is a compact JWS (three dot-separated parts)", "format")
    payload = _b64url_json(parts[1], "payload")
    if not isinstance(payload, dict):
        raise _fail("the trust list's payload is not an object", "format")
    return payload


def import_trust_list(
    text: str,
    anchors: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
    allowed_types: Mapping[str, Iterable[str]] | None = None,
    agreement: Agreement | None = None,
) -> RegionTrustList:
    """Verify a trust list against ``anchors`` and return it (see the module docstring).

    ``allowed_types`` optionally restricts, per region code, which types the
    importer accepts from that region at all; ``agreement`` restricts the
    types and the issuers' area whatever region the list names (the anchor
    already says which region it is).
    """
    if not isinstance(text, str) or len(text) > _MAX_DOCUMENT:
        raise _fail("the trust list is not text of a sensible size", "format")
    text = text.strip()
    parts = text.split(".")
    if len(parts) != 3:
        raise _fail("a trust list is a compact JWS (three dot-separated parts)", "format")
    header = _b64url_json(parts[0], "header")
    if not isinstance(header, dict) or header.get("typ") != TYP:
        raise _fail(f"a trust list has typ {TYP}", "format")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise _fail("the trust list's header has no x5c root certificate", "format")
    root = _cert(x5c[0], "the x5c root")
    root_der = root.public_bytes(serialization.Encoding.DER)
    anchor = next(
        (a for a in anchors if a.public_bytes(serialization.Encoding.DER) == root_der), None
    )
    if anchor is None:
        raise _fail(
            "the trust list is signed by a root that is not a configured trust anchor "
            f"({root.subject.rfc4514_string()[:120]})",
            "anchor",
        )
    if not anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc:
        raise _fail("the trust anchor (region root) is outside its validity period", "anchor")
    key = anchor.public_key()
    try:
        jwk = ECKey.import_key(key) if header.get("alg") == "ES256" else RSAKey.import_key(key)  # type: ignore[arg-type]
        obj = jws.deserialize_compact(text, jwk, algorithms=_ALGORITHMS, registry=_REGISTRY)
    except (JoseError, ValueError, TypeError):
        raise _fail(
            "the trust list's signature does not verify with the region root", "signature"
        ) from None
    try:
        payload = json.loads(obj.payload)
    except (ValueError, RecursionError):
        raise _fail("the trust list's payload is not JSON", "format") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _fail(f"this is not a trust list of format {FORMAT}", "format")
    region_m = payload.get("region")
    if not isinstance(region_m, dict):
        raise _fail("the trust list names no region", "format")
    region = _text(region_m, "code", "region.code")
    region_name = _text(region_m, "name", "region.name")
    # A region root names its region (keys.pki: OU = division code); a list signed by it
    # speaks for that region only, not for a neighbour whose code it writes in.
    anchor_regions = {
        a.value
        for a in anchor.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
        if isinstance(a.value, str) and len(a.value) == 6 and a.value.isdigit()
    }
    if anchor_regions and region not in anchor_regions:
        raise _fail(
            f"the list names region {region[:12]}, but its root is region {sorted(anchor_regions)[0]}'s",
            "anchor",
        )
    issued_at = _time(payload.get("iat"), "iat")
    next_update = _time(payload.get("next_update"), "next_update")
    if now < issued_at - dt.timedelta(minutes=5):
        raise _fail("the trust list is dated in the future", "expired")
    if now > next_update:
        raise _fail(
            f"the trust list of region {region} expired on {next_update.date().isoformat()} "
            "(ask that region for a current one)",
            "expired",
        )
    base_url = _text(payload, "status_list_base_url", "status_list_base_url")
    if not base_url.startswith(("https://", "http://")):
        raise _fail("status_list_base_url must be an http(s) URL", "format")
    types_raw = payload.get("types")
    if not isinstance(types_raw, list):
        raise _fail("the trust list declares no types", "format")
    types = tuple(
        ListedType(
            _text(t, "code", "types[].code"),
            _text(t, "name_zh", "types[].name_zh"),
            _text(t, "name_en", "types[].name_en", optional=True),
        )
        for t in types_raw
        if isinstance(t, dict)
    )
    if len(types) != len(types_raw):
        raise _fail("types[] must be objects", "format")
    declared = {t.code for t in types}
    policy = (
        None if allowed_types is None or region not in allowed_types else set(allowed_types[region])
    )
    if agreement is not None:
        policy = set(agreement.types) if policy is None else policy & set(agreement.types)
    areas = agreement.areas(region) if agreement is not None else None
    inter_raw = payload.get("intermediates", [])
    if not isinstance(inter_raw, list):
        raise _fail("intermediates must be a list", "format")
    intermediates = []
    for n, value in enumerate(inter_raw):
        ca = _cert(value, f"intermediates[{n}]")
        if not _issued_by(ca, anchor):
            raise _fail(f"intermediates[{n}] was not issued by the region root", "chain")
        intermediates.append(ca)
    issuers_raw = payload.get("issuers")
    if not isinstance(issuers_raw, list):
        raise _fail("the trust list has no issuers list", "format")
    issuers: list[ListedIssuer] = []
    for n, item in enumerate(issuers_raw):
        if not isinstance(item, dict):
            raise _fail(f"issuers[{n}] must be an object", "format")
        uscc = _text(item, "uscc", f"issuers[{n}].uscc")
        try:
            parsed, _ = parse_uscc(uscc, strict=False)
        except InvalidIdentifier:
            raise _fail(f"issuers[{n}].uscc is not a unified social credit code", "uscc") from None
        if parsed != uscc:
            raise _fail(f"issuers[{n}].uscc is not written in canonical form", "uscc")
        if areas is not None and not uscc[2:8].startswith(areas):
            raise _fail(
                f"issuer {uscc} was registered in area {uscc[2:8]}, outside what region {region} "
                f"may vouch for ({', '.join(areas)})",
                "area",
            )
        cert = _cert(item.get("certificate"), f"the signer certificate of {uscc}")
        if not any(_issued_by(cert, ca) for ca in intermediates) and not _issued_by(cert, anchor):
            raise _fail(
                f"the signer certificate of {uscc} does not chain to region {region}'s root",
                "chain",
            )
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise _fail(
                f"the signer certificate of {uscc} expired on {cert.not_valid_after_utc.date().isoformat()}"
                if now > cert.not_valid_after_utc
                else f"the signer certificate of {uscc} is not valid yet",
                "signer_expired",
            )
        named = _certificate_usccs(cert)
        if not named:
            # A certificate naming no agency could be listed under any credit code.
            raise _fail(f"the signer certificate listed for {uscc} names no credit code", "uscc")
        if named != {uscc}:
            raise _fail(
                f"the signer certificate listed for {uscc} belongs to another agency", "uscc"
            )
        types_of = item.get("allowed_types")
        if not isinstance(types_of, list) or not all(isinstance(t, str) for t in types_of):
            raise _fail(f"issuers[{n}].allowed_types must be a list of type codes", "format")
        for t in types_of:
            if t not in declared:
                raise _fail(
                    f"issuer {uscc} claims type {t[:24]}, which region {region}'s list does not declare",
                    "type",
                )
            if policy is not None and t not in policy:
                raise _fail(
                    f"issuer {uscc} claims type {t[:24]}, which this region does not accept from {region}",
                    "type",
                )
        name_en = item.get("name_en")
        issuers.append(
            ListedIssuer(
                uscc=uscc,
                name_zh=_text(item, "name_zh", f"issuers[{n}].name_zh"),
                name_en=name_en if isinstance(name_en, str) else None,
                certificate=cert,
                allowed_types=tuple(types_of),
            )
        )
    logger.info("trust list of region %s verified: %d issuers", region, len(issuers))
    return RegionTrustList(
        region=region,
        region_name=region_name,
        issued_at=issued_at,
        next_update=next_update,
        status_list_base_url=base_url,
        root=anchor,
        issuers=tuple(issuers),
        intermediates=tuple(intermediates),
        types=types,
    )
