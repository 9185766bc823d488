"""Resident ID numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015)."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.errors import InvalidIdentifier
from keys.identifiers import (
    is_valid_resident_id,
    is_valid_uscc,
    mask_resident_id,
    parse_resident_id,
    parse_uscc,
    resident_id_check_character,
    uscc_check_character,
)

# Published examples: the GB 11643-1999 standard's own sample and widely used vectors.
VALID_IDS = [
    "11010519491231002X",  # GB 11643-1999 appendix example, check character X
    "440524188001010014",  # GB 11643-1999 example, born 1880
    "110101199003074477",
    "999999200002290019",  # leap day; area code 999999 is in no table and is not rejected
]


@pytest.mark.parametrize("number", VALID_IDS)
def test_published_vectors_are_valid(number: str) -> None:
    rid = parse_resident_id(number)
    assert rid.number == number


def test_check_character_x_and_lower_case_x() -> None:
    assert resident_id_check_character("11010519491231002") == "X"
    assert parse_resident_id("11010519491231002x").number == "11010519491231002X"


def test_parsed_parts() -> None:
    rid = parse_resident_id("11010519491231002X")
    assert rid.area_code == "110105"
    assert rid.birth_date == dt.date(1949, 12, 31)
    assert rid.sex == "F"
    assert "1949" not in repr(rid)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("11010519491231002", "length"),
        ("11010519491231002X1", "length"),
        ("1101051949123100X2", "charset"),
        ("11010519490230002X", "birth_date"),  # 30 February
        ("11010519491331002X", "birth_date"),  # month 13
        ("110105194912310021", "check_character"),
        ("440524188001010015", "check_character"),
    ],
)
def test_wrong_numbers_are_rejected_with_the_reason(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as e:
        parse_resident_id(number)
    assert e.value.reason == reason
    assert number not in str(e.value)


def test_masking() -> None:
    assert mask_resident_id("11010519491231002X") == "110105********002X"


@given(st.text(max_size=30))
def test_parser_never_crashes(text: str) -> None:
    assert is_valid_resident_id(text) in (True, False)


@given(
    st.from_regex(r"[0-9]{6}", fullmatch=True),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)),
    st.from_regex(r"[0-9]{3}", fullmatch=True),
)
def test_exactly_one_check_character_is_right(area: str, born: dt.date, seq: str) -> None:
    body = area + born.strftime("%Y%m%d") + seq
    accepted = [c for c in "0123456789X" if is_valid_resident_id(body + c)]
    assert accepted == [resident_id_check_character(body)]


def test_uscc_published_vector() -> None:
    code, ok = parse_uscc("91350100M000100Y43")
    assert ok and code == "91350100M000100Y43"


def test_uscc_check_character_round_trip() -> None:
    body = "91110108MA01ABCD1"
    code = body + uscc_check_character(body)
    assert is_valid_uscc(code)


@pytest.mark.parametrize("bad", ["91350100M000100Y44", "91350100M000100Y4", "91350100M000100I43"])
def test_uscc_rejects_bad_codes(bad: str) -> None:
    assert not is_valid_uscc(bad)


def test_uscc_lenient_mode_flags_instead_of_rejecting() -> None:
    code, ok = parse_uscc("91350100M000100Y44", strict=False)
    assert code == "91350100M000100Y44" and ok is False
