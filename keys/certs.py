"""Recipes over certificates and public keys, for code outside ``keys/``.

Services serialise a certificate to PEM, compare two of them, print a
fingerprint, derive a key id or publish a public key as a JWK; each of those
is one call here, so no service package needs ``cryptography.hazmat``
(the import-linter contract "certstore does not use cryptography.hazmat").
Private keys never appear here: they stay behind :mod:`keys.backend`.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .backend import public_jwk_members

__all__ = [
    "PublicKey",
    "certificate_der",
    "certificate_fingerprint",
    "certificate_pem",
    "load_pem_certificate",
    "load_pem_certificates",
    "public_key_id",
    "webcrypto_jwk",
]

PublicKey = PublicKeyTypes
"""Any public key a certificate or trust list carries (for type hints outside ``keys/``)."""


def certificate_pem(certificate: x509.Certificate) -> str:
    """The certificate as PEM text (``-----BEGIN CERTIFICATE-----`` …, trailing newline)."""
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def certificate_der(certificate: x509.Certificate) -> bytes:
    """The certificate's DER bytes: two certificates are the same one when these are equal."""
    return certificate.public_bytes(Encoding.DER)


def load_pem_certificate(data: bytes | str) -> x509.Certificate:
    """One PEM certificate; ``ValueError`` when ``data`` is not one."""
    return x509.load_pem_x509_certificate(data.encode("ascii") if isinstance(data, str) else data)


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; ``ValueError`` when there is none or one is broken."""
    return x509.load_pem_x509_certificates(data)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as operators compare it by eye: ``AB:CD:…`` (upper-case hex)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def public_key_id(key: PublicKeyTypes) -> bytes:
    """SHA-256 of the key's DER ``SubjectPublicKeyInfo``: a stable id for any key type."""
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()


def webcrypto_jwk(key: PublicKeyTypes) -> dict[str, str | bool] | None:
    """The public JWK (RFC 7517) a browser imports with WebCrypto to verify ES256, or ``None``.

    Only P-256 keys qualify (WebCrypto's ECDSA verify is what the offline
    page runs); the JWK carries the RFC 7638 members plus ``ext`` (W3C
    WebCrypto §19: the imported key may be exported), and no ``kid``/``alg``,
    which the page keeps beside it.
    """
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return {**public_jwk_members(key), "ext": True}
