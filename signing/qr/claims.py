"""The claim set of a QR payload: what it asserts and its compact CBOR map.

The claim map uses small integer keys and compact values so a personal
certificate takes about 200 bytes and every demo type fits a version 11 code
at level M (docs/design.md, "QR codes"): dates as days since 1970-01-01, the
identifier split into its parts, credit codes packed as base-31 numbers,
Chinese text as GB 18030 when that is shorter (docs/verifier-guide.md,
"Claims").

Only data a verifier compares with the paper is here: the identifier, type,
issuer, holder name, *masked* holder code, dates and the status-list
position — never the full ID number. The signed text around the map is
:mod:`signing.qr.codec`.
"""

from __future__ import annotations

import codecs
import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cbor2

from ..errors import PayloadError, SigningError

__all__ = [
    "IDENTIFIER_ROOT",
    "CHINA_TZ",
    "QrClaims",
    "to_claim_map",
    "from_claim_map",
]

IDENTIFIER_ROOT = "1.2.156.3005.2"
"""Prefix of every certificate identifier (GB/T 36904, *to confirm*: docs/design.md)."""
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
_INT_ONLY = frozenset((int,))
_NO_FIELDS: dict[str, Any] = {}
_CODE_TYPES = tuple(f"{n:03d}" for n in range(1000))
_SMALL_NUMBERS = tuple(str(n) for n in range(1000))
_MIN_DAY = -700_000
_MAX_DAY = 2_900_000
_ABSENT = object()
_fromordinal = _dt.date.fromordinal
# The codec's own strict decoder: bytes.decode("gb18030") looks the codec up by name
# on every call, which costs three times the decoding of a name.
_GB18030_DECODE = codecs.getdecoder("gb18030")


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
            value = _GB18030_DECODE(value)[0]
        except UnicodeError:
            raise _bad(f"the {what} claim is not valid GB 18030 text") from None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _bad(f"the {what} claim must be non-empty text")
    return value


def to_claim_map(claims: QrClaims) -> dict[int, Any]:
    """``claims`` as the compact CBOR claim map (integer keys, packed values)."""
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


def _part(value: str, what: str) -> str:
    if "." in value:
        raise _bad(f"the {what} claim must not contain a dot")
    return value


def _day(day: Any, what: str) -> _dt.date:
    """A day-number claim (days since 1970-01-01) as a date, or the claim's error."""
    if type(day) is int and _MIN_DAY <= day <= _MAX_DAY:
        return _fromordinal(_EPOCH_ORDINAL + day)
    raise _bad(f"the {what} claim must be a day number")


def from_claim_map(m: Any) -> QrClaims:
    """The claims of a decoded CBOR claim map; :class:`PayloadError` (``claims``) if malformed.

    Every scan runs this, right after an ECDSA verification has pushed the interpreter's
    data out of the CPU caches, where each helper call costs about twice what it costs
    in a warm loop: the usual cases are checked inline and anything else goes to the
    helper (``_text``, ``_number_text``, ``_unpack_code``, ``_part``) that reports it, so
    every input gets the same checks, in the same order, with the same messages
    (tests/signing/test_qr_perf.py holds the helper-per-claim version as the reference).
    """
    if not isinstance(m, _MAPS):
        raise _bad("the claim set must be a CBOR map")
    keys = m.keys()
    # map(type, ...) keeps the check in C; True and 1.0 hash like 1, so the type test is needed.
    if not _KNOWN_CLAIMS.issuperset(keys) or not _INT_ONLY.issuperset(map(type, keys)):
        raise _bad("the claim set has keys this version does not define")
    if not keys >= _REQUIRED_SET:
        missing = sorted(_REQUIRED_SET - set(keys))
        raise _bad(f"the claim set lacks claim {missing[0]}")
    type_code = m[_C_TYPE]
    if type(type_code) is not str or not 0 < len(type_code) <= 32:
        type_code = _text(m, _C_TYPE, "type", max_len=32)
    if "." in type_code:
        _part(type_code, "type")
    uscc = m[_C_ISSUER]
    if type(uscc) is not str or not 0 < len(uscc) <= 64:
        uscc = (type(uscc) is bytes and _UNPACKED.get(uscc)) or _unpack_code(uscc, "issuer")
    if "." in uscc:
        _part(uscc, "issuer")
    serial = m[_C_SERIAL]
    if type(serial) is not str or not 0 < len(serial) <= 64:
        serial = _number_text(m, _C_SERIAL, "serial")
    if "." in serial:
        _part(serial, "serial")
    version = m[_C_VERSION]
    if type(version) is int and 0 <= version < 1000:
        version = _SMALL_NUMBERS[version]
    elif type(version) is not str or not 0 < len(version) <= 64:
        version = _number_text(m, _C_VERSION, "version")
    if "." in version:
        _part(version, "version")
    check = m[_C_CHECK]
    if type(check) is not str or not 0 < len(check) <= 4:
        check = _text(m, _C_CHECK, "check character", max_len=4)
    if "." in check:
        _part(check, "check character")
    code_type_raw = m[_C_CODE_TYPE]
    if type(code_type_raw) is int and 0 <= code_type_raw <= 999:
        code_type = _CODE_TYPES[code_type_raw]
    elif isinstance(code_type_raw, str) and 0 < len(code_type_raw) <= 8:
        code_type = code_type_raw
    else:
        raise _bad("the holder code type claim must be a 3-digit code")
    valid_from = _day(m[_C_FROM], "valid-from")
    day = m.get(_C_ISSUED, _ABSENT)
    issued = valid_from if day is _ABSENT else _day(day, "issued-at")
    status_list: str | None = None
    status_index: int | None = None
    if _C_STATUS_LIST in m or _C_STATUS_INDEX in m:
        status_list = _text(m, _C_STATUS_LIST, "status list", max_len=200)
        status_index = m.get(_C_STATUS_INDEX)
        if type(status_index) is not int or not 0 <= status_index < 2**32:
            raise _bad("the status index claim must be a non-negative integer")
    fields_raw = m.get(_C_FIELDS, _NO_FIELDS)
    if not isinstance(fields_raw, _MAPS) or not all(
        isinstance(k, str) and 0 < len(k) <= 64 for k in fields_raw
    ):
        raise _bad("the fields claim must map text to text")
    fields = {k: _unpack_text(v, "field") for k, v in fields_raw.items()} if fields_raw else {}
    holder_name = _unpack_text(m[_C_NAME], "holder name")
    holder_code = m[_C_CODE]
    if type(holder_code) is not str or not 0 < len(holder_code) <= 64:
        holder_code = _unpack_code(holder_code, "holder code")
    day = m.get(_C_UNTIL, _ABSENT)
    valid_until = None if day is _ABSENT else _day(day, "valid-until")
    # Positional, and the fields already read-only (QrClaims would copy a dict).
    return QrClaims(
        f"{IDENTIFIER_ROOT}.{type_code}.{uscc}.{serial}.{version}.{check}",
        type_code,
        uscc,
        holder_name,
        holder_code,
        code_type,
        valid_from,
        valid_until,
        issued,
        status_list,
        status_index,
        MappingProxyType(fields),
    )
