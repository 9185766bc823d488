"""Decoding never crashes: whatever the input, only PayloadError comes out."""

from __future__ import annotations

import contextlib

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signing.base43 import ALPHABET, b43decode, b43encode
from signing.errors import PayloadError
from signing.qr import PREFIX, decode_qr_payload, encode_qr_payload, verify_qr_payload

from .conftest import NOW, make_pki
from .demo import claims
from .test_qr import trust_for

_PKI = make_pki()
_TRUST = trust_for(_PKI)
_VALID = encode_qr_payload(claims("business"), _PKI.signer)
_VALID_BYTES = b43decode(_VALID[len(PREFIX) :])

_fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_payload_error(text: str) -> None:
    with contextlib.suppress(PayloadError):
        decode_qr_payload(text)
    result = verify_qr_payload(text, _TRUST, now=NOW)
    assert [c.name for c in result.checks][:1] == ["format"]


@_fast
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _decodes_or_payload_error(text)
    _decodes_or_payload_error(PREFIX + text)


@_fast
@given(st.text(alphabet=ALPHABET))
def test_prefix_and_arbitrary_base43_text(text: str) -> None:
    _decodes_or_payload_error(PREFIX + text)


@_fast
@given(st.binary(max_size=600))
def test_prefix_and_arbitrary_bytes(data: bytes) -> None:
    _decodes_or_payload_error(PREFIX + b43encode(data))


_cbor_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=70),
)
_cbor_values = st.recursive(
    _cbor_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.integers(-5, 20), st.text(max_size=4)), inner, max_size=8),
        st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 18, 28, 29, 258, 55799, 999]), inner),
    ),
    max_leaves=25,
)


@_fast
@given(_cbor_values)
def test_prefix_and_arbitrary_cbor(value: object) -> None:
    try:
        data = cbor2.dumps(value)
    except Exception:
        return
    _decodes_or_payload_error(PREFIX + b43encode(data))


@_fast
@given(_cbor_values, st.binary(max_size=64), st.booleans())
def test_cose_shaped_messages_with_arbitrary_claims(
    claims_value: object, kid: bytes, tagged: bool
) -> None:
    try:
        payload = cbor2.dumps(claims_value)
    except Exception:
        return
    message = [cbor2.dumps({1: -7}), {4: kid}, payload, bytes(64)]
    item = cbor2.CBORTag(18, message) if tagged else message
    _decodes_or_payload_error(PREFIX + b43encode(cbor2.dumps(item)))


@_fast
@given(
    st.integers(min_value=0, max_value=len(_VALID_BYTES) - 1),
    st.integers(min_value=0, max_value=255),
)
def test_one_byte_changed_in_a_valid_payload(position: int, value: int) -> None:
    data = bytearray(_VALID_BYTES)
    unchanged = data[position] == value
    data[position] = value
    text = PREFIX + b43encode(bytes(data))
    _decodes_or_payload_error(text)
    result = verify_qr_payload(text, _TRUST, now=NOW)
    assert result.valid == unchanged


@_fast
@given(st.binary(max_size=300))
def test_base43_round_trip(data: bytes) -> None:
    text = b43encode(data)
    assert b43decode(text) == data
    assert len(text) == (len(data) // 2) * 3 + (len(data) % 2) * 2


def test_base43_refuses_non_canonical_groups() -> None:
    import pytest

    from signing.base43 import Base43Error

    # 65535 = 3 + 19*43 + 35*1849 -> "3JZ", the largest 3-character group;
    # 255 = 40 + 5*43 -> ".5", the largest 2-character group.
    assert b43encode(b"\xff\xff") == "3JZ" and b43decode("3JZ") == b"\xff\xff"
    assert b43encode(b"\xff") == ".5" and b43decode(".5") == b"\xff"
    for bad in ("4JZ", ":::", "3JZ:::", "/5", "::", "A", "ab", "A B", "%%%", "é00"):
        with pytest.raises(Base43Error):
            b43decode(bad)
    assert b43decode("") == b""
