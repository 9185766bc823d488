"""Leaf certificates from the issuing CA: agency signers, the region TSA, agency TLS clients.

Each agency that issues electronic certificates gets a signer certificate
whose subject carries its unified social credit code (GB 32100-2015); the
region has one time-stamping authority (RFC 3161); an agency's TLS client
(RFC 8705 mutual TLS) gets a certificate for a key it keeps itself. Their
profiles are in :mod:`keys.pki.profiles`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from ..backend import Signer
from ..errors import KeyNotFound, KeysError
from ..identifiers import parse_uscc
from ..sealed import file_lock
from . import profiles
from .ca import RegionCA, region_ca
from .crl import revoke
from .storage import (
    BACKDATE,
    CA_ALGORITHMS,
    file_stamp,
    key_signer,
    new_key,
    now,
    pki_dir,
    read_cert,
    read_json,
    region_state,
    signer_paths,
    tsa_paths,
    write_cert,
    write_json,
    years,
)
from .tbs import certificate_public_key, sign_tbs

if TYPE_CHECKING:
    from ..keyring import Keyring

logger = logging.getLogger(__name__)

_SIGNER_YEARS = 3


@contextlib.contextmanager
def _issuing_ca(keyring: Keyring) -> Iterator[tuple[dict[str, Any], RegionCA]]:
    """Hold the PKI lock; the region's state and CAs as they are under it."""
    with file_lock(pki_dir(keyring) / ".lock"):
        yield region_state(keyring), region_ca(keyring)


def _agency_display_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64:
        raise KeysError("an agency name is 1 to 64 characters")
    return name


# -- agency signers --------------------------------------------------------------------


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


def issue_signer(
    keyring: Keyring,
    *,
    uscc: str,
    name: str,
    replace: bool = False,
    algorithm: str = "ES256",
    crl_url: str | None = None,
) -> AgencySigner:
    """Make the agency's signing key and signer certificate (:data:`keys.pki.profiles.SIGNER`).

    ``uscc`` is checked strictly (GB 32100-2015 check character). An agency
    has one current signer certificate: if it already has a valid one, this
    is refused unless ``replace=True``, which revokes the old one as
    ``superseded`` (documents it signed before stay verifiable from their
    signing time).
    """
    code, _ = parse_uscc(uscc, strict=True)
    name = _agency_display_name(name)
    if algorithm not in CA_ALGORITHMS:
        raise KeysError(f"signer keys are {' or '.join(CA_ALGORITHMS)}")
    with _issuing_ca(keyring) as (state, ca):
        meta_path, cert_path = signer_paths(keyring, code)
        old: dict[str, Any] | None = None
        if meta_path.exists():
            old = read_json(meta_path)
            if not old.get("revoked") and not replace:
                raise KeysError(
                    f"agency {code} already has a signer certificate; revoke it first or replace it"
                )
        issuing_signer = key_signer(keyring, state["issuing_key"])
        ref, agency = new_key(keyring, algorithm, f"signer-{code.lower()}")
        try:
            start = now() - BACKDATE
            builder = profiles.leaf_builder(
                profiles.SIGNER,
                subject=profiles.agency_name(code, name),
                subject_key=certificate_public_key(agency.public_key()),
                issuer=ca.issuing,
                not_before=start,
                not_after=years(start, _SIGNER_YEARS),
                crl_url=crl_url or ca.crl_url,
            )
            cert = x509.load_der_x509_certificate(sign_tbs("cert", builder, issuing_signer))
            write_cert(cert_path, cert)
            write_json(
                meta_path,
                {
                    "uscc": code,
                    "name": name,
                    "key": ref,
                    "serial": format(cert.serial_number, "x"),
                    "revoked": False,
                    "issued_at": now().isoformat(),
                },
            )
        except BaseException:
            keyring.backend(ref["backend"]).delete(ref["handle"])
            raise
        if old is not None and not old.get("revoked"):
            revoke(keyring, state, old, "superseded")
    logger.info("issued signer certificate %x for agency %s", cert.serial_number, code)
    return AgencySigner(agency, uscc=code, certificate=cert, chain=[ca.issuing, ca.root])


def agency_signer(keyring: Keyring, uscc: str) -> AgencySigner:
    """The agency's current signer (raises ``KeyNotFound`` if none or revoked)."""
    code, _ = parse_uscc(uscc, strict=False)
    meta_path, cert_path = signer_paths(keyring, code)
    try:
        meta = read_json(meta_path)
        cert = read_cert(cert_path)
    except FileNotFoundError:
        raise KeyNotFound(f"agency {code} has no signer certificate") from None
    if meta.get("revoked"):
        raise KeyNotFound(f"the signer certificate of agency {code} is revoked")
    ca = region_ca(keyring)
    return AgencySigner(
        key_signer(keyring, meta["key"]), uscc=code, certificate=cert, chain=[ca.issuing, ca.root]
    )


def signer_stamp(keyring: Keyring, uscc: str) -> object:
    """Changes whenever the agency's signer is issued, replaced or revoked (for caching)."""
    return file_stamp(signer_paths(keyring, uscc.strip().upper())[0])


def list_signers(keyring: Keyring) -> list[SignerInfo]:
    """Every agency's current (or last) signer certificate."""
    out: list[SignerInfo] = []
    d = pki_dir(keyring) / "signers"
    for meta_path in sorted(d.glob("*.json")) if d.is_dir() else []:
        meta = read_json(meta_path)
        cert = read_cert(meta_path.with_suffix(".pem"))
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


def issue_tsa(
    keyring: Keyring,
    *,
    name: str | None = None,
    validity: dt.timedelta | None = None,
    algorithm: str = "ES256",
) -> TsaSigner:
    """Make (or replace) the region's time-stamping key and certificate (:data:`keys.pki.profiles.TSA`).

    Issued by the issuing CA, at most until the issuing CA expires.
    ``validity`` defaults to the issuing CA's remaining life (tests pass a
    short one to exercise renewal). A replaced TSA key is destroyed; its
    certificate stays valid, so tokens it signed stay verifiable until it
    expires.
    """
    if algorithm not in CA_ALGORITHMS:
        raise KeysError(f"TSA keys are {' or '.join(CA_ALGORITHMS)}")
    with _issuing_ca(keyring) as (state, ca):
        meta_path, cert_path = tsa_paths(keyring)
        old = read_json(meta_path) if meta_path.exists() else None
        issuing_signer = key_signer(keyring, state["issuing_key"])
        ref, tsa = new_key(keyring, algorithm, f"tsa-{ca.region}")
        try:
            start = now() - BACKDATE
            not_after = ca.issuing.not_valid_after_utc
            if validity is not None:
                not_after = min(not_after, start + BACKDATE + validity)
            builder = profiles.leaf_builder(
                profiles.TSA,
                subject=profiles.region_name(
                    ca.region, ca.name, name or f"{ca.name} Time Stamping Authority"
                ),
                subject_key=certificate_public_key(tsa.public_key()),
                issuer=ca.issuing,
                not_before=start,
                not_after=not_after,
                crl_url=ca.crl_url,
            )
            cert = x509.load_der_x509_certificate(sign_tbs("cert", builder, issuing_signer))
            write_cert(cert_path, cert)
            write_json(
                meta_path,
                {"key": ref, "serial": format(cert.serial_number, "x"), "issued_at": now().isoformat()},
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
    meta_path, cert_path = tsa_paths(keyring)
    try:
        meta = read_json(meta_path)
        cert = read_cert(cert_path)
    except FileNotFoundError:
        raise KeyNotFound("the region has no TSA certificate yet (run: certstore tsa issue)") from None
    ca = region_ca(keyring)
    return TsaSigner(key_signer(keyring, meta["key"]), cert, [ca.issuing, ca.root])


def tsa_stamp(keyring: Keyring) -> object:
    """Changes whenever the TSA certificate is issued or replaced (a server reloads on it)."""
    return file_stamp(tsa_paths(keyring)[0])


# -- TLS client certificates (RFC 8705 mutual TLS for agencies) ---------------------


def issue_tls_client(
    keyring: Keyring,
    *,
    uscc: str,
    name: str,
    public_key_pem: bytes,
    days: int = 365,
) -> x509.Certificate:
    """A TLS client certificate (:data:`~keys.pki.profiles.TLS_CLIENT_PROFILE`) for the agency's own key.

    The agency generates its key pair and keeps the private key (its TLS
    client needs it in a file or a token): only the public key comes here, as
    in a CSR. The subject is the agency's (``C=CN, O, organizationIdentifier,
    serialNumber = USCC, CN``), so an authorization server registers it with
    ``tls_client_auth_subject_dn`` (RFC 8705 §2.1.2). keyUsage
    digitalSignature, EKU clientAuth (RFC 5280 §4.2.1.12), no CA, AKI/SKI and
    the CRL distribution point of the signer profile.
    """
    code, _ = parse_uscc(uscc, strict=True)
    name = _agency_display_name(name)
    if not 1 <= days <= 3 * 366:
        raise KeysError("a TLS client certificate lives 1 day to 3 years")
    try:
        subject_key = certificate_public_key(serialization.load_pem_public_key(public_key_pem))
    except ValueError:
        raise KeysError("the public key is not a PEM public key") from None
    with _issuing_ca(keyring) as (state, ca):
        start = now() - BACKDATE
        builder = profiles.leaf_builder(
            profiles.TLS_CLIENT,
            subject=profiles.agency_name(code, name),
            subject_key=subject_key,
            issuer=ca.issuing,
            not_before=start,
            not_after=start + dt.timedelta(days=days),
            crl_url=ca.crl_url,
        )
        cert = x509.load_der_x509_certificate(
            sign_tbs("cert", builder, key_signer(keyring, state["issuing_key"]))
        )
    logger.info("issued TLS client certificate %x for agency %s", cert.serial_number, code)
    return cert
