"""Certificate types: what a type's certificates contain and how they are checked.

A type is a *spec*, loaded from a JSON or TOML file an agency writes
(``certstore types add FILE``; format in docs/agency-guide.md) and stored in
the database. It says which fields a certificate of this type has and what
values each accepts, how long a certificate stays valid, which fields the QR
payload carries (only what a verifier compares with the paper) and who the
holder is (a person, holder code type 111, or an organisation, 001).

Validation here is pure: it turns the request's raw field values into a
normalised mapping or raises :class:`~certstore.errors.InvalidInput` whose
``field`` names the offending field, so the API's problem JSON and the CLI's
message can point at it.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keys.errors import InvalidIdentifier
from keys.identifiers import (
    HOLDER_CODE_RESIDENT_ID,
    HOLDER_CODE_USCC,
    mask_resident_id,
    parse_resident_id,
    parse_uscc,
)

from .errors import InvalidInput
from .identifier import TYPE_CODE_PATTERN
from .type_fields import FIELD_KINDS, FieldSpec, Layout, ValidityRule

__all__ = [
    "FIELD_KINDS",
    "HOLDER_CODE_TYPES",
    "FieldSpec",
    "ValidityRule",
    "Layout",
    "CertificateType",
    "load_type_file",
    "parse_type",
    "validate_holder_code",
    "mask_holder_code",
    "validate_holder_name",
    "DEMO_TYPES_DIR",
    "demo_type_files",
]

HOLDER_CODE_TYPES = {
    HOLDER_CODE_RESIDENT_ID: "resident ID number",
    HOLDER_CODE_USCC: "unified social credit code",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DEMO_TYPES_DIR = Path(__file__).with_name("demo_types")


@dataclass(frozen=True)
class CertificateType:
    """A certificate type spec (one JSON/TOML file)."""

    code: str
    name_zh: str
    name_en: str
    holder_code_type: str
    """``111`` (a person's resident ID number) or ``001`` (a credit code)."""
    fields: tuple[FieldSpec, ...]
    validity: ValidityRule = field(default_factory=ValidityRule)
    qr_fields: tuple[str, ...] = ()
    """Fields carried in the QR payload besides the identifier, holder and dates."""
    holder_name_max_length: int = 32
    layout: Layout | None = None
    description: str = ""

    def field_spec(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def validate_fields(self, raw: Mapping[str, Any] | None) -> dict[str, str | int]:
        """Check ``raw`` against the schema; unknown fields are refused, not dropped."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InvalidInput("fields must be an object", field="fields")
        known = {f.name for f in self.fields}
        for name in raw:
            if name not in known:
                raise InvalidInput(
                    f"{name!s:.40} is not a field of certificate type {self.code}",
                    field=f"fields.{str(name)[:40]}",
                )
        out: dict[str, str | int] = {}
        for f in self.fields:
            value = raw.get(f.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if f.required:
                    raise InvalidInput(f"{f.name} is required", field=f"fields.{f.name}")
                continue
            out[f.name] = f.validate(value)
        return out

    @property
    def title_zh(self) -> str:
        return self.layout.title_zh if self.layout else self.name_zh

    @property
    def title_en(self) -> str:
        return self.layout.title_en if self.layout else self.name_en

    def ordered_fields(self) -> list[FieldSpec]:
        if not self.layout or not self.layout.field_order:
            return list(self.fields)
        order = {n: i for i, n in enumerate(self.layout.field_order)}
        return sorted(self.fields, key=lambda f: order.get(f.name, len(order)))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data: what is stored and what ``parse_type`` reads back."""
        return {
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "holder_code_type": self.holder_code_type,
            "holder_name_max_length": self.holder_name_max_length,
            "description": self.description,
            "validity": {"kind": self.validity.kind, "amount": self.validity.amount},
            "qr_fields": list(self.qr_fields),
            "layout": None
            if self.layout is None
            else {
                "title_zh": self.layout.title_zh,
                "title_en": self.layout.title_en,
                "accent": self.layout.accent,
                "field_order": list(self.layout.field_order),
            },
            "fields": [
                {
                    k: v
                    for k, v in {
                        "name": f.name,
                        "label_zh": f.label_zh,
                        "label_en": f.label_en,
                        "kind": f.kind,
                        "required": f.required,
                        "max_length": f.max_length,
                        "pattern": f.pattern,
                        "choices": list(f.choices) or None,
                        "minimum": f.minimum,
                        "maximum": f.maximum,
                    }.items()
                    if v is not None
                }
                for f in self.fields
            ],
        }


# --- reading spec files -----------------------------------------------------------------

_TYPE_KEYS = {
    "code", "name_zh", "name_en", "holder_code_type", "fields", "validity", "qr_fields",
    "holder_name_max_length", "layout", "description",
}
_FIELD_KEYS = {
    "name", "label_zh", "label_en", "kind", "required", "max_length", "pattern", "choices",
    "minimum", "maximum",
}
_LAYOUT_KEYS = {"title_zh", "title_en", "accent", "field_order"}


def _spec_error(message: str, where: str) -> InvalidInput:
    return InvalidInput(message, field=where)


def _unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _spec_error(f"{where}: unknown key {extra[0]!r}", f"{where}.{extra[0]}")


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _spec_error(f"{where}.{key} must be non-empty text", f"{where}.{key}")
    return value.strip()


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _spec_error(f"{where}.{key} must be a whole number", f"{where}.{key}")
    return value


def _parse_field(data: Any, index: int) -> FieldSpec:
    where = f"fields[{index}]"
    if not isinstance(data, Mapping):
        raise _spec_error(f"{where} must be a table/object", where)
    _unknown(data, _FIELD_KEYS, where)
    name = _text(data, "name", where)
    if not _NAME.match(name):
        raise _spec_error(
            f"{where}.name must be lower-case letters, digits and _ (starting with a letter)",
            f"{where}.name",
        )
    kind = data.get("kind", "string")
    if kind not in FIELD_KINDS:
        raise _spec_error(f"{where}.kind must be one of {', '.join(FIELD_KINDS)}", f"{where}.kind")
    required = data.get("required", True)
    if not isinstance(required, bool):
        raise _spec_error(f"{where}.required must be true or false", f"{where}.required")
    max_length = _opt_int(data, "max_length", where)
    if max_length is not None and max_length < 1:
        raise _spec_error(f"{where}.max_length must be at least 1", f"{where}.max_length")
    pattern = data.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise _spec_error(f"{where}.pattern must be text", f"{where}.pattern")
        try:
            re.compile(pattern)
        except re.error as e:
            raise _spec_error(f"{where}.pattern is not a regular expression: {e}", f"{where}.pattern") from None
    choices_raw = data.get("choices") or ()
    if not isinstance(choices_raw, list | tuple) or not all(isinstance(c, str) and c for c in choices_raw):
        raise _spec_error(f"{where}.choices must be a list of text", f"{where}.choices")
    if kind == "enum" and not choices_raw:
        raise _spec_error(f"{where}.choices is required for an enum", f"{where}.choices")
    return FieldSpec(
        name=name,
        label_zh=_text(data, "label_zh", where),
        label_en=_text(data, "label_en", where),
        kind=kind,
        required=required,
        max_length=max_length,
        pattern=pattern,
        choices=tuple(choices_raw),
        minimum=_opt_int(data, "minimum", where),
        maximum=_opt_int(data, "maximum", where),
    )


def _parse_validity(data: Any) -> ValidityRule:
    if data is None:
        return ValidityRule()
    if not isinstance(data, Mapping):
        raise _spec_error("validity must be a table/object", "validity")
    _unknown(data, {"kind", "amount"}, "validity")
    kind = data.get("kind")
    if kind not in ("years", "months", "days", "open_ended", "given"):
        raise _spec_error(
            "validity.kind must be years, months, days, open_ended or given", "validity.kind"
        )
    amount = _opt_int(data, "amount", "validity") or 0
    if kind in ("years", "months", "days") and not 1 <= amount <= 1200:
        raise _spec_error("validity.amount must be between 1 and 1200", "validity.amount")
    return ValidityRule(kind=kind, amount=amount)


def _parse_layout(data: Any, name_zh: str, name_en: str, field_names: set[str]) -> Layout | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _spec_error("layout must be a table/object", "layout")
    _unknown(data, _LAYOUT_KEYS, "layout")
    accent = data.get("accent", "#B22222")
    if not isinstance(accent, str) or not re.fullmatch(r"#[0-9A-Fa-f]{6}", accent):
        raise _spec_error("layout.accent must be a colour written #RRGGBB", "layout.accent")
    order = data.get("field_order") or []
    if not isinstance(order, list) or any(n not in field_names for n in order):
        raise _spec_error("layout.field_order must list fields of this type", "layout.field_order")
    return Layout(
        title_zh=_text(data, "title_zh", "layout", required=False) or name_zh,
        title_en=_text(data, "title_en", "layout", required=False) or name_en,
        accent=accent.upper(),
        field_order=tuple(order),
    )


def parse_type(data: Any) -> CertificateType:
    """Build a :class:`CertificateType` from plain data, refusing anything unclear."""
    if not isinstance(data, Mapping):
        raise _spec_error("a certificate type is a table/object", "type")
    _unknown(data, _TYPE_KEYS, "type")
    code = _text(data, "code", "type")
    if not TYPE_CODE_PATTERN.match(code):
        raise _spec_error("code must be 2 to 24 upper-case letters or digits", "code")
    holder = data.get("holder_code_type")
    if holder not in HOLDER_CODE_TYPES:
        raise _spec_error(
            "holder_code_type must be \"111\" (resident ID number) or \"001\" (credit code)",
            "holder_code_type",
        )
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise _spec_error("fields must be a non-empty list", "fields")
    fields = tuple(_parse_field(f, i) for i, f in enumerate(raw_fields))
    names = [f.name for f in fields]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise _spec_error(f"field {sorted(dup)[0]} is defined twice", f"fields.{sorted(dup)[0]}")
    qr_fields = data.get("qr_fields") or []
    if not isinstance(qr_fields, list) or any(n not in names for n in qr_fields):
        raise _spec_error("qr_fields must list fields of this type", "qr_fields")
    max_name = _opt_int(data, "holder_name_max_length", "type")
    name_zh = _text(data, "name_zh", "type")
    name_en = _text(data, "name_en", "type")
    return CertificateType(
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        holder_code_type=holder,
        fields=fields,
        validity=_parse_validity(data.get("validity")),
        qr_fields=tuple(qr_fields),
        holder_name_max_length=max_name if max_name and max_name > 0 else 32,
        layout=_parse_layout(data.get("layout"), name_zh, name_en, set(names)),
        description=_text(data, "description", "type", required=False),
    )


def load_type_file(path: Path) -> CertificateType:
    """Read a type spec from a ``.json`` or ``.toml`` file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}", field="file") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text", field="file") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise InvalidInput(f"{path.name} is not valid {path.suffix[1:].upper()}: {e}", field="file") from None
    return parse_type(data)


def demo_type_files() -> list[Path]:
    return sorted(p for p in DEMO_TYPES_DIR.iterdir() if p.suffix in (".json", ".toml"))


# --- holders ------------------------------------------------------------------------------


def validate_holder_code(holder_code_type: str, code: Any) -> str:
    """The normalised holder code, or :class:`InvalidInput` on field ``holder_code``."""
    if not isinstance(code, str):
        raise InvalidInput("holder_code must be text", field="holder_code")
    try:
        if holder_code_type == HOLDER_CODE_RESIDENT_ID:
            return parse_resident_id(code).number
        if holder_code_type == HOLDER_CODE_USCC:
            return parse_uscc(code, strict=True)[0]
    except InvalidIdentifier as e:
        raise InvalidInput(f"holder_code: {e}", field="holder_code", reason=e.reason) from None
    raise InvalidInput("unknown holder code type", field="holder_code_type")


def mask_holder_code(holder_code_type: str, code: str) -> str:
    """What pages, logs and QR payloads show of a holder code.

    A person's ID number is masked (``110101********123X``); an organisation's
    credit code is public by law (it is printed on the licence) and shown whole.
    """
    if holder_code_type == HOLDER_CODE_RESIDENT_ID:
        return mask_resident_id(code)
    return code


def validate_holder_name(name: Any, max_length: int) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("holder_name is required", field="holder_name")
    text = " ".join(name.split())
    if len(text) > max_length:
        raise InvalidInput(
            f"holder_name has {len(text)} characters, at most {max_length} are allowed",
            field="holder_name",
        )
    if any(ord(c) < 0x20 for c in text):
        raise InvalidInput("holder_name contains control characters", field="holder_name")
    return text
