"""A small test PKI and an in-test signer speaking the ``keys`` Signer protocol.

Region root -> issuing CA -> agency signer certificate, with the profile of
docs/design.md (EKU emailProtection + documentSigning, a CRL distribution point).
The signer holds its key in memory; it stands in for ``keys.pki.AgencySigner``
so these tests do not depend on the key store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.backend import public_jwk

DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ISSUER_USCC = "91110108MA01C2XQ3K"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class MemorySigner:
    """The ``keys.backend.Signer`` protocol over an in-memory key (tests only)."""

    def __init__(
        self, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, *, kid: str = "test"
    ) -> None:
        self._key = key
        self.kid = kid
        self.algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"
        self.sign_calls = 0

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        self.sign_calls += 1
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        sig = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        if der:
            return sig
        r, s = decode_dss_signature(sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key(self) -> PublicKeyTypes:
        return self._key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key(), kid=self.kid, algorithm=self.algorithm)


class MemoryAgencySigner(MemorySigner):
    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        uscc: str,
        certificate: x509.Certificate,
        chain: list[x509.Certificate],
    ) -> None:
        super().__init__(key, kid="agency-" + uscc)
        self.uscc = uscc
        self.certificate = certificate
        self.chain = chain


@dataclass
class Pki:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    signer: MemoryAgencySigner

    def crl(self, revoked_serials: list[int] = ()) -> bytes:  # type: ignore[assignment]
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing.subject)
            .last_update(NOW - dt.timedelta(days=1))
            .next_update(NOW + dt.timedelta(days=3650))
        )
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(NOW - dt.timedelta(days=1))
                .build()
            )
        return builder.sign(self.issuing_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )


def _name(cn: str, *, org: str = "Yiwang Test", serial: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ]
    if serial:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _ca(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    path_len: int,
) -> x509.Certificate:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def make_pki(name: str = "Test Region", uscc: str = ISSUER_USCC) -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca(_name(f"{name} Root CA"), root_key, _name(f"{name} Root CA"), root_key, path_len=1)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = _ca(_name(f"{name} Issuing CA"), issuing_key, root.subject, root_key, path_len=0)
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("测试市市场监督管理局", org="测试市市场监督管理局", serial=uscc))
        .issuer_name(issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 5))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
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
                        [x509.UniformResourceIdentifier("http://127.0.0.1:9/crl/issuing.crl")],
                        None,
                        None,
                        None,
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_key.public_key()),
            critical=False,
        )
        .sign(issuing_key, hashes.SHA256())
    )
    signer = MemoryAgencySigner(key, uscc=uscc, certificate=cert, chain=[issuing, root])
    return Pki(root=root, issuing=issuing, issuing_key=issuing_key, signer=signer)


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def other_pki() -> Pki:
    return make_pki("Other Region")
