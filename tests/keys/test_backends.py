"""Conformance tests every key backend passes (software and PKCS#11 alike)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import import_key

from keys.backend import KeyBackend, Signer, jwk_thumbprint
from keys.errors import KeyNotFound, KeysError
from keys.jws import encode_jws

MESSAGE = b"yiwang conformance message \xe4\xb8\x80\xe7\xbd\x91"


def _verify(key: PublicKeyTypes, signature: bytes, data: bytes, *, der: bool) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not der:
            assert len(signature) == 64
            signature = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        key.verify(signature, data)


def _algorithms(backend: KeyBackend) -> tuple[str, ...]:
    return tuple(getattr(backend, "algorithms", ("ES256", "RS256", "EdDSA")))


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_signature_verifies_with_the_public_key(backend: KeyBackend, algorithm: str) -> None:
    if algorithm not in _algorithms(backend):
        pytest.skip(f"{backend.name} does not offer {algorithm}")
    handle = backend.generate(algorithm, "conformance")
    public = backend.public_key(handle)
    kid = jwk_thumbprint(public)
    signer = backend.signer(handle, algorithm, kid)
    assert isinstance(signer, Signer)
    assert signer.kid == kid and signer.algorithm == algorithm
    for der in (False, True):
        signature = signer.sign(MESSAGE, der=der)
        _verify(public, signature, MESSAGE, der=der)
        with pytest.raises(InvalidSignature):
            _verify(public, signature, MESSAGE + b"!", der=der)


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_jws_from_backend_verifies_with_its_public_jwk(backend: KeyBackend, algorithm: str) -> None:
    if algorithm not in _algorithms(backend):
        pytest.skip(f"{backend.name} does not offer {algorithm}")
    handle = backend.generate(algorithm, "conformance")
    signer = backend.signer(handle, algorithm, jwk_thumbprint(backend.public_key(handle)))
    jwk = signer.public_jwk()
    assert jwk["kid"] == signer.kid and jwk["alg"] == algorithm and jwk["use"] == "sig"
    token = encode_jws(signer, {"iss": "https://idp.example", "n": 1})
    # Verified by a JOSE library, not by our own code.
    obj = jws.deserialize_compact(token, import_key(jwk), algorithms=[algorithm])
    assert obj.headers() == {"alg": algorithm, "kid": signer.kid, "typ": "JWT"}
    assert obj.payload == b'{"iss":"https://idp.example","n":1}'


def test_keys_are_distinct_and_survive_lookup(backend: KeyBackend) -> None:
    a = backend.generate("ES256", "one")
    b = backend.generate("ES256", "two")
    assert a != b
    assert jwk_thumbprint(backend.public_key(a)) != jwk_thumbprint(backend.public_key(b))
    # A second signer for the same handle signs with the same key.
    s1 = backend.signer(a, "ES256", "k")
    s2 = backend.signer(a, "ES256", "k")
    _verify(s1.public_key(), s2.sign(MESSAGE), MESSAGE, der=False)


def test_deleted_key_is_gone(backend: KeyBackend) -> None:
    handle = backend.generate("ES256", "doomed")
    backend.delete(handle)
    with pytest.raises(KeyNotFound):
        backend.signer(handle, "ES256", "k")
    with pytest.raises(KeyNotFound):
        backend.public_key(handle)
    backend.delete(handle)  # deleting twice is not an error


def test_unknown_handle_and_algorithm_are_refused(backend: KeyBackend) -> None:
    with pytest.raises(KeyNotFound):
        backend.public_key("no-such-key-0000")
    with pytest.raises(KeysError, match="unsupported algorithm"):
        backend.generate("HS256", "x")
    handle = backend.generate("ES256", "typed")
    with pytest.raises(KeysError):
        backend.signer(handle, "RS256", "k")
