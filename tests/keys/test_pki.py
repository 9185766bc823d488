"""The agency PKI: profiles, validation to the region root, revocation, CRLs."""

from __future__ import annotations

import asyncio
import json

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from keys import pki
from keys.errors import InvalidIdentifier, KeyNotFound, KeysError
from keys.keyring import Keyring

USCC = "91350100M000100Y43"
OTHER_USCC = "91110000600037341L"
CRL_URL = "http://certstore.example/pki/crl/issuing.crl"


@pytest.fixture
def region(keyring: Keyring) -> pki.RegionCA:
    return pki.init_region(keyring, region="110000", name="北京市", crl_url=CRL_URL)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _validate(keyring: Keyring, signer: pki.AgencySigner, *, crl: bytes | None = None) -> object:
    """Path validation by pyhanko-certvalidator, offline, with our CRL."""
    context = ValidationContext(
        trust_roots=[_asn1(pki.region_root(keyring))],
        allow_fetching=False,
        crls=[asn1_crl.CertificateList.load(crl or pki.current_crl(keyring))],
        revocation_mode="hard-fail",
    )
    validator = CertificateValidator(
        _asn1(signer.certificate),
        intermediate_certs=[_asn1(c) for c in signer.chain],
        validation_context=context,
    )
    return asyncio.run(
        validator.async_validate_usage(
            {"digital_signature", "non_repudiation"}, extended_key_usage={"email_protection"}
        )
    )


def test_signer_certificate_follows_the_profile(keyring: Keyring, region: pki.RegionCA) -> None:
    signer = pki.issue_signer(keyring, uscc=USCC.lower(), name="福州市市场监督管理局")
    cert = signer.certificate
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == USCC
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == USCC
    assert (
        subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "福州市市场监督管理局"
    )
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "CN"
    assert pki.uscc_of(cert) == USCC == signer.uscc

    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, pki.DOCUMENT_SIGNING}
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in dp[0].full_name or []] == [CRL_URL]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = region.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(signer.public_key())  # type: ignore[arg-type]
    cert.verify_directly_issued_by(region.issuing)
    assert signer.chain == [region.issuing, region.root]


def test_ca_certificates_are_cas(region: pki.RegionCA) -> None:
    for cert, path_length in ((region.root, 1), (region.issuing, 0)):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    region.root.verify_directly_issued_by(region.root)
    region.issuing.verify_directly_issued_by(region.root)


def test_signer_validates_to_the_region_root(keyring: Keyring, region: pki.RegionCA) -> None:
    signer = pki.issue_signer(keyring, uscc=USCC, name="测试局")
    path = _validate(keyring, signer)
    assert [c.sha256 for c in path] == [  # type: ignore[attr-defined]
        _asn1(region.root).sha256,
        _asn1(region.issuing).sha256,
        _asn1(signer.certificate).sha256,
    ]


def test_revoked_signer_fails_validation(keyring: Keyring, region: pki.RegionCA) -> None:
    signer = pki.issue_signer(keyring, uscc=USCC, name="测试局")
    other = pki.issue_signer(keyring, uscc=OTHER_USCC, name="另一局")
    before = x509.load_der_x509_crl(pki.current_crl(keyring))
    pki.revoke_signer(keyring, uscc=USCC, reason="keyCompromise")
    crl = x509.load_der_x509_crl(pki.current_crl(keyring))
    assert crl.is_signature_valid(region.issuing.public_key())  # type: ignore[arg-type]
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    entry = crl.get_revoked_certificate_by_serial_number(signer.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    with pytest.raises(RevokedError):
        _validate(keyring, signer)
    _validate(keyring, other)  # the other agency is unaffected
    with pytest.raises(KeyNotFound, match="revoked"):
        keyring.agency_signer(USCC)
    with pytest.raises(KeysError, match="already revoked"):
        pki.revoke_signer(keyring, uscc=USCC, reason="unspecified")


def test_an_agency_has_one_current_signer(keyring: Keyring, region: pki.RegionCA) -> None:
    first = pki.issue_signer(keyring, uscc=USCC, name="测试局")
    assert keyring.agency_signer(USCC).certificate == first.certificate
    with pytest.raises(KeysError, match="already has"):
        pki.issue_signer(keyring, uscc=USCC, name="测试局")
    second = pki.issue_signer(keyring, uscc=USCC, name="测试局", replace=True)
    assert keyring.agency_signer(USCC).certificate == second.certificate  # cache follows
    crl = x509.load_der_x509_crl(pki.current_crl(keyring))
    entry = crl.get_revoked_certificate_by_serial_number(first.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.superseded
    )
    _validate(keyring, second)
    assert [(s.uscc, s.revoked) for s in pki.list_signers(keyring)] == [(USCC, False)]


def test_invalid_uscc_is_refused_and_nothing_is_written(
    keyring: Keyring, region: pki.RegionCA
) -> None:
    keys_before = set((keyring.directory / "private").iterdir())
    with pytest.raises(InvalidIdentifier, match="check character") as e:
        pki.issue_signer(keyring, uscc=USCC[:-1] + "0", name="测试局")
    assert e.value.reason == "check_character"
    with pytest.raises(InvalidIdentifier):
        pki.issue_signer(keyring, uscc="91350100M000100Y4", name="测试局")
    assert set((keyring.directory / "private").iterdir()) == keys_before
    assert pki.list_signers(keyring) == []


def test_setup_errors(keyring: Keyring) -> None:
    with pytest.raises(KeyNotFound, match="ca init"):
        pki.issue_signer(keyring, uscc=USCC, name="测试局")
    with pytest.raises(KeysError, match="6-digit"):
        pki.init_region(keyring, region="BJ", name="北京市")
    pki.init_region(keyring, region="110000", name="北京市")
    with pytest.raises(KeysError, match="only once"):
        pki.init_region(keyring, region="110000", name="北京市")
    with pytest.raises(KeysError, match="revocation reason"):
        pki.revoke_signer(keyring, uscc=USCC, reason="bored")


def test_ca_keys_are_sealed_by_the_backend(keyring: Keyring, region: pki.RegionCA) -> None:
    state = json.loads((keyring.directory / "pki" / "region.json").read_text())
    for ref in (state["root_key"], state["issuing_key"]):
        assert ref["backend"] == "software"
        blob = (keyring.directory / "private" / f"{ref['handle']}.key").read_bytes()
        assert blob.startswith(b"YWS1") and b"PRIVATE" not in blob
    assert not list((keyring.directory / "pki").glob("*.key"))


def test_crl_is_re_signed_before_it_expires(keyring: Keyring, region: pki.RegionCA) -> None:
    import datetime as dt

    from freezegun import freeze_time

    first = x509.load_der_x509_crl(pki.current_crl(keyring))
    assert pki.current_crl(keyring) == first.public_bytes(Encoding.DER)  # still fresh: same bytes
    assert first.next_update_utc is not None
    with freeze_time(first.next_update_utc - dt.timedelta(hours=12)):
        later = x509.load_der_x509_crl(pki.current_crl(keyring))
    assert later.next_update_utc is not None and later.next_update_utc > first.next_update_utc
    number = later.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    assert later.is_signature_valid(region.issuing.public_key())  # type: ignore[arg-type]
