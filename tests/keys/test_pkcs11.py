"""The PKCS#11 backend on SoftHSM2: keys stay in the token, failures are clear."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import KeySet as JoseKeySet

from keys import pki
from keys.config import KeySettings
from keys.errors import BackendUnavailable
from keys.jws import encode_jws
from keys.keyring import open_keyring
from keys.lifecycle import KeyState
from keys.pkcs11 import Pkcs11Backend

pytestmark = pytest.mark.pkcs11


def test_signature_made_in_softhsm_verifies_with_the_exported_public_key(
    pkcs11_settings: KeySettings,
) -> None:
    backend = Pkcs11Backend.from_settings(pkcs11_settings)
    handle = backend.generate("ES256", "export-test")
    exported = backend.public_key(handle).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = backend.signer(handle, "ES256", "k").sign(b"hello token", der=True)
    public = serialization.load_pem_public_key(exported)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"hello token", ec.ECDSA(hashes.SHA256()))


def test_private_keys_are_sensitive_and_never_extractable(
    pkcs11_settings: KeySettings, softhsm: dict[str, str]
) -> None:
    backend = Pkcs11Backend.from_settings(pkcs11_settings)
    handle = backend.generate("ES256", "attr-test")
    # Look at the token directly, not through our backend (the login is
    # shared by every session of this process, so no PIN is needed again).
    token = pkcs11.lib(softhsm["module"]).get_token(token_label=softhsm["token"])
    with token.open() as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=bytes.fromhex(handle))
        assert key[pkcs11.Attribute.SENSITIVE] is True
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.NEVER_EXTRACTABLE] is True
        assert key[pkcs11.Attribute.TOKEN] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[pkcs11.Attribute.VALUE]  # noqa: B018


def test_keyring_on_the_token_rotates_and_publishes(pkcs11_settings: KeySettings) -> None:
    keyring = open_keyring(pkcs11_settings, reload_seconds=0)
    ks = keyring.keyset("idp-token")
    token = encode_jws(ks.active(), {"sub": "hsm"})
    ks.rotate()
    assert {i.backend for i in ks.list()} == {"pkcs11"}
    jwks = JoseKeySet.import_key_set(json.loads(json.dumps(ks.jwks())))
    assert jwt.decode(token, jwks, algorithms=["ES256"]).claims == {"sub": "hsm"}
    assert [i.state for i in ks.list()].count(KeyState.RETIRING) == 1
    assert not (keyring.directory / "private").exists()  # nothing on disk
    # Secrets are still sealed under the KEK, beside the token.
    assert len(keyring.secret("idp-cookie")) == 32


def test_region_pki_with_ca_keys_in_the_token(pkcs11_settings: KeySettings) -> None:
    keyring = open_keyring(pkcs11_settings)
    region = pki.init_region(keyring, region="110000", name="北京市")
    agency = pki.issue_signer(keyring, uscc="91350100M000100Y43", name="测试局")
    agency.certificate.verify_directly_issued_by(region.issuing)
    region.issuing.verify_directly_issued_by(region.root)
    crl = x509.load_der_x509_crl(pki.current_crl(keyring))
    assert crl.is_signature_valid(region.issuing.public_key())  # type: ignore[arg-type]


def test_missing_token_is_reported(pkcs11_settings: KeySettings) -> None:
    wrong = dataclasses.replace(pkcs11_settings, pkcs11_token_label="no-such-token")  # noqa: S106
    with pytest.raises(BackendUnavailable, match="no PKCS#11 token labelled 'no-such-token'"):
        open_keyring(wrong)


def test_wrong_pin_is_reported_without_the_pin(pkcs11_settings: KeySettings) -> None:
    wrong = dataclasses.replace(pkcs11_settings, pkcs11_pin="987654")
    with pytest.raises(BackendUnavailable, match="rejected the PIN") as e:
        open_keyring(wrong)
    assert "987654" not in str(e.value)


def test_missing_pin_or_library_is_reported(pkcs11_settings: KeySettings, tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="YIWANG_PKCS11_PIN"):
        open_keyring(dataclasses.replace(pkcs11_settings, pkcs11_pin=None))
    missing = tmp_path / "libnothing.so"
    with pytest.raises(BackendUnavailable, match="does not exist"):
        open_keyring(dataclasses.replace(pkcs11_settings, pkcs11_module=missing))
    assert "1234" not in repr(pkcs11_settings)
