"""Certificate identifiers (证照标识).

docs/design.md, domain reference (GB/T 36904, *to confirm*)::

    1.2.156.3005.2.<type code>.<issuer USCC>.<serial>.<version>.<check>

The check character is ISO 7064 hybrid MOD 37,36 over the four middle fields
(type code, issuer USCC, serial, version). Which characters exactly enter the
computation is the part the standard text was not at hand for: this module
concatenates the four fields *without* their dots. Everything about the layout
and the check lives here so that confirming the standard means editing one
file.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_uscc

__all__ = [
    "PREFIX",
    "CertificateId",
    "build_identifier",
    "parse_identifier",
    "mod37_36_check",
    "format_serial",
    "TYPE_CODE_PATTERN",
]

PREFIX = "1.2.156.3005.2"
"""The arc every certificate identifier starts with (to confirm)."""

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}

TYPE_CODE_PATTERN = re.compile(r"^[0-9A-Z]{2,24}$")
"""A certificate type code: upper-case letters and digits (QR alphanumeric mode)."""
_SERIAL = re.compile(r"^[0-9]{1,12}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,3}$")

_SERIAL_WIDTH = 6


def mod37_36_check(text: str) -> str:
    """ISO 7064 hybrid system MOD 37,36 check character of ``text``.

    ``text`` uses ``0-9A-Z`` (case-insensitive). ISO 7064 §7 (hybrid systems):
    start with P = M; for each character S = (P + value) mod M (with 0 read as
    M), P = 2·S mod (M + 1); the check value makes the final P equal 1, i.e.
    it is (M + 1 − P) mod M.
    """
    m = 36
    p = m
    for ch in text.upper():
        value = _VALUE.get(ch)
        if value is None:
            raise ValueError("the check is computed over 0-9 and A-Z only")
        s = (p + value) % m
        if s == 0:
            s = m
        p = (2 * s) % (m + 1)
    return _ALPHABET[(m + 1 - p) % m]


def _check_input(type_code: str, issuer_uscc: str, serial: str, version: str) -> str:
    return f"{type_code}{issuer_uscc}{serial}{version}"


def format_serial(number: int) -> str:
    """A serial number as it appears in identifiers: decimal, zero-padded to six digits."""
    if number < 1:
        raise ValueError("serial numbers start at 1")
    return f"{number:0{_SERIAL_WIDTH}d}"


@dataclass(frozen=True, slots=True)
class CertificateId:
    """A parsed, valid certificate identifier."""

    type_code: str
    issuer_uscc: str
    serial: str
    version: int
    check: str

    def __str__(self) -> str:
        return f"{PREFIX}.{self.type_code}.{self.issuer_uscc}.{self.serial}.{self.version}.{self.check}"

    @property
    def text(self) -> str:
        return str(self)


def build_identifier(type_code: str, issuer_uscc: str, serial: int | str, version: int = 1) -> CertificateId:
    """Build the identifier of a certificate, computing its check character.

    Raises :class:`~keys.errors.InvalidIdentifier` (``kind="certificate_id"``)
    for a malformed part.
    """
    serial_text = format_serial(serial) if isinstance(serial, int) else serial
    _validate_parts(type_code, issuer_uscc, serial_text, str(version), strict_uscc=True)
    check = mod37_36_check(_check_input(type_code, issuer_uscc, serial_text, str(version)))
    return CertificateId(type_code, issuer_uscc, serial_text, version, check)


def _bad(message: str, reason: str) -> InvalidIdentifier:
    return InvalidIdentifier(message, kind="certificate_id", reason=reason)


def _validate_parts(
    type_code: str, issuer_uscc: str, serial: str, version: str, *, strict_uscc: bool
) -> None:
    if not TYPE_CODE_PATTERN.match(type_code):
        raise _bad("the type code must be 2 to 24 upper-case letters or digits", "type_code")
    try:
        parse_uscc(issuer_uscc, strict=strict_uscc)
    except InvalidIdentifier as e:
        raise _bad(f"the issuer code is not a valid credit code: {e}", "issuer") from None
    if issuer_uscc != issuer_uscc.strip().upper():
        raise _bad("the issuer code must be upper-case", "issuer")
    if not _SERIAL.match(serial):
        raise _bad("the serial number must be 1 to 12 digits", "serial")
    if not _VERSION.match(version):
        raise _bad("the version must be a number from 1", "version")


def parse_identifier(text: str) -> CertificateId:
    """Parse and validate an identifier, including its check character.

    The issuer code's own check character is not enforced here (verifying):
    docs/design.md says early credit codes that fail it are accepted when verifying.
    """
    if not isinstance(text, str):
        raise _bad("a certificate identifier must be text", "charset")
    value = text.strip().upper()
    if not value.startswith(PREFIX + "."):
        raise _bad(f"a certificate identifier starts with {PREFIX}.", "prefix")
    parts = value[len(PREFIX) + 1 :].split(".")
    if len(parts) != 5:
        raise _bad(
            "a certificate identifier has five parts after the prefix: "
            "type, issuer, serial, version, check",
            "length",
        )
    type_code, uscc, serial, version, check = parts
    _validate_parts(type_code, uscc, serial, version, strict_uscc=False)
    if len(check) != 1 or check not in _VALUE:
        raise _bad("the check part is one letter or digit", "check_character")
    expected = mod37_36_check(_check_input(type_code, uscc, serial, version))
    if expected != check:
        raise _bad(
            "the check character does not match the rest of the identifier", "check_character"
        )
    return CertificateId(type_code, uscc, serial, int(version), check)
