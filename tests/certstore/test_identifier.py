"""Certificate identifiers: building, parsing, and the MOD 37,36 check character."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certstore.identifier import build_identifier, mod37_36_check, parse_identifier
from keys.errors import InvalidIdentifier

USCC = "111101050000000017"


def test_mod37_36_matches_the_iso_7064_worked_example() -> None:
    # ISO 7064 hybrid MOD 37,36 example: A12425GABC1234002 -> M (as used by ISO 6346 tooling).
    assert mod37_36_check("A12425GABC1234002") == "M"


def test_built_identifier_has_the_layout_and_parses_back() -> None:
    cid = build_identifier("JZZM", USCC, 42, 1)
    text = str(cid)
    assert text.startswith("1.2.156.3005.2.JZZM.111101050000000017.000042.1.")
    assert len(cid.check) == 1
    assert parse_identifier(text) == cid


def test_check_is_computed_over_the_four_middle_fields_without_dots() -> None:
    cid = build_identifier("JZZM", USCC, 42, 3)
    assert cid.check == mod37_36_check("JZZM" + USCC + "000042" + "3")


@pytest.mark.parametrize("position", [15, 20, 37, 43])
def test_changing_one_character_is_caught(position: int) -> None:
    text = str(build_identifier("JZZM", USCC, 42, 1))
    ch = text[position]
    swapped = "7" if ch != "7" else "8"
    tampered = text[:position] + swapped + text[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        parse_identifier(tampered)


def test_wrong_check_character_is_refused_with_its_reason() -> None:
    text = str(build_identifier("BYZS", USCC, 7, 1))
    wrong = text[:-1] + ("0" if text[-1] != "0" else "1")
    with pytest.raises(InvalidIdentifier) as e:
        parse_identifier(wrong)
    assert e.value.reason == "check_character"


@pytest.mark.parametrize(
    "text,reason",
    [
        ("1.2.156.3005.1.JZZM.111101050000000017.000001.1.X", "prefix"),
        ("1.2.156.3005.2.JZZM.111101050000000017.000001.1", "length"),
        ("1.2.156.3005.2.J.111101050000000017.000001.1.X", "type_code"),
        ("1.2.156.3005.2.JZZM.11110105000000001.000001.1.X", "issuer"),
        ("1.2.156.3005.2.JZZM.111101050000000017.00A001.1.X", "serial"),
        ("1.2.156.3005.2.JZZM.111101050000000017.000001.0.X", "version"),
    ],
)
def test_malformed_identifiers_name_the_part(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as e:
        parse_identifier(text)
    assert e.value.reason == reason


def test_issuing_needs_a_valid_credit_code_check_character() -> None:
    with pytest.raises(InvalidIdentifier):
        build_identifier("JZZM", "111101050000000018", 1)


@given(st.text(max_size=80))
def test_parsing_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidIdentifier):
        parse_identifier(text)


@given(st.integers(min_value=1, max_value=10**12 - 1), st.integers(min_value=1, max_value=9999))
def test_every_built_identifier_parses(serial: int, version: int) -> None:
    cid = build_identifier("YYZZ", "11110105000000002A", serial, version)
    assert parse_identifier(str(cid)) == cid
