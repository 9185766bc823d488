"""The parts of a certificate type: its fields, its validity rule, its PDF layout hints.

Pure values with their own checks (a field validates one raw value, a rule
computes the last day of validity); :mod:`certstore.types` assembles them
into a :class:`~certstore.types.CertificateType` and re-exports them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput

__all__ = ["FIELD_KINDS", "FieldSpec", "ValidityRule", "Layout"]

FIELD_KINDS = ("string", "date", "enum", "int")


@dataclass(frozen=True)
class FieldSpec:
    """One field of a certificate type."""

    name: str
    """Machine name, ``[a-z][a-z0-9_]*``; the key in API requests and ``--field k=v``."""
    label_zh: str
    label_en: str
    kind: str = "string"
    """``string``, ``date`` (ISO 8601 ``YYYY-MM-DD``), ``enum`` or ``int``."""
    required: bool = True
    max_length: int | None = None
    """For strings: the most characters (not bytes) accepted."""
    pattern: str | None = None
    """For strings: a regular expression the whole value must match."""
    choices: tuple[str, ...] = ()
    """For enums: the accepted values."""
    minimum: int | None = None
    maximum: int | None = None

    def validate(self, raw: Any) -> str | int:
        """The normalised value, or :class:`InvalidInput` naming this field."""
        where = f"fields.{self.name}"
        if self.kind == "int":
            if isinstance(raw, bool):
                raise InvalidInput(f"{self.name} must be a whole number", field=where)
            try:
                value = int(raw) if not isinstance(raw, int) else raw
            except (TypeError, ValueError):
                raise InvalidInput(f"{self.name} must be a whole number", field=where) from None
            if self.minimum is not None and value < self.minimum:
                raise InvalidInput(f"{self.name} must be at least {self.minimum}", field=where)
            if self.maximum is not None and value > self.maximum:
                raise InvalidInput(f"{self.name} must be at most {self.maximum}", field=where)
            return value
        if not isinstance(raw, str):
            raise InvalidInput(f"{self.name} must be text", field=where)
        text = raw.strip()
        if not text:
            raise InvalidInput(f"{self.name} must not be empty", field=where)
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
            raise InvalidInput(f"{self.name} contains control characters", field=where)
        if self.kind == "date":
            try:
                return dt.date.fromisoformat(text).isoformat()
            except ValueError:
                raise InvalidInput(
                    f"{self.name} must be a date written YYYY-MM-DD", field=where
                ) from None
        if self.kind == "enum":
            if text not in self.choices:
                raise InvalidInput(
                    f"{self.name} must be one of: {', '.join(self.choices)}", field=where
                )
            return text
        if self.max_length is not None and len(text) > self.max_length:
            raise InvalidInput(
                f"{self.name} has {len(text)} characters, at most {self.max_length} are allowed",
                field=where,
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise InvalidInput(f"{self.name} does not have the expected format", field=where)
        return text


@dataclass(frozen=True)
class ValidityRule:
    """How long a certificate of a type stays valid.

    ``years``/``months``/``days`` count from the first day of validity;
    ``open_ended`` certificates have no end date (a diploma); ``given`` means
    the issuing request says ``valid_until`` itself.
    """

    kind: str = "open_ended"
    """``years``, ``months``, ``days``, ``open_ended`` or ``given``."""
    amount: int = 0

    def valid_until(self, valid_from: dt.date, given: dt.date | None = None) -> dt.date | None:
        if self.kind == "open_ended":
            if given is not None:
                raise InvalidInput(
                    "this type of certificate does not expire; leave valid_until out",
                    field="valid_until",
                )
            return None
        if self.kind == "given":
            if given is None:
                raise InvalidInput("valid_until is required for this type", field="valid_until")
            if given < valid_from:
                raise InvalidInput("valid_until is before valid_from", field="valid_until")
            return given
        if given is not None:
            raise InvalidInput(
                "the validity of this type is fixed by its rule; leave valid_until out",
                field="valid_until",
            )
        if self.kind == "days":
            return valid_from + dt.timedelta(days=self.amount) - dt.timedelta(days=1)
        months = self.amount * 12 if self.kind == "years" else self.amount
        y, m = divmod(valid_from.month - 1 + months, 12)
        year, month = valid_from.year + y, m + 1
        day = min(valid_from.day, _days_in_month(year, month))
        return dt.date(year, month, day) - dt.timedelta(days=1)

    def describe(self) -> str:
        if self.kind in ("years", "months", "days"):
            return f"{self.amount} {self.kind}"
        return self.kind.replace("_", "-")


def _days_in_month(year: int, month: int) -> int:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


@dataclass(frozen=True)
class Layout:
    """Hints for the PDF layout; the renderer in ``signing.pdf`` decides the rest."""

    title_zh: str
    title_en: str
    accent: str = "#B22222"
    """Border and title colour, ``#RRGGBB``."""
    field_order: tuple[str, ...] = ()
    """Fields in the order they are printed (default: schema order)."""
