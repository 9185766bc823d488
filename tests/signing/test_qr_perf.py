"""Issue 16 (QR verification speed): each shortcut gives what the plain code gives.

Base43's one-multiplication decoder against the group-by-group definition, the
inline claim checks against the helpers they fall back to, the issuer's passing
checks and parsed key (cached) against a changed trust list, the pre-hashed
ECDSA verification against tampering, the validity dates computed with one
time-zone conversion against one per bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing.base43 import ALPHABET, Base43Error, b43decode, b43encode
from signing.cose import sig_structure, sign1_decode
from signing.errors import PayloadError
from signing.qr import TrustedIssuer, TrustList, encode_qr_payload, verify_qr_payload
from signing.qr import claims as claims_module
from signing.qr.claims import CHINA_TZ, QrClaims, from_claim_map, to_claim_map
from signing.qr.verify import _validity

from .conftest import NOW, Pki
from .demo import claims


def _issuer(pki: Pki, *, name: str = "甲", types: tuple[str, ...] = ("JMHZ",)) -> TrustedIssuer:
    return TrustedIssuer.from_certificate(
        pki.signer.certificate,
        uscc=pki.signer.uscc,
        name=name,
        region="110000",
        allowed_types=types,
    )


def _failed(result: Any) -> set[str]:
    return {c.name for c in result.checks if not c.ok}


# -- Base43 -------------------------------------------------------------------


def _b43decode_by_groups(text: str) -> bytes:
    """RFC 9285 §4.2's algorithm with base 43, one group at a time (the definition)."""
    digits = []
    for ch in text:
        if ch not in ALPHABET:
            raise Base43Error("alphabet")
        digits.append(ALPHABET.index(ch))
    if len(digits) % 3 == 1:
        raise Base43Error("dangling")
    out = bytearray()
    for i in range(0, len(digits) - len(digits) % 3, 3):
        n = digits[i] + digits[i + 1] * 43 + digits[i + 2] * 43 * 43
        if n > 0xFFFF:
            raise Base43Error("range")
        out += n.to_bytes(2, "big")
    if len(digits) % 3 == 2:
        n = digits[-2] + digits[-1] * 43
        if n > 0xFF:
            raise Base43Error("range")
        out.append(n)
    return bytes(out)


def _same_outcome(text: str) -> None:
    try:
        expected: bytes | None = _b43decode_by_groups(text)
    except Base43Error:
        expected = None
    try:
        got: bytes | None = b43decode(text)
    except Base43Error:
        got = None
    assert got == expected


@settings(max_examples=500)
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_base43_decoding_is_the_group_by_group_definition(text: str) -> None:
    _same_outcome(text)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(["GGW", "FGW", "::", ":::", "00", "000", "3JZ", ".5"]), max_size=120)
)
def test_base43_groups_at_the_edges_of_the_range(parts: list[str]) -> None:
    # The largest digits make the largest partial products: nothing may carry or overflow.
    _same_outcome("".join(parts))


def test_every_three_character_group_decodes_as_defined() -> None:
    groups = [a + b + c for a in ALPHABET for b in ALPHABET for c in ALPHABET]
    for i in range(0, len(groups), 997):
        _same_outcome("".join(groups[i : i + 997]))


# -- claims -------------------------------------------------------------------


def _date(m: Any, key: int, what: str) -> dt.date | None:
    value = m.get(key)
    if value is None and key not in m:
        return None
    if type(value) is not int or not -700_000 <= value <= 2_900_000:
        raise claims_module._bad(f"the {what} claim must be a day number")
    return dt.date.fromordinal(719163 + value)


def _from_claim_map_by_helpers(m: Any) -> QrClaims:
    """The claim checks written with one helper call each (the code before issue 16)."""
    c = claims_module
    if not isinstance(m, c._MAPS):
        raise c._bad("the claim set must be a CBOR map")
    keys = m.keys()
    if not c._KNOWN_CLAIMS.issuperset(keys) or not all(type(k) is int for k in keys):
        raise c._bad("the claim set has keys this version does not define")
    if not c._REQUIRED_SET.issubset(keys):
        missing = sorted(c._REQUIRED_SET - set(keys))
        raise c._bad(f"the claim set lacks claim {missing[0]}")
    type_code = c._part(c._text(m, 1, "type", max_len=32), "type")
    uscc = c._part(c._unpack_code(m[2], "issuer"), "issuer")
    serial = c._part(c._number_text(m, 3, "serial"), "serial")
    version = c._part(c._number_text(m, 4, "version"), "version")
    check = c._part(c._text(m, 5, "check character", max_len=4), "check character")
    raw = m[8]
    if type(raw) is int and 0 <= raw <= 999:
        code_type = f"{raw:03d}"
    elif isinstance(raw, str) and 0 < len(raw) <= 8:
        code_type = raw
    else:
        raise c._bad("the holder code type claim must be a 3-digit code")
    valid_from = _date(m, 9, "valid-from")
    issued = _date(m, 11, "issued-at") or valid_from
    status_list = status_index = None
    if 12 in m or 13 in m:
        status_list = c._text(m, 12, "status list", max_len=200)
        status_index = m.get(13)
        if type(status_index) is not int or not 0 <= status_index < 2**32:
            raise c._bad("the status index claim must be a non-negative integer")
    fields_raw = m.get(14, {})
    if not isinstance(fields_raw, c._MAPS) or not all(
        isinstance(k, str) and 0 < len(k) <= 64 for k in fields_raw
    ):
        raise c._bad("the fields claim must map text to text")
    fields = {k: c._unpack_text(v, "field") for k, v in fields_raw.items()}
    return QrClaims(
        identifier=f"1.2.156.3005.2.{type_code}.{uscc}.{serial}.{version}.{check}",
        type_code=type_code,
        issuer_uscc=uscc,
        holder_name=c._unpack_text(m[6], "holder name"),
        holder_code_masked=c._unpack_code(m[7], "holder code"),
        holder_code_type=code_type,
        valid_from=valid_from,  # type: ignore[arg-type]
        valid_until=_date(m, 10, "valid-until"),
        issued_at=issued,  # type: ignore[arg-type]
        status_list=status_list,
        status_index=status_index,
        fields=fields,
    )


_ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "A.B",
            "x" * 70,
            "K",
            "123",
            "007",
            "JMHZ",
            True,
            False,
            None,
            1.0,
            -1,
            0,
            7,
            999,
            1000,
            2**64,
            -700_001,
            2_900_001,
            20574,
            b"",
            b"\xff\xfe",
            b"\xd5\xc5",
            b"\x00" * 12,
            b"\xff" * 12,
            "张三",
            {},
            {"ad": "x"},
            {"": "x"},
            {"ad": b"\xb1\xb1"},
            {1: "x"},
            [1],
        ]
    ),
    st.integers(min_value=-3_000_000, max_value=3_000_000),
    st.text(max_size=6),
)


@settings(max_examples=600)
@given(
    st.dictionaries(st.sampled_from(list(range(1, 15))), _ODD_VALUES, max_size=4),
    st.sets(st.sampled_from(list(range(1, 15))), max_size=2),
)
def test_inline_claim_checks_give_the_helpers_result_and_message(
    changes: dict[int, Any], dropped: set[int]
) -> None:
    m: dict[Any, Any] = dict(to_claim_map(claims("resident")))
    m.update(changes)
    for k in dropped:
        m.pop(k, None)
    try:
        expected: Any = _from_claim_map_by_helpers(m)
    except PayloadError as exc:
        expected = ("error", str(exc))
    try:
        got: Any = from_claim_map(m)
    except PayloadError as exc:
        got = ("error", str(exc))
    assert got == expected


@pytest.mark.parametrize("kind", ["resident", "business", "diploma"])
def test_claims_round_trip_through_the_inline_checks(kind: str) -> None:
    c = claims(kind)
    m = cbor2.loads(cbor2.dumps(to_claim_map(c), canonical=True))
    assert from_claim_map(m) == c == _from_claim_map_by_helpers(m)


def test_a_true_key_is_still_not_claim_1() -> None:
    m: dict[Any, Any] = dict(to_claim_map(claims("resident")))
    m[True] = m.pop(1)
    with pytest.raises(PayloadError, match="keys this version does not define"):
        from_claim_map(m)


# -- trust: cached passing checks and keys --------------------------------------


def test_a_changed_trust_entry_is_seen_by_the_next_verification(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    first = verify_qr_payload(text, TrustList([_issuer(pki, name="甲")]), now=NOW)
    assert first.valid
    assert "甲" in first.check("issuer_trusted").reason  # type: ignore[union-attr]
    renamed = verify_qr_payload(text, TrustList([_issuer(pki, name="乙")]), now=NOW)
    assert renamed.valid
    assert "乙" in renamed.check("issuer_trusted").reason  # type: ignore[union-attr]
    narrowed = verify_qr_payload(text, TrustList([_issuer(pki, types=("YYZZ",))]), now=NOW)
    assert _failed(narrowed) == {"type_allowed"}
    assert verify_qr_payload(text, TrustList([_issuer(pki)]), now=NOW).valid


def test_a_shorter_certificate_window_is_seen_after_a_passing_scan(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)  # issued 2026-05-01
    issuer = _issuer(pki)
    assert verify_qr_payload(text, TrustList([issuer]), now=NOW).valid
    ended = dataclasses.replace(issuer, not_after=dt.datetime(2026, 4, 30, tzinfo=dt.UTC))
    assert _failed(verify_qr_payload(text, TrustList([ended]), now=NOW)) == {"issuer_trusted"}


def test_the_public_key_is_parsed_once_per_certificate(pki: Pki, other_pki: Pki) -> None:
    a, b = _issuer(pki), _issuer(pki, name="乙")
    assert a.public_key is b.public_key
    assert a.not_before == pki.signer.certificate.not_valid_before_utc
    other = TrustedIssuer.from_certificate(
        other_pki.signer.certificate, uscc="x", name="x", region="x", allowed_types=()
    )
    assert other.public_key is not a.public_key
    assert other.public_key == other_pki.signer.certificate.public_key()


# -- COSE -----------------------------------------------------------------------


def test_signed_bytes_are_the_sig_structure_and_follow_replace(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    msg = sign1_decode(b43decode(text[4:]))
    assert msg.signed_bytes == sig_structure(msg.protected, msg.payload)
    changed = dataclasses.replace(msg, payload=b"\xa0")
    assert changed.signed_bytes == sig_structure(msg.protected, b"\xa0")


def test_the_prehashed_verification_still_refuses_any_changed_byte(pki: Pki) -> None:
    text = encode_qr_payload(claims("resident"), pki.signer)
    trust = TrustList([_issuer(pki)])
    raw = bytearray(b43decode(text[4:]))
    item = cbor2.loads(bytes(raw))
    protected, unprotected, payload, signature = item.value
    for where in (0, len(payload) // 2, len(payload) - 1):
        bad = bytearray(payload)
        bad[where] ^= 1
        forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, bytes(bad), signature]))
        result = verify_qr_payload("YW1:" + b43encode(forged), trust, now=NOW)
        assert "signature" in _failed(result)
    flipped = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
    forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, flipped]))
    assert _failed(verify_qr_payload("YW1:" + b43encode(forged), trust, now=NOW)) == {"signature"}


# -- validity -----------------------------------------------------------------


def _validity_per_bound(c: QrClaims, now: dt.datetime, skew: dt.timedelta) -> bool:
    if (now + skew).astimezone(CHINA_TZ).date() < c.valid_from:
        return False
    return c.valid_until is None or (now - skew).astimezone(CHINA_TZ).date() <= c.valid_until


@settings(max_examples=500)
@given(
    st.datetimes(
        min_value=dt.datetime(2026, 4, 29),
        max_value=dt.datetime(2031, 5, 2),
        timezones=st.sampled_from(
            [
                dt.UTC,
                CHINA_TZ,
                dt.timezone(dt.timedelta(hours=-11)),
                dt.timezone(dt.timedelta(hours=14)),
            ]
        ),
    ),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=2)),
    st.booleans(),
)
def test_validity_with_one_conversion_is_validity_per_bound(
    now: dt.datetime, skew: dt.timedelta, open_ended: bool
) -> None:
    c = claims("resident", valid_until=None) if open_ended else claims("resident")
    assert _validity(c, now, skew).ok == _validity_per_bound(c, now, skew)
