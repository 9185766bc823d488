"""The signed QR payload: codec, trust list, offline verification, QR drawing.

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
* The claim map uses small integer keys and compact values (dates as days
  since 1970-01-01, the identifier split into its parts) so a personal
  certificate takes about 200 bytes and every demo type fits a version 11 code
  at level M (DESIGN.md, "QR codes").

Only data a verifier compares with the paper is in the payload: the
identifier, type, issuer, holder name, *masked* holder code, dates and the
status-list position — never the full ID number.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, NamedTuple

import cbor2
import qrcode
import qrcode.constants
import qrcode.util
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from keys.backend import Signer

from .base43 import Base43Error, b43decode, b43encode
from .cose import Sign1, cbor_decode_strict, sign1_decode, sign1_encode, verify_signature
from .errors import PayloadError, PayloadTooLarge, SigningError

__all__ = [
    "PREFIX",
    "MAX_QR_VERSION",
    "MAX_TEXT_LENGTH",
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
QR_MASK_PATTERN = 2
"""Fixed mask: choosing the best of 8 costs about 15 ms per code (DESIGN.md)."""
IDENTIFIER_ROOT = "1.2.156.3005.2"
"""Prefix of every certificate identifier (GB/T 36904, *to confirm*: DESIGN.md)."""
CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8), "CST")
"""Certificate dates are calendar days in China Standard Time."""
_EPOCH = _dt.date(1970, 1, 1)

# Claim map keys (docs/verifier-guide.md, "Claims").
_C_TYPE = 1
_C_ISSUER = 2
_C_SERIAL = 3
_C_VERSION = 4
_C_CHECK = 5
_C_NAME = 6
_C_CODE = 7
_C_CODE_TYPE = 8
_C_FROM = 9
_C_UNTIL = 10
_C_ISSUED = 11
_C_STATUS_LIST = 12
_C_STATUS_INDEX = 13
_C_FIELDS = 14
_KNOWN_CLAIMS = frozenset(range(1, 15))
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_REQUIRED_CLAIMS = (
    _C_TYPE,
    _C_ISSUER,
    _C_SERIAL,
    _C_VERSION,
    _C_CHECK,
    _C_NAME,
    _C_CODE,
    _C_CODE_TYPE,
    _C_FROM,
)

_REQUIRED_SET = frozenset(_REQUIRED_CLAIMS)
CHECK_NAMES = ("format", "signature", "issuer_trusted", "type_allowed", "validity")


@dataclass(frozen=True)
class QrClaims:
    """What a QR payload asserts: only what a verifier compares with the paper."""

    identifier: str
    """Full certificate identifier ``1.2.156.3005.2.<type>.<issuer uscc>.<serial>.<version>.<check>``."""
    type_code: str
    issuer_uscc: str
    holder_name: str
    holder_code_masked: str
    """The holder's code as printed: ``110101********123X`` for a person, the
    credit code for a company. Never the full ID number."""
    holder_code_type: str
    """``111`` resident ID number, ``001`` unified social credit code."""
    valid_from: _dt.date
    valid_until: _dt.date | None
    """``None``: no end date (long-term)."""
    issued_at: _dt.date
    status_list: str | None = None
    """Which status list holds this certificate's status (issue 6)."""
    status_index: int | None = None
    """Its position in that list."""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """The few type-specific fields the type puts into the QR."""

    def __post_init__(self) -> None:
        if not isinstance(self.fields, MappingProxyType):
            object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def identifier_parts(self) -> tuple[str, str, str, str, str]:
        """``(type, issuer uscc, serial, version, check)`` from the identifier."""
        return _split_identifier(self.identifier)


def _split_identifier(identifier: str) -> tuple[str, str, str, str, str]:
    root = IDENTIFIER_ROOT + "."
    if not identifier.startswith(root):
        raise SigningError(f"a certificate identifier starts with {root}")
    parts = identifier[len(root) :].split(".")
    if len(parts) != 5 or not all(parts):
        raise SigningError(
            "a certificate identifier is 1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>"
        )
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def _join_identifier(type_code: str, uscc: str, serial: str, version: str, check: str) -> str:
    return f"{IDENTIFIER_ROOT}.{type_code}.{uscc}.{serial}.{version}.{check}"


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


class Check(NamedTuple):
    """One named verification step and its outcome (immutable)."""

    name: str
    ok: bool
    reason: str
    """In English; says why it failed (or what was confirmed)."""


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose QR payloads this verifier accepts (one signer certificate)."""

    uscc: str
    name: str
    region: str
    public_key: PublicKeyTypes
    certificate: x509.Certificate
    allowed_types: frozenset[str]
    not_after: _dt.datetime
    """End of the signer certificate's validity (UTC)."""

    @property
    def kid(self) -> bytes:
        return qr_kid(self.certificate)

    @classmethod
    def from_certificate(
        cls,
        certificate: x509.Certificate,
        *,
        uscc: str,
        name: str,
        region: str,
        allowed_types: Iterable[str],
    ) -> TrustedIssuer:
        return cls(
            uscc=uscc,
            name=name,
            region=region,
            public_key=certificate.public_key(),
            certificate=certificate,
            allowed_types=frozenset(allowed_types),
            not_after=certificate.not_valid_after_utc,
        )


class TrustList:
    """``kid -> TrustedIssuer``: the issuer keys a verifier accepts offline.

    certstore fills it from its issuers and from imported regional trust
    lists (issue 6); this class only looks keys up.
    """

    def __init__(self, issuers: Iterable[TrustedIssuer] = ()) -> None:
        self._by_kid: dict[bytes, TrustedIssuer] = {}
        for issuer in issuers:
            self.add(issuer)

    def add(self, issuer: TrustedIssuer) -> None:
        self._by_kid[issuer.kid] = issuer

    def get(self, kid: bytes) -> TrustedIssuer | None:
        return self._by_kid.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __iter__(self) -> Iterator[TrustedIssuer]:
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)


@dataclass(frozen=True)
class QrVerification:
    """The outcome of :func:`verify_qr_payload`: valid only if every check passed."""

    valid: bool
    checks: list[Check]
    claims: QrClaims | None
    issuer: TrustedIssuer | None
    kid: bytes | None = None

    def check(self, name: str) -> Check | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    def with_check(self, check: Check) -> QrVerification:
        """A copy with one more check (certstore adds ``status``)."""
        checks = [*self.checks, check]
        return replace(self, checks=checks, valid=all(c.ok for c in checks))


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


def _days(d: _dt.date) -> int:
    return (d - _EPOCH).days


def _compact_number(value: str) -> int | str:
    """``"123"`` -> 123 (shorter in CBOR); ``"007"`` or ``"A1"`` stay text."""
    if value.isascii() and value.isdigit() and str(int(value)) == value and int(value) < 2**63:
        return int(value)
    return value


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_PAIRS = [a + b for a in _USCC_ALPHABET for b in _USCC_ALPHABET]  # 961 two-character strings
_MAPS = (dict, cbor2.frozendict)
_PACKED_USCC_LEN = 12  # 31**18 < 2**96


def _pack_code(code: str) -> str | bytes:
    """A credit code (GB 32100 alphabet, 18 characters) as a 12-byte base-31 number."""
    if len(code) != 18 or any(c not in _USCC_VALUE for c in code):
        return code
    n = 0
    for c in code:
        n = n * 31 + _USCC_VALUE[c]
    return n.to_bytes(_PACKED_USCC_LEN, "big")


_UNPACKED: dict[bytes, str] = {}  # packed credit code -> text; issuers repeat


def _unpack_code(value: Any, what: str) -> str:
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    if isinstance(value, bytes) and len(value) == _PACKED_USCC_LEN:
        known = _UNPACKED.get(value)
        if known is not None:
            return known
        n = int.from_bytes(value, "big")
        if n < 31**18:
            pairs = []
            for _ in range(9):
                n, d = divmod(n, 961)
                pairs.append(_USCC_PAIRS[d])
            code = "".join(reversed(pairs))
            if len(_UNPACKED) < 4096:
                _UNPACKED[value] = code
            return code
    raise _bad(f"the {what} claim must be text or a packed credit code")


def _pack_text(text: str) -> str | bytes:
    """Chinese text as GB 18030 bytes when that is shorter than UTF-8 (2 bytes
    per common character instead of 3); anything else stays a text string.

    Only when every non-ASCII character has a two-byte GB 18030 code and none
    is a private-use character: the few mappings that changed between
    GB 18030-2005 and -2022 are all four-byte or private-use codes, so every
    decoder (Python's codec, browsers' ``TextDecoder("gb18030")``) reads the
    same text back.
    """
    if text.isascii():
        return text
    try:
        gb = text.encode("gb18030")
    except UnicodeError:
        return text
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    if len(gb) != len(text) + non_ascii or any("\ue000" <= ch <= "\uf8ff" for ch in text):
        return text
    return gb


def _unpack_text(value: Any, what: str, *, max_len: int = 200) -> str:
    if isinstance(value, bytes) and 0 < len(value) <= 3 * max_len:
        try:
            value = value.decode("gb18030")
        except UnicodeError:
            raise _bad(f"the {what} claim is not valid GB 18030 text") from None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _bad(f"the {what} claim must be non-empty text")
    return value


def _claims_map(claims: QrClaims) -> dict[int, Any]:
    type_code, uscc, serial, version, check = _split_identifier(claims.identifier)
    if type_code != claims.type_code:
        raise SigningError("the identifier's type part differs from the type code")
    if uscc != claims.issuer_uscc:
        raise SigningError("the identifier's issuer part differs from the issuer's credit code")
    m: dict[int, Any] = {
        _C_TYPE: claims.type_code,
        _C_ISSUER: _pack_code(claims.issuer_uscc),
        _C_SERIAL: _compact_number(serial),
        _C_VERSION: _compact_number(version),
        _C_CHECK: check,
        _C_NAME: _pack_text(claims.holder_name),
        _C_CODE: _pack_code(claims.holder_code_masked),
        _C_CODE_TYPE: (
            int(claims.holder_code_type)
            if len(claims.holder_code_type) == 3 and claims.holder_code_type.isdigit()
            else claims.holder_code_type
        ),
        _C_FROM: _days(claims.valid_from),
    }
    if claims.valid_until is not None:
        m[_C_UNTIL] = _days(claims.valid_until)
    if claims.issued_at != claims.valid_from:
        m[_C_ISSUED] = _days(claims.issued_at)
    if (claims.status_list is None) != (claims.status_index is None):
        raise SigningError("status_list and status_index go together")
    if claims.status_list is not None and claims.status_index is not None:
        if claims.status_index < 0:
            raise SigningError("status_index must not be negative")
        m[_C_STATUS_LIST] = claims.status_list
        m[_C_STATUS_INDEX] = claims.status_index
    if claims.fields:
        m[_C_FIELDS] = {k: _pack_text(v) for k, v in claims.fields.items()}
    return m


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
    payload = cbor2.dumps(_claims_map(claims), canonical=True)
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


def _bad(message: str) -> PayloadError:
    return PayloadError(message, reason="claims")


def _text(m: Mapping[Any, Any], key: int, what: str, *, max_len: int = 200) -> str:
    value = m.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _bad(f"the {what} claim must be non-empty text")
    return value


def _number_text(m: Mapping[Any, Any], key: int, what: str) -> str:
    value = m.get(key)
    if type(value) is int and 0 <= value < 2**64:
        return str(value)
    if isinstance(value, str) and value and len(value) <= 64:
        return value
    raise _bad(f"the {what} claim must be a number or text")


def _date(m: Mapping[Any, Any], key: int, what: str) -> _dt.date | None:
    value = m.get(key)
    if value is None and key not in m:
        return None
    if type(value) is not int or not -700_000 <= value <= 2_900_000:
        raise _bad(f"the {what} claim must be a day number")
    return _dt.date.fromordinal(_EPOCH_ORDINAL + value)


def _part(value: str, what: str) -> str:
    if "." in value:
        raise _bad(f"the {what} claim must not contain a dot")
    return value


def _claims_from_map(m: Any) -> QrClaims:
    if not isinstance(m, _MAPS):
        raise _bad("the claim set must be a CBOR map")
    keys = m.keys()
    if not _KNOWN_CLAIMS.issuperset(keys) or not all(type(k) is int for k in keys):
        raise _bad("the claim set has keys this version does not define")
    if not _REQUIRED_SET.issubset(keys):
        missing = sorted(_REQUIRED_SET - set(keys))
        raise _bad(f"the claim set lacks claim {missing[0]}")
    type_code = _part(_text(m, _C_TYPE, "type", max_len=32), "type")
    uscc = _part(_unpack_code(m[_C_ISSUER], "issuer"), "issuer")
    serial = _part(_number_text(m, _C_SERIAL, "serial"), "serial")
    version = _part(_number_text(m, _C_VERSION, "version"), "version")
    check = _part(_text(m, _C_CHECK, "check character", max_len=4), "check character")
    code_type_raw = m[_C_CODE_TYPE]
    if type(code_type_raw) is int and 0 <= code_type_raw <= 999:
        code_type = f"{code_type_raw:03d}"
    elif isinstance(code_type_raw, str) and 0 < len(code_type_raw) <= 8:
        code_type = code_type_raw
    else:
        raise _bad("the holder code type claim must be a 3-digit code")
    valid_from = _date(m, _C_FROM, "valid-from")
    assert valid_from is not None  # required above
    issued = _date(m, _C_ISSUED, "issued-at") or valid_from
    status_list: str | None = None
    status_index: int | None = None
    if _C_STATUS_LIST in m or _C_STATUS_INDEX in m:
        status_list = _text(m, _C_STATUS_LIST, "status list", max_len=200)
        status_index = m.get(_C_STATUS_INDEX)
        if type(status_index) is not int or not 0 <= status_index < 2**32:
            raise _bad("the status index claim must be a non-negative integer")
    fields_raw = m.get(_C_FIELDS, {})
    if not isinstance(fields_raw, _MAPS) or not all(
        isinstance(k, str) and 0 < len(k) <= 64 for k in fields_raw
    ):
        raise _bad("the fields claim must map text to text")
    fields = {k: _unpack_text(v, "field") for k, v in fields_raw.items()}
    return QrClaims(
        identifier=_join_identifier(type_code, uscc, serial, version, check),
        type_code=type_code,
        issuer_uscc=uscc,
        holder_name=_unpack_text(m[_C_NAME], "holder name"),
        holder_code_masked=_unpack_code(m[_C_CODE], "holder code"),
        holder_code_type=code_type,
        valid_from=valid_from,
        valid_until=_date(m, _C_UNTIL, "valid-until"),
        issued_at=issued,
        status_list=status_list,
        status_index=status_index,
        fields=fields,
    )


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
    claims = _claims_from_map(cbor_decode_strict(message.payload, what="claim set"))
    return DecodedPayload(
        kid=message.kid,
        algorithm=message.algorithm,
        claims=claims,
        signed_bytes=message.signed_bytes,
        signature=message.signature,
        message=message,
    )


# -- verification -------------------------------------------------------------


def _aware(now: _dt.datetime) -> _dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=_dt.UTC)


def _day_start(d: _dt.date) -> _dt.datetime:
    return _dt.datetime.combine(d, _dt.time(), tzinfo=CHINA_TZ)


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check(n, False, f"not checked: {why}") for n in names]


def verify_qr_payload(
    text: str,
    trust: TrustList,
    *,
    now: _dt.datetime,
    skew: _dt.timedelta = _dt.timedelta(minutes=5),
) -> QrVerification:
    """Verify a QR text offline against ``trust``.

    Checks, in order (each named in the result, with a reason):

    ``format``
        The text is a well-formed ``YW1:`` payload.
    ``signature``
        The ``kid`` is in the trust list and the COSE signature verifies
        under that issuer's key.
    ``issuer_trusted``
        The signing issuer is the one the payload names, and its signer
        certificate was valid on the issue date.
    ``type_allowed``
        That issuer may issue this certificate type.
    ``validity``
        ``now`` lies between the start of ``valid_from`` and the end of
        ``valid_until`` (China Standard Time), allowing ``skew``.

    Certificate status (revoked, suspended) comes from the status list
    (issue 6); certstore adds it with :meth:`QrVerification.with_check`.
    """
    now = _aware(now)
    try:
        decoded = decode_qr_payload(text)
    except PayloadError as exc:
        checks = [
            Check("format", False, str(exc)),
            *_skipped(CHECK_NAMES[1:], "the payload could not be read"),
        ]
        return QrVerification(valid=False, checks=checks, claims=None, issuer=None)
    claims = decoded.claims
    checks = [Check("format", True, f"a well-formed {PREFIX} payload ({decoded.algorithm})")]
    issuer = trust.get(decoded.kid)
    if issuer is None:
        checks.append(
            Check(
                "signature",
                False,
                f"key id {decoded.kid.hex()} is not in the trust list: unknown signer",
            )
        )
        checks += _skipped(("issuer_trusted", "type_allowed"), "the signer is unknown")
        checks.append(_validity(claims, now, skew))
        return QrVerification(
            valid=False, checks=checks, claims=claims, issuer=None, kid=decoded.kid
        )
    problem = verify_signature(decoded.message, issuer.public_key)
    if problem is None:
        checks.append(
            Check("signature", True, f"signed by key {decoded.kid.hex()} of {issuer.uscc}")
        )
    else:
        checks.append(Check("signature", False, problem))
    checks.append(_issuer_check(claims, issuer))
    if claims.type_code in issuer.allowed_types:
        checks.append(
            Check("type_allowed", True, f"{issuer.uscc} may issue type {claims.type_code}")
        )
    else:
        checks.append(
            Check(
                "type_allowed",
                False,
                f"{issuer.uscc} is not allowed to issue type {claims.type_code}",
            )
        )
    checks.append(_validity(claims, now, skew))
    valid = all(c.ok for c in checks)
    if not valid:
        logger.info(
            "QR payload from kid %s failed: %s",
            decoded.kid.hex(),
            ", ".join(c.name for c in checks if not c.ok),
        )
    return QrVerification(valid=valid, checks=checks, claims=claims, issuer=issuer, kid=decoded.kid)


def _issuer_check(claims: QrClaims, issuer: TrustedIssuer) -> Check:
    if claims.issuer_uscc != issuer.uscc:
        return Check(
            "issuer_trusted",
            False,
            f"the payload names issuer {claims.issuer_uscc} but was signed by {issuer.uscc}'s key",
        )
    cert = issuer.certificate
    issued = claims.issued_at
    if not cert.not_valid_before_utc.date() <= issued <= issuer.not_after.date():
        return Check(
            "issuer_trusted",
            False,
            f"the signer certificate of {issuer.uscc} was not valid on the issue date {issued.isoformat()}",
        )
    return Check(
        "issuer_trusted",
        True,
        f"{issuer.name} ({issuer.uscc}, region {issuer.region}) is in the trust list",
    )


def _validity(claims: QrClaims, now: _dt.datetime, skew: _dt.timedelta) -> Check:
    # Valid from the start of valid_from to the end of valid_until, China time,
    # with the skew allowed on both sides.
    if (now + skew).astimezone(CHINA_TZ).date() < claims.valid_from:
        return Check("validity", False, f"not valid before {claims.valid_from.isoformat()}")
    until = claims.valid_until
    if until is None:
        return Check("validity", True, f"valid from {claims.valid_from.isoformat()}, no end date")
    if (now - skew).astimezone(CHINA_TZ).date() > until:
        return Check("validity", False, f"expired at the end of {until.isoformat()}")
    return Check(
        "validity", True, f"valid from {claims.valid_from.isoformat()} to {until.isoformat()}"
    )


# -- drawing ------------------------------------------------------------------


def _alnum_version(length: int) -> int:
    """Smallest QR version holding ``length`` alphanumeric characters in one
    segment at level M (ISO/IEC 18004 §7.4.4; the count field is 9 bits up to
    version 9, 11 bits from version 10). Saves qrcode's sizing pass."""
    limits = qrcode.util.BIT_LIMIT_TABLE[qrcode.constants.ERROR_CORRECT_M]
    data_bits = 11 * (length // 2) + 6 * (length % 2)
    for version in range(1, 41):
        count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
        if 4 + count_bits + data_bits <= limits[version]:
            return version
    return 41


def make_qr(text: str) -> qrcode.QRCode:
    """The QR code for ``text``: level M, fixed mask, smallest version, one
    alphanumeric segment (byte mode for other text). Raises
    :class:`PayloadTooLarge` above version 11."""
    if len(text) > MAX_TEXT_LENGTH:
        raise PayloadTooLarge(
            f"{len(text)} characters do not fit QR version {MAX_QR_VERSION} at level M "
            f"(at most {MAX_TEXT_LENGTH})",
            length=len(text),
            limit=MAX_TEXT_LENGTH,
        )
    alnum = _ALNUM_SET.issuperset(text)
    version = _alnum_version(len(text)) if alnum else None
    code = qrcode.QRCode(
        version=version,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        mask_pattern=QR_MASK_PATTERN,
    )
    mode = qrcode.util.MODE_ALPHA_NUM if alnum else qrcode.util.MODE_8BIT_BYTE
    code.add_data(qrcode.util.QRData(text.encode("utf-8"), mode=mode, check_data=False))
    try:
        code.make(fit=version is None)
    except qrcode.exceptions.DataOverflowError:
        raise PayloadTooLarge(
            "the text does not fit any QR code", length=len(text), limit=MAX_TEXT_LENGTH
        ) from None
    if code.version > MAX_QR_VERSION:
        raise PayloadTooLarge(
            f"the text needs QR version {code.version}; at most {MAX_QR_VERSION} is allowed",
            length=len(text),
            limit=MAX_TEXT_LENGTH,
        )
    return code


_ALNUM_SET = frozenset(qrcode.util.ALPHA_NUM.decode("ascii"))


@functools.lru_cache(maxsize=64)
def _matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    return tuple(tuple(map(bool, row)) for row in make_qr(text).modules)


def qr_matrix(text: str) -> list[list[bool]]:
    """The module matrix of :func:`make_qr` without the quiet zone (``True`` = dark).

    The last few matrices are cached: a certificate's QR is drawn into the
    PDF and often fetched as PNG or SVG right after.
    """
    return [list(row) for row in _matrix(text)]


_DARK_RUN = re.compile(rb"\x01+")


def _runs(row: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of each run of dark modules in a row.

    The row as bytes (0/1) searched by a regular expression: the scan runs in
    C, about ten times faster than a Python loop over ~900 runs per code.
    """
    for m in _DARK_RUN.finditer(bytes(row)):
        start, end = m.span()
        yield start, end - start


def qr_svg(text: str, *, module_size: int = 4, border: int = 4) -> str:
    """An SVG document of the QR code: one path, dark runs merged per row."""
    matrix = qr_matrix(text)
    size = (len(matrix) + 2 * border) * module_size
    parts: list[str] = []
    for y, row in enumerate(matrix):
        for x, length in _runs(row):
            parts.append(
                f"M{(x + border) * module_size} {(y + border) * module_size}h{length * module_size}v{module_size}h-{length * module_size}z"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )


def qr_png(text: str, *, box_size: int = 8, border: int = 4) -> bytes:
    """A black-and-white PNG of the QR code, ``box_size`` pixels per module."""
    from PIL import Image

    matrix = qr_matrix(text)
    n = len(matrix)
    img = Image.new("1", (n + 2 * border, n + 2 * border), 1)
    pixels = img.load()
    assert pixels is not None
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                pixels[x + border, y + border] = 0
    img = img.resize(((n + 2 * border) * box_size,) * 2, Image.Resampling.NEAREST)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()
