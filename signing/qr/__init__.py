"""The signed QR payload (``YW1:`` + Base43 of a COSE_Sign1 over a CBOR claim map).

One package, one module per concern:

* :mod:`signing.qr.claims` — what a payload asserts (:class:`QrClaims`) and
  its compact CBOR claim map;
* :mod:`signing.qr.codec` — the payload text: prefix, Base43, COSE_Sign1, key
  id, size limits; encode and decode (no trust decision);
* :mod:`signing.qr.trust` — the issuer keys a verifier accepts (:class:`TrustList`);
* :mod:`signing.qr.verify` — offline verification against a trust list, as
  named checks;
* :mod:`signing.qr.draw` — the QR code itself (zxing-cpp's encoder): matrix, SVG, PNG.

Every name callers used from the single module ``signing.qr`` is importable
from here.
"""

from __future__ import annotations

from .claims import CHINA_TZ, IDENTIFIER_ROOT, QrClaims
from .codec import (
    MAX_QR_VERSION,
    MAX_TEXT_LENGTH,
    PREFIX,
    DecodedPayload,
    decode_qr_payload,
    encode_qr_payload,
    qr_kid,
)
from .draw import QrCode, make_qr, qr_matrix, qr_png, qr_svg
from .trust import TrustedIssuer, TrustList
from .verify import CHECK_NAMES, Check, QrVerification, verify_qr_payload

__all__ = [
    "PREFIX",
    "MAX_QR_VERSION",
    "MAX_TEXT_LENGTH",
    "QrCode",
    "IDENTIFIER_ROOT",
    "CHINA_TZ",
    "QrClaims",
    "DecodedPayload",
    "Check",
    "QrVerification",
    "TrustedIssuer",
    "TrustList",
    "CHECK_NAMES",
    "qr_kid",
    "encode_qr_payload",
    "decode_qr_payload",
    "verify_qr_payload",
    "make_qr",
    "qr_matrix",
    "qr_svg",
    "qr_png",
]
