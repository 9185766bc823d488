"""Validation of the two national identifiers Yiwang keys on.

* Resident ID number, GB 11643-1999: 6-digit area code, 8-digit birth date,
  3-digit sequence, one ISO 7064 MOD 11-2 check character (``0-9`` or ``X``).
* Unified social credit code, GB 32100-2015: 18 characters from a 31-character
  alphabet, one weighted MOD 31 check character.

Pure functions, no I/O. The area code is deliberately *not* checked against a
table: such tables go out of date and would reject real citizens.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from .errors import InvalidIdentifier

__all__ = [
    "ResidentId",
    "parse_resident_id",
    "resident_id_check_character",
    "is_valid_resident_id",
    "mask_resident_id",
    "parse_uscc",
    "uscc_check_character",
    "is_valid_uscc",
    "HOLDER_CODE_RESIDENT_ID",
    "HOLDER_CODE_USCC",
]

HOLDER_CODE_RESIDENT_ID = "111"
HOLDER_CODE_USCC = "001"

# GB 11643-1999 §8.2: weights W_i = 2^(i-1) mod 11, read left to right.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# GB 32100-2015 §4: the code alphabet omits I, O, S, V and Z.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A validated resident ID number."""

    number: str
    """The 18 characters, check character upper-cased."""
    area_code: str
    birth_date: _dt.date
    sequence: str

    @property
    def sex(self) -> str:
        """``"M"`` for an odd sequence number, ``"F"`` for an even one (GB 11643 §6.3)."""
        return "M" if int(self.sequence[-1]) % 2 else "F"

    @property
    def masked(self) -> str:
        return mask_resident_id(self.number)

    def __repr__(self) -> str:  # never print the full number by accident
        return f"ResidentId({self.masked!r})"


def resident_id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if not isinstance(first17, str) or len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidIdentifier(
            "the first 17 characters must be digits",
            kind="resident_id",
            reason="charset",
        )
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def parse_resident_id(value: str) -> ResidentId:
    """Validate ``value`` and return it as a :class:`ResidentId`.

    Raises :class:`InvalidIdentifier` whose ``reason`` says which rule failed.
    Surrounding white space is ignored and a lower-case ``x`` is accepted.
    """
    if not isinstance(value, str):
        raise InvalidIdentifier("an ID number must be text", kind="resident_id", reason="charset")
    number = value.strip().upper()
    if len(number) != 18:
        raise InvalidIdentifier(
            f"an ID number has 18 characters, this one has {len(number)}",
            kind="resident_id",
            reason="length",
        )
    body, check = number[:17], number[17]
    if not body.isascii() or not body.isdigit() or check not in "0123456789X":
        raise InvalidIdentifier(
            "an ID number is 17 digits followed by a digit or X",
            kind="resident_id",
            reason="charset",
        )
    try:
        birth = _dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        raise InvalidIdentifier(
            "characters 7 to 14 of an ID number must be a real date of birth",
            kind="resident_id",
            reason="birth_date",
        ) from None
    if birth.year < 1850:
        raise InvalidIdentifier(
            "characters 7 to 14 of an ID number must be a real date of birth",
            kind="resident_id",
            reason="birth_date",
        )
    if resident_id_check_character(body) != check:
        raise InvalidIdentifier(
            "the last character of the ID number does not match the others (check character)",
            kind="resident_id",
            reason="check_character",
        )
    return ResidentId(number=number, area_code=body[:6], birth_date=birth, sequence=body[14:17])


def is_valid_resident_id(value: str) -> bool:
    try:
        parse_resident_id(value)
    except InvalidIdentifier:
        return False
    return True


def mask_resident_id(number: str) -> str:
    """``110101********123X``: area code and the last four characters stay visible."""
    n = number.strip().upper()
    if len(n) < 10:
        return "*" * len(n)
    return n[:6] + "*" * (len(n) - 10) + n[-4:]


def uscc_check_character(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters."""
    if not isinstance(first17, str) or len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise InvalidIdentifier(
            "a credit code uses only 0-9 and A-Y without I, O, S, V, Z",
            kind="uscc",
            reason="charset",
        )
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def parse_uscc(value: str, *, strict: bool = True) -> tuple[str, bool]:
    """Validate a unified social credit code.

    Returns ``(code, check_ok)``. With ``strict=True`` (issuing) a wrong check
    character raises; with ``strict=False`` (verifying) it is returned as
    ``check_ok=False`` so the caller can warn: a few early codes were issued
    with a wrong check character and are still in use.
    """
    if not isinstance(value, str):
        raise InvalidIdentifier("a credit code must be text", kind="uscc", reason="charset")
    code = value.strip().upper()
    if len(code) != 18:
        raise InvalidIdentifier(
            f"a unified social credit code has 18 characters, this one has {len(code)}",
            kind="uscc",
            reason="length",
        )
    if any(c not in _USCC_VALUE for c in code):
        raise InvalidIdentifier(
            "a credit code uses only 0-9 and A-Y without I, O, S, V, Z",
            kind="uscc",
            reason="charset",
        )
    ok = uscc_check_character(code[:17]) == code[17]
    if strict and not ok:
        raise InvalidIdentifier(
            "the last character of the credit code does not match the others (check character)",
            kind="uscc",
            reason="check_character",
        )
    return code, ok


def is_valid_uscc(value: str) -> bool:
    try:
        parse_uscc(value)
    except InvalidIdentifier:
        return False
    return True
