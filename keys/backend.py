"""The two protocols every key backend speaks, and the JOSE helpers they share.

Modelled on pyHanko's one-hook ``Signer``: a backend (encrypted files,
PKCS#11 token) creates keys and hands out :class:`Signer` objects; callers
hold the signer, never the private key, which stays inside ``keys/`` (or
inside the HSM).

Signature formats: JOSE (RFC 7518 §3.4) and COSE want ECDSA signatures as the
fixed-size concatenation ``r || s``; CMS and X.509 want the DER
``ECDSA-Sig-Value``. ``Signer.sign(data, der=...)`` gives either.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import KeysError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "Signer",
    "KeyBackend",
    "check_algorithm",
    "b64url",
    "public_jwk",
    "public_jwk_members",
    "jwk_thumbprint",
    "der_to_raw_ecdsa",
    "raw_to_der_ecdsa",
]

ALGORITHMS = ("ES256", "RS256", "EdDSA")
"""JWS ``alg`` values Yiwang signs with (RFC 7518 §3.1, RFC 8037 §3.1)."""
DEFAULT_ALGORITHM = "ES256"

_P256_SIZE = 32  # bytes per coordinate / per r and s


@runtime_checkable
class Signer(Protocol):
    """A private key the caller may use but not see."""

    kid: str
    """Key id; for key-set keys the RFC 7638 JWK thumbprint."""
    algorithm: str
    """``ES256``, ``RS256`` or ``EdDSA``."""

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        """Sign ``data`` (hashed with SHA-256 for ES256 and RS256).

        ECDSA gives raw ``r || s`` by default (JOSE, COSE) and DER with
        ``der=True`` (CMS, X.509); RSA and EdDSA ignore ``der``.
        """
        ...

    def public_key(self) -> PublicKeyTypes:
        """The matching public key as a ``cryptography`` object."""
        ...

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with ``kid``, ``alg`` and ``use="sig"``."""
        ...


@runtime_checkable
class KeyBackend(Protocol):
    """Where private keys are created, kept and used."""

    name: str
    """``software`` or ``pkcs11``; recorded next to each handle."""

    def generate(self, algorithm: str, label: str) -> str:
        """Create a key pair and return its handle (opaque to callers)."""
        ...

    def signer(self, handle: str, algorithm: str, kid: str) -> Signer:
        """A signer for an existing key. Raises ``KeyNotFound`` if it is gone."""
        ...

    def public_key(self, handle: str) -> PublicKeyTypes:
        """The public half of an existing key."""
        ...

    def delete(self, handle: str) -> None:
        """Destroy the key; deleting a missing key is not an error."""
        ...


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise KeysError(f"unsupported algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    return algorithm


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, size: int | None = None) -> bytes:
    if size is None:
        size = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _required_members(key: PublicKeyTypes) -> dict[str, str]:
    """The RFC 7638 §3.2 required members of the key's JWK."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeysError("only P-256 EC keys are supported")
        nums = key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(_int_bytes(nums.x, _P256_SIZE)),
            "y": b64url(_int_bytes(nums.y, _P256_SIZE)),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rnums = key.public_numbers()
        return {"e": b64url(_int_bytes(rnums.e)), "kty": "RSA", "n": b64url(_int_bytes(rnums.n))}
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives import serialization

        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    raise KeysError(f"unsupported public key type {type(key).__name__}")


def public_jwk_members(key: PublicKeyTypes) -> dict[str, str]:
    """The RFC 7638 §3.2 required members of the key's public JWK (no ``kid``, ``alg``, ``use``)."""
    return _required_members(key)


def jwk_thumbprint(key: PublicKeyTypes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key id Yiwang uses."""
    members = _required_members(key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64url(hashlib.sha256(canonical).digest())


def public_jwk(key: PublicKeyTypes, *, kid: str, algorithm: str) -> dict[str, str]:
    """The public JWK (RFC 7517) with ``kid``, ``alg`` and ``use``."""
    jwk = _required_members(key)
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return jwk


def der_to_raw_ecdsa(signature: bytes, size: int = _P256_SIZE) -> bytes:
    """DER ``ECDSA-Sig-Value`` → ``r || s`` (RFC 7518 §3.4)."""
    r, s = decode_dss_signature(signature)
    return _int_bytes(r, size) + _int_bytes(s, size)


def raw_to_der_ecdsa(signature: bytes) -> bytes:
    """``r || s`` → DER ``ECDSA-Sig-Value``."""
    if len(signature) % 2:
        raise KeysError("a raw ECDSA signature has an even length")
    half = len(signature) // 2
    return encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )
