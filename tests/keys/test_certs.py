"""keys.certs: the certificate and public-key recipes services use instead of cryptography.hazmat."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

from keys.certs import (
    certificate_der,
    certificate_fingerprint,
    certificate_pem,
    load_pem_certificate,
    load_pem_certificates,
    public_key_id,
    webcrypto_jwk,
)


def _self_signed(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_pem_text_loads_back_as_the_same_certificate() -> None:
    cert = _self_signed("a")
    pem = certificate_pem(cert)
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n") and pem.endswith("-----END CERTIFICATE-----\n")
    assert certificate_der(load_pem_certificate(pem)) == certificate_der(cert)
    assert certificate_der(load_pem_certificate(pem.encode())) == certificate_der(cert)


def test_two_certificates_differ_by_der_and_a_bundle_loads_both() -> None:
    a, b = _self_signed("a"), _self_signed("b")
    assert certificate_der(a) != certificate_der(b)
    both = load_pem_certificates((certificate_pem(a) + certificate_pem(b)).encode())
    assert [certificate_der(c) for c in both] == [certificate_der(a), certificate_der(b)]


def test_a_broken_pem_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_pem_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_fingerprint_is_colon_separated_upper_case_sha256_of_the_der() -> None:
    cert = _self_signed("a")
    fp = certificate_fingerprint(cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp)
    assert fp.replace(":", "").lower() == hashlib.sha256(certificate_der(cert)).hexdigest()


def test_public_key_id_is_the_sha256_of_the_subject_public_key_info() -> None:
    k1 = ec.generate_private_key(ec.SECP256R1()).public_key()
    k2 = ed25519.Ed25519PrivateKey.generate().public_key()
    spki = k1.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert public_key_id(k1) == hashlib.sha256(spki).digest()
    assert public_key_id(k1) != public_key_id(k2) and len(public_key_id(k2)) == 32


def test_webcrypto_jwk_of_a_p256_key_imports_as_the_same_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk = webcrypto_jwk(key)
    assert jwk is not None
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["ext"] is True
    assert set(jwk) == {"kty", "crv", "x", "y", "ext"}  # no private member, no kid/alg/use
    members = {k: v for k, v in jwk.items() if k != "ext"}
    imported = ECKey.import_key(members).get_op_key("verify")
    assert imported.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == key.public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate().public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
    ],
    ids=["ed25519", "rsa", "p384"],
)
def test_webcrypto_jwk_is_none_for_keys_the_browser_page_does_not_check(key: object) -> None:
    assert webcrypto_jwk(key) is None  # type: ignore[arg-type]
