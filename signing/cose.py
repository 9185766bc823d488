"""COSE_Sign1 (RFC 9052 §4.2) for the QR payload: build, parse, verify.

Only what the payload needs: one signer, ES256 (COSE alg -7) or EdDSA (-8),
the algorithm in the protected header and the key id in the unprotected one,
no external AAD. CBOR is always produced and read by ``cbor2`` (never by
hand), in deterministic encoding (RFC 8949 §4.2.1) when we write.

The signature comes from ``Signer.sign(Sig_structure)``: the private key
stays inside ``keys/`` (or an HSM), and COSE's ECDSA signature format is the
raw ``r || s`` that ``Signer.sign`` gives by default (RFC 9053 §2.1).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from keys.backend import Signer

from .errors import PayloadError, SigningError

__all__ = [
    "ALG_ES256",
    "ALG_EDDSA",
    "COSE_SIGN1_TAG",
    "Sign1",
    "sign1_encode",
    "sign1_decode",
    "sig_structure",
    "verify_signature",
    "cbor_decode_strict",
]

logger = logging.getLogger(__name__)

# RFC 9053 §2.1 and §2.2; IANA "COSE Algorithms".
ALG_ES256 = -7
ALG_EDDSA = -8
_ALG_BY_JOSE = {"ES256": ALG_ES256, "EdDSA": ALG_EDDSA}
_ALG_NAMES = {ALG_ES256: "ES256", ALG_EDDSA: "EdDSA"}
# RFC 9052 §3.1 header labels.
_HDR_ALG = 1
_HDR_KID = 4
# RFC 9052 §2: the CBOR tag for COSE_Sign1.
COSE_SIGN1_TAG = 18

_MAX_DEPTH = 6
_ECDSA_SHA256_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def _reject_tag(_decoder: Any) -> Any:
    raise ValueError("semantic CBOR tags are not used in this format")


def _keep_tag(tag: cbor2.CBORTag, _immutable: bool) -> cbor2.CBORTag:
    return tag


# cbor2's built-in semantic tags (dates, bignums, regular expressions, MIME,
# shared references, sets, ...) never appear in a payload: refuse them instead
# of letting cbor2 build objects from hostile input. Other tags stay CBORTag
# and fail the type checks, except COSE_Sign1's tag 18 at the top.
_NO_SEMANTIC_TAGS = {
    t: _reject_tag
    for t in (
        0,
        1,
        2,
        3,
        4,
        5,
        25,
        28,
        29,
        30,
        35,
        36,
        37,
        100,
        256,
        258,
        260,
        261,
        262,
        263,
        270,
        1004,
        55799,
    )
}
_PROTECTED_CACHE: dict[int, bytes] = {}
_MAPS = (dict, cbor2.frozendict)
_ARRAYS = (list, tuple)


_DECODER_OPTIONS: dict[str, Any] = {
    "max_depth": _MAX_DEPTH,
    "allow_indefinite": False,
    "allow_duplicate_keys": False,
    "tag_hook": _keep_tag,
    "semantic_decoders": _NO_SEMANTIC_TAGS,
}


def cbor_decode_strict(data: bytes, *, what: str) -> Any:
    """Decode exactly one CBOR item with no trailing bytes, no indefinite
    lengths, no duplicate map keys and a shallow nesting limit.

    Any failure (cbor2 raises several exception types on hostile input)
    becomes :class:`PayloadError`.
    """
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp, **_DECODER_OPTIONS).decode()
    except Exception as exc:  # cbor2 raises CBORDecodeError, ValueError, OverflowError, ...
        raise PayloadError(f"the {what} is not well-formed CBOR", reason="cbor") from exc
    if fp.tell() != len(data):
        raise PayloadError(f"the {what} has bytes after its CBOR item", reason="cbor")
    return value


def _protected_header(alg: int) -> bytes:
    cached = _PROTECTED_CACHE.get(alg)
    if cached is None:
        cached = _PROTECTED_CACHE[alg] = cbor2.dumps({_HDR_ALG: alg}, canonical=True)
    return cached


_KNOWN_PROTECTED = {
    _protected_header(ALG_ES256): {_HDR_ALG: ALG_ES256},
    _protected_header(ALG_EDDSA): {_HDR_ALG: ALG_EDDSA},
}


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes that are signed (RFC 9052 §4.4): ``["Signature1", protected, b"", payload]``."""
    return cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)


@dataclass(frozen=True)
class Sign1:
    """A parsed COSE_Sign1 message; nothing here has been verified."""

    protected: bytes
    """The serialized protected header, exactly as signed."""
    alg: int
    """COSE algorithm from the protected header (-7 ES256, -8 EdDSA)."""
    kid: bytes
    """Key id from the unprotected header (not integrity protected by itself:
    it only selects the key; the signature check is what binds it)."""
    payload: bytes
    signature: bytes
    signed_bytes: bytes = field(init=False, repr=False, compare=False)
    """The Sig_structure the signature covers."""

    def __post_init__(self) -> None:
        # Built here, not in a cached_property: every Sign1 comes from sign1_decode and is
        # verified, and Python 3.11's cached_property takes a lock on each first read.
        object.__setattr__(self, "signed_bytes", sig_structure(self.protected, self.payload))

    @property
    def algorithm(self) -> str:
        return _ALG_NAMES[self.alg]


def sign1_encode(payload: bytes, signer: Signer, kid: bytes) -> bytes:
    """Sign ``payload`` as a tagged COSE_Sign1 with ``signer``."""
    alg = _ALG_BY_JOSE.get(signer.algorithm)
    if alg is None:
        raise SigningError(f"a QR payload is signed with ES256 or EdDSA, not {signer.algorithm}")
    protected = _protected_header(alg)
    signature = signer.sign(sig_structure(protected, payload))
    if len(signature) != 64:
        raise SigningError(
            f"the signer returned a {len(signature)}-byte signature; COSE wants raw 64 bytes"
        )
    message = [protected, {_HDR_KID: kid}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, message), canonical=True)


def sign1_decode(data: bytes) -> Sign1:
    """Parse a COSE_Sign1 (tagged or not). Raises only :class:`PayloadError`."""
    item = cbor_decode_strict(data, what="COSE message")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise PayloadError(f"CBOR tag {item.tag} is not COSE_Sign1 (18)", reason="cose")
        item = item.value
    if not isinstance(item, _ARRAYS) or len(item) != 4:
        raise PayloadError("a COSE_Sign1 is an array of four items", reason="cose")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise PayloadError(
            "COSE_Sign1 protected header and payload are byte strings", reason="cose"
        )
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise PayloadError("the COSE signature must be 64 bytes", reason="cose")
    if not isinstance(unprotected, _MAPS):
        raise PayloadError("the COSE unprotected header must be a map", reason="cose")
    header = _KNOWN_PROTECTED.get(protected)
    if header is None:
        header = cbor_decode_strict(protected, what="COSE protected header") if protected else {}
    if not isinstance(header, _MAPS):
        raise PayloadError("the COSE protected header must be a map", reason="cose")
    alg = header.get(_HDR_ALG)
    if type(alg) is not int or alg not in _ALG_NAMES:
        raise PayloadError("the COSE algorithm must be ES256 (-7) or EdDSA (-8)", reason="cose")
    if len(header) != 1:
        # RFC 9052 §3.1: we do not understand other protected parameters ("crit" included).
        # The algorithm is the one key known to be there (found above).
        raise PayloadError(
            "the COSE protected header has parameters this verifier does not know", reason="cose"
        )
    kid = unprotected.get(_HDR_KID, header.get(_HDR_KID))
    if not isinstance(kid, bytes) or not kid:
        raise PayloadError("the COSE message carries no key id (kid)", reason="cose")
    if _HDR_ALG in unprotected:
        raise PayloadError("the COSE algorithm must be in the protected header", reason="cose")
    return Sign1(protected, alg, kid, payload, signature)


def verify_signature(message: Sign1, public_key: PublicKeyTypes) -> str | None:
    """Check the signature. Returns ``None`` when it verifies, else the reason."""
    data = message.signed_bytes
    sig = message.signature
    try:
        if message.alg == ALG_ES256:
            if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
                public_key.curve, ec.SECP256R1
            ):
                return "the payload says ES256 but the issuer's key is not a P-256 key"
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            # The same ECDSA over SHA-256 of the same bytes; hashlib's digest is cheaper
            # than the digest context cryptography sets up on every verify.
            public_key.verify(der, hashlib.sha256(data).digest(), _ECDSA_SHA256_PREHASHED)
        else:
            if not isinstance(public_key, ed25519.Ed25519PublicKey):
                return "the payload says EdDSA but the issuer's key is not an Ed25519 key"
            public_key.verify(sig, data)
    except (InvalidSignature, ValueError):
        return "the signature does not match the payload and the issuer's key"
    return None
