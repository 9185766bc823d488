"""Certificate type specs: the demo files load, schemas refuse bad values naming the field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from certstore.errors import InvalidInput
from certstore.types import (
    ValidityRule,
    demo_type_files,
    load_type_file,
    mask_holder_code,
    parse_type,
    validate_holder_code,
    validate_holder_name,
)

from .conftest import COMPANY, DEMO_REQUESTS, PERSON_ID


def _demo(code: str):
    for p in demo_type_files():
        t = load_type_file(p)
        if t.code == code:
            return t
    raise AssertionError(code)


def test_three_demo_types_ship_in_json_and_toml() -> None:
    files = demo_type_files()
    assert {p.suffix for p in files} == {".json", ".toml"}
    types = {load_type_file(p).code: load_type_file(p) for p in files}
    assert set(types) == {"JZZM", "YYZZ", "BYZS"}
    assert types["JZZM"].holder_code_type == "111"
    assert types["YYZZ"].holder_code_type == "001"
    assert types["BYZS"].holder_code_type == "111"


@pytest.mark.parametrize("code", ["JZZM", "YYZZ", "BYZS"])
def test_demo_requests_validate_and_specs_round_trip(code: str) -> None:
    spec = _demo(code)
    assert parse_type(spec.to_dict()) == spec
    fields = spec.validate_fields(DEMO_REQUESTS[code]["body"]["fields"])
    assert set(fields) <= {f.name for f in spec.fields}


@pytest.mark.parametrize(
    "fields,field,words",
    [
        ({"address": "x" * 61, "residence_since": "2020-01-01"}, "fields.address", "at most 60"),
        ({"address": "北京", "residence_since": "2020-13-01"}, "fields.residence_since", "YYYY-MM-DD"),
        ({"address": "北京", "residence_since": "2020-01-01", "purpose": "旅游"}, "fields.purpose", "one of"),
        ({"residence_since": "2020-01-01"}, "fields.address", "required"),
        ({"address": "北京", "residence_since": "2020-01-01", "colour": "red"}, "fields.colour", "not a field"),
        ({"address": 12, "residence_since": "2020-01-01"}, "fields.address", "text"),
    ],
)
def test_schema_errors_name_the_field(fields: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as e:
        _demo("JZZM").validate_fields(fields)
    assert e.value.field == field
    assert words in str(e.value)


def test_pattern_is_enforced() -> None:
    fields = dict(DEMO_REQUESTS["BYZS"]["body"]["fields"], diploma_number="12345")
    with pytest.raises(InvalidInput) as e:
        _demo("BYZS").validate_fields(fields)
    assert e.value.field == "fields.diploma_number"


def test_validity_rules() -> None:
    start = dt.date(2024, 8, 31)
    assert ValidityRule("months", 6).valid_until(start) == dt.date(2025, 2, 27)
    assert ValidityRule("years", 1).valid_until(dt.date(2024, 2, 29)) == dt.date(2025, 2, 27)
    assert ValidityRule("days", 1).valid_until(start) == start
    assert ValidityRule("open_ended").valid_until(start) is None
    with pytest.raises(InvalidInput) as e:
        ValidityRule("given").valid_until(start)
    assert e.value.field == "valid_until"


def test_holder_codes_are_checked_by_type() -> None:
    assert validate_holder_code("111", PERSON_ID.lower()) == PERSON_ID
    assert validate_holder_code("001", COMPANY) == COMPANY
    with pytest.raises(InvalidInput) as e:
        validate_holder_code("111", PERSON_ID[:-1] + "1")
    assert e.value.field == "holder_code" and "check character" in str(e.value)
    with pytest.raises(InvalidInput):
        validate_holder_code("001", PERSON_ID)  # a person's number is no credit code
    with pytest.raises(InvalidInput):
        validate_holder_code("001", COMPANY[:-1] + "3")


def test_masking() -> None:
    assert mask_holder_code("111", PERSON_ID) == "110105********002X"
    assert mask_holder_code("001", COMPANY) == COMPANY


def test_holder_name_length() -> None:
    assert validate_holder_name("  张  三 ", 20) == "张 三"
    with pytest.raises(InvalidInput) as e:
        validate_holder_name("张" * 21, 20)
    assert e.value.field == "holder_name"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"code": "jz"}, "code"),
        ({"holder_code_type": "112"}, "holder_code_type"),
        ({"fields": []}, "fields"),
        ({"qr_fields": ["nope"]}, "qr_fields"),
        ({"validity": {"kind": "years"}}, "validity.amount"),
        ({"colour": "red"}, "type.colour"),
    ],
)
def test_bad_type_files_are_refused_naming_the_key(tmp_path: Path, change: dict, field: str) -> None:
    data = _demo("JZZM").to_dict() | change
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InvalidInput) as e:
        load_type_file(path)
    assert e.value.field == field


def test_bad_field_definition_names_its_index(tmp_path: Path) -> None:
    data = _demo("JZZM").to_dict()
    data["fields"][1]["kind"] = "float"
    with pytest.raises(InvalidInput) as e:
        parse_type(data)
    assert e.value.field == "fields[1].kind"


def test_unparsable_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("code = [", encoding="utf-8")
    with pytest.raises(InvalidInput) as e:
        load_type_file(path)
    assert "not valid TOML" in str(e.value)
