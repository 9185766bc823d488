"""IETF Token Status List: packing, compression, signing and verification."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.config import CommonSettings
from keys.jws import encode_jws
from keys.keyring import open_keyring
from signing.statuslist import (
    INVALID,
    MIN_SIZE,
    SUSPENDED,
    TYP,
    VALID,
    StatusList,
    StatusListError,
    describe_age,
    sign_status_list,
    verify_status_list_token,
)

URI = "https://certs.example/status-lists/7"
NOW = dt.datetime(2026, 11, 27, 4, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    home = tmp_path_factory.mktemp("sl")
    common = CommonSettings.from_values({"HOME": home}, default_issuer="http://x")
    ring = open_keyring(common.keys)
    return ring.keyset("sl-a").active(), ring.keyset("sl-b").active()


def test_bit_layout_matches_the_draft_example() -> None:
    # draft-ietf-oauth-status-list §4.1, 2-bit example: statuses [1,2,0,3,0,1,0,1,1,2,3,3]
    lst = StatusList(size=12, bits=2)
    for i, v in enumerate([1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]):
        lst.set(i, v)
    assert lst.to_bytes() == bytes([0xC9, 0x44, 0xF9])


def test_default_size_and_encoding_is_zlib() -> None:
    lst = StatusList()
    assert lst.size == MIN_SIZE >= 131_072 and lst.bits == 2
    lst.set(131_071, INVALID)
    claim = lst.encode()
    raw = zlib.decompress(base64.urlsafe_b64decode(claim["lst"] + "=="))
    assert len(raw) == 131_072 // 4 and raw[-1] == 0x40
    assert len(claim["lst"]) < 200  # mostly zeros compresses to almost nothing
    assert StatusList.decode(claim).get(131_071) == INVALID


@settings(max_examples=50)
@given(st.dictionaries(st.integers(0, 4095), st.integers(0, 3), max_size=64))
def test_round_trip(entries: dict[int, int]) -> None:
    lst = StatusList(size=4096, bits=2).update(entries.items())
    back = StatusList.decode(lst.encode())
    for i in range(4096):
        assert back.get(i) == entries.get(i, 0)


def test_index_out_of_range() -> None:
    with pytest.raises(StatusListError) as e:
        StatusList(size=8).get(8)
    assert e.value.reason == "index"


@pytest.mark.parametrize(
    "claim",
    [None, {}, {"bits": 3, "lst": "eJw"}, {"bits": 2, "lst": "!!!"}, {"bits": 2, "lst": "aGVsbG8"}],
)
def test_malformed_claims(claim: Any) -> None:
    with pytest.raises(StatusListError):
        StatusList.decode(claim)


def test_sign_and_verify(signers: tuple[Any, Any]) -> None:
    a, _ = signers
    lst = StatusList().update([(5, INVALID), (77_777, SUSPENDED)])
    token = sign_status_list(lst, a, uri=URI, issued_at=NOW, ttl=120)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == TYP and header["alg"] == "ES256"
    got = verify_status_list_token(
        token,
        [a.public_key()],
        uri=URI,
        now=NOW + dt.timedelta(minutes=3),
        max_age=dt.timedelta(hours=1),
    )
    assert (got.status(5), got.status(77_777), got.status(6)) == (INVALID, SUSPENDED, VALID)
    assert got.ttl == 120 and got.issued_at == NOW
    assert describe_age(got.age(NOW + dt.timedelta(minutes=3))) == "3 minutes"


def test_wrong_key_wrong_uri_stale_expired(signers: tuple[Any, Any]) -> None:
    a, b = signers
    token = sign_status_list(
        StatusList(), a, uri=URI, issued_at=NOW, lifetime=dt.timedelta(hours=2)
    )
    hour = dt.timedelta(hours=1)
    cases = [
        (dict(keys=[b.public_key()], uri=URI, now=NOW, max_age=hour), "signature"),
        (dict(keys=[a.public_key()], uri=URI + "8", now=NOW, max_age=hour), "uri"),
        (
            dict(
                keys=[a.public_key()],
                uri=URI,
                now=NOW + 2 * hour - dt.timedelta(minutes=10),
                max_age=hour,
            ),
            "too_old",
        ),
        (dict(keys=[a.public_key()], uri=URI, now=NOW + 3 * hour, max_age=10 * hour), "expired"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(StatusListError) as e:
            verify_status_list_token(token, **kwargs)  # type: ignore[arg-type]
        assert e.value.reason == reason, kwargs
    with pytest.raises(StatusListError, match="90 minutes old, older than the allowed 60 minutes"):
        verify_status_list_token(
            token, [a.public_key()], uri=URI, now=NOW + 90 * dt.timedelta(minutes=1), max_age=hour
        )


def test_tampered_and_mistyped_tokens(signers: tuple[Any, Any]) -> None:
    a, _ = signers
    token = sign_status_list(StatusList(), a, uri=URI, issued_at=NOW)
    h, p, s = token.split(".")
    other = StatusList().update([(1, INVALID)])
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["status_list"] = other.encode()
    forged_p = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    wrong_typ = encode_jws(a, claims, typ="JWT")
    for bad, reason in [
        (f"{h}.{forged_p}.{s}", "signature"),
        (wrong_typ, "format"),
        ("a.b", "format"),
        ("x.y.z", "format"),
    ]:
        with pytest.raises(StatusListError) as e:
            verify_status_list_token(
                bad, [a.public_key()], uri=URI, now=NOW, max_age=dt.timedelta(hours=1)
            )
        assert e.value.reason == reason


def test_joserfc_can_read_it_as_a_jwt(signers: tuple[Any, Any], tmp_path: Path) -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    a, _ = signers
    token = sign_status_list(StatusList(), a, uri=URI, issued_at=NOW)
    tok = jwt.decode(token, ECKey.import_key(a.public_jwk()), algorithms=["ES256"])
    assert tok.claims["sub"] == URI and tok.header["typ"] == "statuslist+jwt"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.text(max_size=80), st.text(max_size=80), st.text(max_size=80))))
def test_verifying_garbage_only_ever_raises_status_list_error(text: str) -> None:
    key = _garbage_key()
    with pytest.raises(StatusListError):
        verify_status_list_token(text, [key], uri=URI, now=NOW, max_age=dt.timedelta(hours=1))


_KEY: list[Any] = []


def _garbage_key() -> Any:
    if not _KEY:
        from cryptography.hazmat.primitives.asymmetric import ec

        _KEY.append(ec.generate_private_key(ec.SECP256R1()).public_key())
    return _KEY[0]
