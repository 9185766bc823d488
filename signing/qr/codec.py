"""The signed QR payload text: prefix, Base43, COSE_Sign1, key id and size limits.

Format (docs/verifier-guide.md has it byte by byte)::

    "YW1:" + Base43( COSE_Sign1( CBOR claim map ) )

* ``YW1:`` — Yiwang payload, format version 1. Other prefixes (``HC1:``,
  URLs, …) are refused as "format".
* Base43 (:mod:`signing.base43`) keeps the text inside the QR alphanumeric
  set without space and ``%`` (phone camera apps mangle those), at 1.5
  characters per byte.
* COSE_Sign1 (:mod:`signing.cose`, RFC 9052 §4.2), ES256 by default, the key
  id (``kid``) being the first 8 bytes of the SHA-256 of the issuer's DER
  signer certificate (issue 5).
* The claim map is :mod:`signing.qr.claims`.

Nothing here checks a signature against a trusted key: that is
:mod:`signing.qr.verify`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keys.backend import Signer

from ..base43 import Base43Error, b43decode, b43encode
from ..cose import Sign1, cbor_decode_strict, sign1_decode, sign1_encode
from ..errors import PayloadError, PayloadTooLarge, SigningError
from .claims import QrClaims, from_claim_map, to_claim_map

__all__ = [
    "PREFIX",
    "MAX_QR_VERSION",
    "MAX_TEXT_LENGTH",
    "DecodedPayload",
    "qr_kid",
    "encode_qr_payload",
    "decode_qr_payload",
]

logger = logging.getLogger(__name__)

PREFIX = "YW1:"
"""Text prefix: Yiwang payload, format version 1."""
MAX_QR_VERSION = 11
"""Largest QR version allowed for a certificate (issue 5), at level M."""
MAX_TEXT_LENGTH = 366
"""Alphanumeric characters that fit QR version 11 at level M in one segment:
254 data codewords = 2032 bits; 4 (mode) + 11 (count) + 11 per pair + 6 for an
odd last character (ISO/IEC 18004 §7.4.4)."""
_MAX_INPUT = 4096
"""Longer texts are refused before any decoding work."""


@dataclass(frozen=True)
class DecodedPayload:
    """A parsed payload. Nothing in it has been verified."""

    kid: bytes
    algorithm: str
    """``ES256`` or ``EdDSA``."""
    claims: QrClaims
    signed_bytes: bytes
    """The COSE Sig_structure the signature covers."""
    signature: bytes
    """Raw signature (``r || s`` for ES256)."""
    message: Sign1


_KID_CACHE: dict[x509.Certificate, bytes] = {}


def qr_kid(certificate: x509.Certificate) -> bytes:
    """The QR key id: the first 8 bytes of SHA-256 of the DER signer certificate."""
    kid = _KID_CACHE.get(certificate)
    if kid is None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        kid = hashlib.sha256(der).digest()[:8]
        if len(_KID_CACHE) > 1024:
            _KID_CACHE.clear()
        _KID_CACHE[certificate] = kid
    return kid


# -- encoding -----------------------------------------------------------------


def encode_qr_payload(claims: QrClaims, signer: Signer, *, kid: bytes | None = None) -> str:
    """Sign ``claims`` and return the QR text (``YW1:...``).

    ``kid`` defaults to :func:`qr_kid` of ``signer.certificate`` (an
    ``AgencySigner`` from ``keys.pki``). Raises :class:`PayloadTooLarge` when
    the text would need a QR code above version 11 at level M.
    """
    if kid is None:
        certificate = getattr(signer, "certificate", None)
        if not isinstance(certificate, x509.Certificate):
            raise SigningError("the signer has no certificate; pass kid= explicitly")
        kid = qr_kid(certificate)
    payload = cbor2.dumps(to_claim_map(claims), canonical=True)
    text = PREFIX + b43encode(sign1_encode(payload, signer, kid))
    if len(text) > MAX_TEXT_LENGTH:
        raise PayloadTooLarge(
            f"the QR payload is {len(text)} characters ({len(payload)} bytes of claims); "
            f"at most {MAX_TEXT_LENGTH} fit QR version {MAX_QR_VERSION} at level M — "
            "shorten the holder name or put fewer fields into the QR",
            length=len(text),
            limit=MAX_TEXT_LENGTH,
        )
    logger.debug("QR payload encoded: %d characters, kid %s", len(text), kid.hex())
    return text


# -- decoding -----------------------------------------------------------------


def decode_qr_payload(text: str) -> DecodedPayload:
    """Parse a QR text without verifying it.

    Raises :class:`PayloadError` (and nothing else) for any input that is not
    a well-formed version 1 payload. Surrounding white space (a scanner's
    trailing newline) is ignored.
    """
    if not isinstance(text, str):
        raise PayloadError("a QR payload is text", reason="prefix")
    if len(text) > _MAX_INPUT:
        raise PayloadError("the text is far too long to be a certificate QR payload", reason="size")
    text = text.strip()
    if not text.startswith(PREFIX):
        head = text[:4]
        if head.startswith("HC1:"):
            raise PayloadError(
                "this is an EU Digital COVID Certificate (HC1:), not a Yiwang certificate",
                reason="prefix",
            )
        if text.lower().startswith(("http://", "https://")):
            raise PayloadError(
                "this QR code holds a web address, not a Yiwang certificate", reason="prefix"
            )
        raise PayloadError(f"a Yiwang certificate payload starts with {PREFIX}", reason="prefix")
    try:
        raw = b43decode(text[len(PREFIX) :])
    except Base43Error as exc:
        raise PayloadError(
            f"the payload text is not valid Base43: {exc}", reason="encoding"
        ) from None
    message = sign1_decode(raw)
    claims = from_claim_map(cbor_decode_strict(message.payload, what="claim set"))
    return DecodedPayload(
        message.kid,
        message.algorithm,
        claims,
        message.signed_bytes,
        message.signature,
        message,
    )
