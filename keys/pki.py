"""The agency PKI: region root CA → issuing CA → one signer certificate per agency.

A region (a province or city, by its administrative division code) runs one
root CA and one issuing CA; each agency that issues electronic certificates
gets a signer certificate whose subject carries its unified social credit
code (GB 32100-2015), in ``organizationIdentifier`` (2.5.4.97) and
``serialNumber``. The signer profile follows docs/design.md: keyUsage
digitalSignature + nonRepudiation, extended key usage emailProtection and
documentSigning (poppler's ``pdfsig`` trusts a signer only with
emailProtection and a CRL distribution point), AKI/SKI, no CA.

Every private key (both CAs' and the agencies') lives in a key backend, so the
CAs can sit in an HSM: certificates and CRLs are built with
``cryptography``'s builders, and their to-be-signed part is signed through
our :class:`~keys.backend.Signer` (see :func:`_sign_tbs`).

Layout under ``key_dir/pki``::

    region.json           region code and name, CA key handles, CRL URL and number
    root.pem, issuing.pem the two CA certificates
    signers/<USCC>.json   the agency's current key handle and certificate serial
    signers/<USCC>.pem    the agency's current signer certificate
    revoked.json          revoked serials (the CRL's content)
    issuing.crl           the current DER CRL of the issuing CA
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from .backend import Signer, jwk_thumbprint
from .errors import KeyNotFound, KeysError, KeyStoreCorrupt
from .identifiers import parse_uscc
from .sealed import atomic_write, file_lock

if TYPE_CHECKING:
    from .keyring import Keyring

__all__ = [
    "AgencySigner",
    "RegionCA",
    "SignerInfo",
    "DOCUMENT_SIGNING",
    "DEFAULT_CRL_URL",
    "init_region",
    "issue_signer",
    "revoke_signer",
    "agency_signer",
    "region_root",
    "region_ca",
    "root_signer",
    "list_signers",
    "signer_stamp",
    "current_crl",
    "uscc_of",
    "TLS_CLIENT_PROFILE",
    "issue_tls_client",
]

logger = logging.getLogger(__name__)

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
"""id-kp-documentSigning (RFC 9336)."""
DEFAULT_CRL_URL = "http://127.0.0.1:5100/pki/crl/issuing.crl"

_CA_ALGORITHMS = ("ES256", "RS256")
_ROOT_YEARS = 20
_ISSUING_YEARS = 10
_SIGNER_YEARS = 3
_CRL_DAYS = 7
_CRL_REFRESH = dt.timedelta(days=1)  # re-sign when less than this is left
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew of verifiers
_REASONS = {flag.value: flag for flag in x509.ReasonFlags} | {
    flag.name: flag for flag in x509.ReasonFlags
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _years(start: dt.datetime, years: int) -> dt.datetime:
    return start + dt.timedelta(days=365 * years + years // 4)


# -- signing through a backend -----------------------------------------------

_throwaway: dict[str, CertificateIssuerPrivateKeyTypes] = {}
_throwaway_lock = threading.Lock()


def _placeholder_key(algorithm: str) -> CertificateIssuerPrivateKeyTypes:
    """A key of the issuer's type, used only to let cryptography emit the TBS bytes."""
    with _throwaway_lock:
        key = _throwaway.get(algorithm)
        if key is None:
            if algorithm == "ES256":
                key = ec.generate_private_key(ec.SECP256R1())
            else:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _throwaway[algorithm] = key
        return key


def _sign_tbs(kind: str, builder: Any, issuer: Signer) -> bytes:
    """Sign a certificate or CRL builder with a backend key; returns DER.

    ``cryptography`` signs only with private key objects it holds, which an
    HSM never hands out. The to-be-signed part does not depend on the key
    that signs it (the issuer's AKI and name are set explicitly, and the
    signature algorithm is fixed by the key type), so we let cryptography
    build it with a placeholder key of the same type, sign those TBS bytes
    through ``issuer`` and assemble the final structure (RFC 5280 §4.1, §5.1).
    """
    draft = builder.sign(_placeholder_key(issuer.algorithm), hashes.SHA256())
    signature = issuer.sign(
        draft.tbs_certificate_bytes if kind == "cert" else draft.tbs_certlist_bytes, der=True
    )
    algorithm = {"algorithm": "sha256_ecdsa" if issuer.algorithm == "ES256" else "sha256_rsa"}
    if kind == "cert":
        cert = asn1_x509.Certificate(
            {
                "tbs_certificate": asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes),
                "signature_algorithm": algorithm,
                "signature_value": signature,
            }
        )
        der: bytes = cert.dump()
    else:
        crl = asn1_crl.CertificateList(
            {
                "tbs_cert_list": asn1_crl.TbsCertList.load(draft.tbs_certlist_bytes),
                "signature_algorithm": algorithm,
                "signature": signature,
            }
        )
        der = crl.dump()
    return der


def _certificate_public_key(key: PublicKeyTypes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeysError("PKI keys are ES256 (P-256) or RS256")
    return key


# -- data ------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionCA:
    """The region's two CAs."""

    region: str
    """Administrative division code, e.g. ``110000``."""
    name: str
    root: x509.Certificate
    issuing: x509.Certificate
    crl_url: str
    """Where the issuing CA's CRL is published (in every signer certificate)."""


@dataclass(frozen=True)
class SignerInfo:
    """One agency's current signer certificate, as ``certstore ca show`` lists it."""

    uscc: str
    name: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    revoked: bool


class AgencySigner:
    """An agency's signing key with its certificate and chain (a :class:`~keys.backend.Signer`)."""

    def __init__(
        self,
        signer: Signer,
        *,
        uscc: str,
        certificate: x509.Certificate,
        chain: list[x509.Certificate],
    ) -> None:
        self._signer = signer
        self.kid = signer.kid
        self.algorithm = signer.algorithm
        self.uscc = uscc
        self.certificate = certificate
        """The signer certificate; its subject carries the USCC."""
        self.chain = chain
        """``[issuing CA, region root]``."""

    def __repr__(self) -> str:
        return f"AgencySigner(uscc={self.uscc!r}, serial={self.certificate.serial_number:x})"

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        return self._signer.sign(data, der=der)

    def public_key(self) -> PublicKeyTypes:
        return self._signer.public_key()

    def public_jwk(self) -> dict[str, str]:
        return self._signer.public_jwk()


# -- storage ---------------------------------------------------------------------


def _dir(keyring: Keyring) -> Path:
    return keyring.directory / "pki"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise KeyStoreCorrupt(f"{path} cannot be read ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise KeyStoreCorrupt(f"{path} is malformed")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n", mode=0o644)


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise
    except ValueError:
        raise KeyStoreCorrupt(f"{path} is not a PEM certificate") from None


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _region_state(keyring: Keyring) -> dict[str, Any]:
    try:
        return _read_json(_dir(keyring) / "region.json")
    except FileNotFoundError:
        raise KeyNotFound("the region PKI is not set up; run `certstore ca init` first") from None


def _key_signer(keyring: Keyring, ref: dict[str, Any]) -> Signer:
    try:
        backend = keyring.backend(str(ref["backend"]))
        handle, algorithm = str(ref["handle"]), str(ref["algorithm"])
    except KeyError:
        raise KeyStoreCorrupt("a PKI key reference is malformed") from None
    return backend.signer(handle, algorithm, jwk_thumbprint(backend.public_key(handle)))


def _new_key(keyring: Keyring, algorithm: str, label: str) -> tuple[dict[str, str], Signer]:
    backend = keyring.backend()
    handle = backend.generate(algorithm, label)
    ref = {"backend": backend.name, "handle": handle, "algorithm": algorithm}
    return ref, _key_signer(keyring, ref)


def region_ca(keyring: Keyring) -> RegionCA:
    """The region's root and issuing CA (raises ``KeyNotFound`` before ``ca init``)."""
    state = _region_state(keyring)
    d = _dir(keyring)
    return RegionCA(
        region=str(state["region"]),
        name=str(state["name"]),
        root=_read_cert(d / "root.pem"),
        issuing=_read_cert(d / "issuing.pem"),
        crl_url=str(state["crl_url"]),
    )


def region_root(keyring: Keyring) -> x509.Certificate:
    """The trust anchor verifiers install."""
    return region_ca(keyring).root


def root_signer(keyring: Keyring) -> Signer:
    """A signer for the region *root* key (the key stays in its backend).

    The root signs only what other regions check against it as their trust
    anchor: the issuing CA and the region's exported trust list (certstore
    ``trust export``).
    """
    state = _region_state(keyring)
    return _key_signer(keyring, state["root_key"])


# -- the CAs -------------------------------------------------------------------------


def _ca_name(region: str, name: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, region),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {role}"),
        ]
    )


def _ca_extensions(
    builder: x509.CertificateBuilder, *, path_length: int
) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def init_region(
    keyring: Keyring,
    *,
    region: str,
    name: str,
    crl_url: str | None = None,
    algorithm: str = "ES256",
) -> RegionCA:
    """Create the region's root CA and issuing CA (once; a second call is refused).

    ``crl_url`` is where the issuing CA's CRL will be served (default: certstore's
    embedded address ``/pki/crl/issuing.crl``); it goes into every signer certificate.
    """
    region = region.strip()
    if not (region.isascii() and region.isdigit() and len(region) == 6):
        raise KeysError("a region code is the 6-digit administrative division code, e.g. 110000")
    name = name.strip()
    if not name or len(name) > 64:
        raise KeysError("a region name is 1 to 64 characters")
    if algorithm not in _CA_ALGORITHMS:
        raise KeysError(f"CA keys are {' or '.join(_CA_ALGORITHMS)}")
    crl_url = crl_url or DEFAULT_CRL_URL
    d = _dir(keyring)
    with file_lock(d / ".lock"):
        if (d / "region.json").exists():
            raise KeysError("the region PKI already exists; it is created only once")
        made: list[dict[str, str]] = []
        try:
            root_ref, root_signer = _new_key(keyring, algorithm, f"ca-root-{region}")
            made.append(root_ref)
            issuing_ref, issuing_signer = _new_key(keyring, algorithm, f"ca-issuing-{region}")
            made.append(issuing_ref)
            now = _now() - _BACKDATE
            root_pub = _certificate_public_key(root_signer.public_key())
            root_name = _ca_name(region, name, "Root CA")
            root_builder = _ca_extensions(
                x509.CertificateBuilder()
                .subject_name(root_name)
                .issuer_name(root_name)
                .public_key(root_pub)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(_years(now, _ROOT_YEARS)),
                path_length=1,
            )
            root_builder = root_builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_pub), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            root = x509.load_der_x509_certificate(_sign_tbs("cert", root_builder, root_signer))

            issuing_pub = _certificate_public_key(issuing_signer.public_key())
            issuing_builder = _ca_extensions(
                x509.CertificateBuilder()
                .subject_name(_ca_name(region, name, "Issuing CA"))
                .issuer_name(root.subject)
                .public_key(issuing_pub)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(_years(now, _ISSUING_YEARS)),
                path_length=0,
            )
            issuing_builder = issuing_builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(issuing_pub), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            issuing = x509.load_der_x509_certificate(
                _sign_tbs("cert", issuing_builder, root_signer)
            )

            _write_cert(d / "root.pem", root)
            _write_cert(d / "issuing.pem", issuing)
            _write_json(d / "revoked.json", {"revoked": []})
            state = {
                "format": 1,
                "region": region,
                "name": name,
                "crl_url": crl_url,
                "crl_number": 0,
                "root_key": root_ref,
                "issuing_key": issuing_ref,
                "created_at": _now().isoformat(),
            }
            _write_json(d / "region.json", state)  # written last: it marks the PKI as complete
        except BaseException:
            for ref in made:
                keyring.backend(ref["backend"]).delete(ref["handle"])
            raise
        _issue_crl(keyring, state)
    logger.info(
        "created region PKI %s: root %x, issuing CA %x",
        region,
        root.serial_number,
        issuing.serial_number,
    )
    return region_ca(keyring)


# -- agency signers --------------------------------------------------------------------


def _signer_paths(keyring: Keyring, uscc: str) -> tuple[Path, Path]:
    d = _dir(keyring) / "signers"
    return d / f"{uscc}.json", d / f"{uscc}.pem"


def _signer_profile(
    builder: x509.CertificateBuilder,
    *,
    subject_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    crl_url: str,
) -> x509.CertificateBuilder:
    """The docs/design.md signer profile."""
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )


def issue_signer(
    keyring: Keyring,
    *,
    uscc: str,
    name: str,
    replace: bool = False,
    algorithm: str = "ES256",
    crl_url: str | None = None,
) -> AgencySigner:
    """Make the agency's signing key and signer certificate.

    ``uscc`` is checked strictly (GB 32100-2015 check character). An agency
    has one current signer certificate: if it already has a valid one, this
    is refused unless ``replace=True``, which revokes the old one as
    ``superseded`` (documents it signed before stay verifiable from their
    signing time).
    """
    code, _ = parse_uscc(uscc, strict=True)
    name = name.strip()
    if not name or len(name) > 64:
        raise KeysError("an agency name is 1 to 64 characters")
    if algorithm not in _CA_ALGORITHMS:
        raise KeysError(f"signer keys are {' or '.join(_CA_ALGORITHMS)}")
    d = _dir(keyring)
    with file_lock(d / ".lock"):
        state = _region_state(keyring)
        ca = region_ca(keyring)
        meta_path, cert_path = _signer_paths(keyring, code)
        old: dict[str, Any] | None = None
        if meta_path.exists():
            old = _read_json(meta_path)
            if not old.get("revoked") and not replace:
                raise KeysError(
                    f"agency {code} already has a signer certificate; revoke it first or replace it"
                )
        issuing_signer = _key_signer(keyring, state["issuing_key"])
        ref, agency = _new_key(keyring, algorithm, f"signer-{code.lower()}")
        try:
            now = _now() - _BACKDATE
            subject_key = _certificate_public_key(agency.public_key())
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                    x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, code),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, code),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
            builder = _signer_profile(
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca.issuing.subject)
                .public_key(subject_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(min(_years(now, _SIGNER_YEARS), ca.issuing.not_valid_after_utc)),
                subject_key=subject_key,
                issuer_key=_certificate_public_key(ca.issuing.public_key()),
                crl_url=crl_url or ca.crl_url,
            )
            cert = x509.load_der_x509_certificate(_sign_tbs("cert", builder, issuing_signer))
            _write_cert(cert_path, cert)
            _write_json(
                meta_path,
                {
                    "uscc": code,
                    "name": name,
                    "key": ref,
                    "serial": format(cert.serial_number, "x"),
                    "revoked": False,
                    "issued_at": _now().isoformat(),
                },
            )
        except BaseException:
            keyring.backend(ref["backend"]).delete(ref["handle"])
            raise
        if old is not None and not old.get("revoked"):
            _revoke(keyring, state, old, "superseded")
    logger.info("issued signer certificate %x for agency %s", cert.serial_number, code)
    return AgencySigner(agency, uscc=code, certificate=cert, chain=[ca.issuing, ca.root])


def agency_signer(keyring: Keyring, uscc: str) -> AgencySigner:
    """The agency's current signer (raises ``KeyNotFound`` if none or revoked)."""
    code, _ = parse_uscc(uscc, strict=False)
    meta_path, cert_path = _signer_paths(keyring, code)
    try:
        meta = _read_json(meta_path)
        cert = _read_cert(cert_path)
    except FileNotFoundError:
        raise KeyNotFound(f"agency {code} has no signer certificate") from None
    if meta.get("revoked"):
        raise KeyNotFound(f"the signer certificate of agency {code} is revoked")
    ca = region_ca(keyring)
    return AgencySigner(
        _key_signer(keyring, meta["key"]), uscc=code, certificate=cert, chain=[ca.issuing, ca.root]
    )


def signer_stamp(keyring: Keyring, uscc: str) -> object:
    """Changes whenever the agency's signer is issued, replaced or revoked (for caching)."""
    meta_path, _ = _signer_paths(keyring, uscc.strip().upper())
    try:
        st = os.stat(meta_path)
    except (FileNotFoundError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def list_signers(keyring: Keyring) -> list[SignerInfo]:
    """Every agency's current (or last) signer certificate."""
    out: list[SignerInfo] = []
    d = _dir(keyring) / "signers"
    for meta_path in sorted(d.glob("*.json")) if d.is_dir() else []:
        meta = _read_json(meta_path)
        cert = _read_cert(meta_path.with_suffix(".pem"))
        out.append(
            SignerInfo(
                str(meta["uscc"]),
                str(meta["name"]),
                cert.serial_number,
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
                bool(meta.get("revoked")),
            )
        )
    return out


def uscc_of(certificate: x509.Certificate) -> str | None:
    """The USCC in a signer certificate's subject (``organizationIdentifier``), if any."""
    for oid in (NameOID.ORGANIZATION_IDENTIFIER, NameOID.SERIAL_NUMBER):
        attrs = certificate.subject.get_attributes_for_oid(oid)
        if attrs:
            value = attrs[0].value
            return value if isinstance(value, str) else value.decode()
    return None


# -- the time-stamping authority ---------------------------------------------------------------


@dataclass(frozen=True)
class TsaSigner:
    """The region TSA's key (a :class:`~keys.backend.Signer`), certificate and chain.

    Answers RFC 3161 requests (``certstore tsa serve``); its certificate is
    issued by the issuing CA, so a verifier that trusts the region root trusts
    the timestamps, and the issuing CA's CRL covers it.
    """

    signer: Signer
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    """``[issuing CA, region root]``."""


def _tsa_paths(keyring: Keyring) -> tuple[Path, Path]:
    d = _dir(keyring)
    return d / "tsa.json", d / "tsa.pem"


def issue_tsa(
    keyring: Keyring,
    *,
    name: str | None = None,
    validity: dt.timedelta | None = None,
    algorithm: str = "ES256",
) -> TsaSigner:
    """Make (or replace) the region's time-stamping key and certificate.

    Profile (RFC 3161 §2.3): extended key usage id-kp-timeStamping only,
    marked critical; keyUsage digitalSignature + nonRepudiation; a CRL
    distribution point (the issuing CA's CRL); issued by the issuing CA, at
    most until the issuing CA expires. ``validity`` defaults to the issuing
    CA's remaining life (tests pass a short one to exercise renewal). A
    replaced TSA key is destroyed; its certificate stays valid, so tokens it
    signed stay verifiable until it expires.
    """
    if algorithm not in _CA_ALGORITHMS:
        raise KeysError(f"TSA keys are {' or '.join(_CA_ALGORITHMS)}")
    d = _dir(keyring)
    with file_lock(d / ".lock"):
        state = _region_state(keyring)
        ca = region_ca(keyring)
        meta_path, cert_path = _tsa_paths(keyring)
        old = _read_json(meta_path) if meta_path.exists() else None
        issuing_signer = _key_signer(keyring, state["issuing_key"])
        ref, tsa = _new_key(keyring, algorithm, f"tsa-{ca.region}")
        try:
            now = _now() - _BACKDATE
            not_after = ca.issuing.not_valid_after_utc
            if validity is not None:
                not_after = min(not_after, now + _BACKDATE + validity)
            subject_key = _certificate_public_key(tsa.public_key())
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.name),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ca.region),
                    x509.NameAttribute(NameOID.COMMON_NAME, name or f"{ca.name} Time Stamping Authority"),
                ]
            )
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca.issuing.subject)
                .public_key(subject_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=True,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
                .add_extension(
                    x509.CRLDistributionPoints(
                        [x509.DistributionPoint([x509.UniformResourceIdentifier(ca.crl_url)], None, None, None)]
                    ),
                    critical=False,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(
                        _certificate_public_key(ca.issuing.public_key())
                    ),
                    critical=False,
                )
            )
            cert = x509.load_der_x509_certificate(_sign_tbs("cert", builder, issuing_signer))
            _write_cert(cert_path, cert)
            _write_json(
                meta_path,
                {"key": ref, "serial": format(cert.serial_number, "x"), "issued_at": _now().isoformat()},
            )
        except BaseException:
            keyring.backend(ref["backend"]).delete(ref["handle"])
            raise
        if old is not None:
            try:
                keyring.backend(old["key"]["backend"]).delete(old["key"]["handle"])
            except KeysError as e:
                logger.warning("could not destroy the replaced TSA key: %s", e)
    logger.info("issued TSA certificate %x (until %s)", cert.serial_number, not_after.date())
    return TsaSigner(tsa, cert, [ca.issuing, ca.root])


def tsa_signer(keyring: Keyring) -> TsaSigner:
    """The region TSA's current key and certificate (``KeyNotFound`` before :func:`issue_tsa`)."""
    meta_path, cert_path = _tsa_paths(keyring)
    try:
        meta = _read_json(meta_path)
        cert = _read_cert(cert_path)
    except FileNotFoundError:
        raise KeyNotFound("the region has no TSA certificate yet (run: certstore tsa issue)") from None
    ca = region_ca(keyring)
    return TsaSigner(_key_signer(keyring, meta["key"]), cert, [ca.issuing, ca.root])


def tsa_stamp(keyring: Keyring) -> object:
    """Changes whenever the TSA certificate is issued or replaced (a server reloads on it)."""
    try:
        st = os.stat(_tsa_paths(keyring)[0])
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# -- the root's CRL (ARL) ----------------------------------------------------------------------

_ARL_DAYS = 365
_ARL_REFRESH = dt.timedelta(days=30)


def _issue_root_crl(keyring: Keyring, state: dict[str, Any]) -> bytes:
    """Sign the root CA's CRL of revoked CA certificates (none: the issuing CA is replaced with
    the region) and store it. Long-term (PAdES B-LTA) validation needs revocation data for every
    certificate of a path, the issuing CA's too (ETSI EN 319 102-1 §5.6.2.1, the time slide)."""
    d = _dir(keyring)
    root = _read_cert(d / "root.pem")
    number = int(state.get("root_crl_number", 0)) + 1
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=_ARL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_certificate_public_key(root.public_key())),
            critical=False,
        )
    )
    der = _sign_tbs("crl", builder, _key_signer(keyring, state["root_key"]))
    atomic_write(d / "root.crl", der, mode=0o644)
    state["root_crl_number"] = number
    _write_json(d / "region.json", state)
    return der


def current_root_crl(keyring: Keyring) -> bytes:
    """The root CA's current CRL (DER; it lists revoked CA certificates), re-signed when due."""
    d = _dir(keyring)

    def fresh() -> bytes | None:
        try:
            der = (d / "root.crl").read_bytes()
            next_update = x509.load_der_x509_crl(der).next_update_utc
        except (FileNotFoundError, ValueError):
            return None
        return der if next_update is not None and next_update - _now() > _ARL_REFRESH else None

    der = fresh()
    if der is not None:
        return der
    with file_lock(d / ".lock"):
        der = fresh()
        return der if der is not None else _issue_root_crl(keyring, _region_state(keyring))


# -- revocation and CRLs ---------------------------------------------------------------------


def _reason(reason: str) -> x509.ReasonFlags:
    flag = _REASONS.get(reason.strip())
    if flag is None or flag is x509.ReasonFlags.remove_from_crl:
        choices = ", ".join(
            f.value for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl
        )
        raise KeysError(f"unknown revocation reason {reason!r}; use one of {choices}")
    return flag


def _revoke(keyring: Keyring, state: dict[str, Any], meta: dict[str, Any], reason: str) -> None:
    """Record a revocation and re-issue the CRL (caller holds the PKI lock)."""
    flag = _reason(reason)
    d = _dir(keyring)
    revoked = _read_json(d / "revoked.json")
    entries = list(revoked.get("revoked", []))
    entries.append(
        {
            "serial": meta["serial"],
            "uscc": meta["uscc"],
            "reason": flag.value,
            "revoked_at": _now().isoformat(),
        }
    )
    _write_json(d / "revoked.json", {"revoked": entries})
    _issue_crl(keyring, state)
    meta_path, _ = _signer_paths(keyring, str(meta["uscc"]))
    if _read_json(meta_path).get("serial") == meta["serial"]:  # not when superseded
        _write_json(meta_path, {**meta, "revoked": True})
    try:
        keyring.backend(meta["key"]["backend"]).delete(meta["key"]["handle"])
    except KeysError as e:
        logger.warning("could not destroy the revoked signer key of %s: %s", meta["uscc"], e)
    logger.info(
        "revoked signer certificate %s of agency %s (%s)", meta["serial"], meta["uscc"], flag.value
    )


def revoke_signer(keyring: Keyring, *, uscc: str, reason: str = "unspecified") -> None:
    """Revoke the agency's current signer certificate and publish a new CRL."""
    code, _ = parse_uscc(uscc, strict=False)
    _reason(reason)
    with file_lock(_dir(keyring) / ".lock"):
        state = _region_state(keyring)
        meta_path, _ = _signer_paths(keyring, code)
        try:
            meta = _read_json(meta_path)
        except FileNotFoundError:
            raise KeyNotFound(f"agency {code} has no signer certificate") from None
        if meta.get("revoked"):
            raise KeysError(f"the signer certificate of agency {code} is already revoked")
        _revoke(keyring, state, meta, reason)


def _issue_crl(keyring: Keyring, state: dict[str, Any]) -> bytes:
    """Sign a fresh CRL of the issuing CA (RFC 5280 §5) and store it (caller holds the lock)."""
    d = _dir(keyring)
    issuing = _read_cert(d / "issuing.pem")
    number = int(state.get("crl_number", 0)) + 1
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=_CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                _certificate_public_key(issuing.public_key())
            ),
            critical=False,
        )
    )
    for entry in _read_json(d / "revoked.json").get("revoked", []):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"], 16))
            .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
        )
        if entry.get("reason") and entry["reason"] != "unspecified":
            revoked = revoked.add_extension(
                x509.CRLReason(_reason(entry["reason"])), critical=False
            )
        builder = builder.add_revoked_certificate(revoked.build())
    der = _sign_tbs("crl", builder, _key_signer(keyring, state["issuing_key"]))
    atomic_write(d / "issuing.crl", der, mode=0o644)
    state["crl_number"] = number
    _write_json(d / "region.json", state)
    return der


def _fresh_crl(path: Path) -> bytes | None:
    try:
        der = path.read_bytes()
        next_update = x509.load_der_x509_crl(der).next_update_utc
    except FileNotFoundError:
        return None
    except ValueError:
        logger.warning("the stored CRL is unreadable; issuing a new one")
        return None
    if next_update is not None and next_update - _now() > _CRL_REFRESH:
        return der
    return None


def current_crl(keyring: Keyring) -> bytes:
    """The issuing CA's current CRL (DER), re-signed when it is about to expire."""
    d = _dir(keyring)
    der = _fresh_crl(d / "issuing.crl")
    if der is not None:
        return der
    with file_lock(d / ".lock"):
        state = _region_state(keyring)
        der = _fresh_crl(d / "issuing.crl")  # another process may have just re-signed it
        return der if der is not None else _issue_crl(keyring, state)


# -- TLS client certificates (RFC 8705 mutual TLS for agencies) ---------------------

TLS_CLIENT_PROFILE = "tls-client"
"""An agency's TLS client certificate: EKU clientAuth only, never documentSigning."""


def issue_tls_client(
    keyring: Keyring,
    *,
    uscc: str,
    name: str,
    public_key_pem: bytes,
    days: int = 365,
) -> x509.Certificate:
    """A TLS client certificate (:data:`TLS_CLIENT_PROFILE`) from the issuing CA for the agency's own key.

    The agency generates its key pair and keeps the private key (its TLS
    client needs it in a file or a token): only the public key comes here, as
    in a CSR. The subject is the agency's (``C=CN, O, organizationIdentifier,
    serialNumber = USCC, CN``), so an authorization server registers it with
    ``tls_client_auth_subject_dn`` (RFC 8705 §2.1.2). keyUsage
    digitalSignature, EKU clientAuth (RFC 5280 §4.2.1.12), no CA, AKI/SKI and
    the CRL distribution point of the signer profile.
    """
    code, _ = parse_uscc(uscc, strict=True)
    name = name.strip()
    if not name or len(name) > 64:
        raise KeysError("an agency name is 1 to 64 characters")
    if not 1 <= days <= 3 * 366:
        raise KeysError("a TLS client certificate lives 1 day to 3 years")
    try:
        subject_key = _certificate_public_key(serialization.load_pem_public_key(public_key_pem))
    except ValueError:
        raise KeysError("the public key is not a PEM public key") from None
    d = _dir(keyring)
    with file_lock(d / ".lock"):
        state = _region_state(keyring)
        ca = region_ca(keyring)
        now = _now() - _BACKDATE
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, code),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, code),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]))
            .issuer_name(ca.issuing.subject)
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(min(now + dt.timedelta(days=days), ca.issuing.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(ca.crl_url)], None, None, None)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                _certificate_public_key(ca.issuing.public_key())), critical=False)
        )
        cert = x509.load_der_x509_certificate(
            _sign_tbs("cert", builder, _key_signer(keyring, state["issuing_key"])))
    logger.info("issued TLS client certificate %x for agency %s", cert.serial_number, code)
    return cert
