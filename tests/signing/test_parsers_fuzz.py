"""Every parser of outside input raises only the package's own errors (issue 11, "so that it cannot come back").

Arbitrary text and bytes, and *structurally mutated valid inputs*: a valid
QR claim map, trust list or status list token with one member replaced,
removed or added at any depth — re-signed with the right key where there is
a signature, so the mutation reaches the parser behind it instead of being
stopped at the signature check. Allowed outcomes: a result, or
``PayloadError`` / ``TrustListError`` / ``StatusListError`` /
``InvalidIdentifier``. Anything else (``ValueError`` from a date out of
range, ``RecursionError``, ``KeyError``, …) is a bug.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import pki
from keys.config import CommonSettings
from keys.errors import InvalidIdentifier
from keys.identifiers import (
    is_valid_resident_id,
    mask_resident_id,
    parse_resident_id,
    parse_uscc,
    resident_id_check_character,
    uscc_check_character,
)
from keys.jws import encode_jws
from keys.keyring import Keyring, open_keyring
from signing.base43 import b43decode, b43encode
from signing.errors import PayloadError
from signing.qr import PREFIX, decode_qr_payload, verify_qr_payload
from signing.statuslist import (
    TYP as STATUS_TYP,
)
from signing.statuslist import (
    StatusList,
    StatusListError,
    sign_status_list,
    verify_status_list_token,
)
from signing.trustlist import (
    ListedIssuer,
    ListedType,
    RegionTrustList,
    TrustListError,
    export_trust_list,
    import_trust_list,
    peek_trust_list,
)

from .conftest import NOW, make_pki
from .demo import claims
from .test_qr import trust_for

_fuzz = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PSB = "111101050000000017"
def _now() -> dt.datetime:
    """Taken when used: keys made by a fixture after collection must not postdate it."""
    return dt.datetime.now(dt.UTC)

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _mutate(doc: Any, data: st.DataObject, values: st.SearchStrategy[Any]) -> Any:
    """A copy of ``doc`` with one member, at any depth, replaced, removed or added."""
    if isinstance(doc, dict) and doc and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(doc, key=repr)))
        out = dict(doc)
        out[key] = _mutate(doc[key], data, values)
        return out
    if isinstance(doc, list) and doc and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(doc) - 1))
        out_l = list(doc)
        out_l[i] = _mutate(doc[i], data, values)
        return out_l
    action = data.draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "remove" and isinstance(doc, dict) and doc:
        key = data.draw(st.sampled_from(sorted(doc, key=repr)))
        return {k: v for k, v in doc.items() if k != key}
    if action == "remove" and isinstance(doc, list) and doc:
        return doc[1:]
    if action == "add" and isinstance(doc, dict):
        return {**doc, data.draw(st.one_of(st.text(max_size=12), st.integers(-3, 20))): data.draw(values)}
    if action == "add" and isinstance(doc, list):
        return [*doc, data.draw(values)]
    return data.draw(values)


# -- identifiers (keys/identifiers.py) ---------------------------------------------------


_not_text = st.one_of(st.none(), st.integers(), st.binary(max_size=20), st.lists(st.text(max_size=3), max_size=3))


@_fuzz
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9]{17}[0-9Xx]\Z"), _not_text))
def test_id_number_parser_raises_only_invalid_identifier(value: Any) -> None:
    try:
        parsed = parse_resident_id(value)
    except InvalidIdentifier:
        assert not is_valid_resident_id(value)
        return
    assert len(parsed.number) == 18 and is_valid_resident_id(parsed.number)
    assert "*" in mask_resident_id(parsed.number)


@_fuzz
@given(st.integers(0, 17), st.characters())
def test_one_character_changed_in_a_valid_id_number(position: int, char: str) -> None:
    valid = "11010519491231002X"
    changed = valid[:position] + char + valid[position + 1 :]
    try:
        parse_resident_id(changed)
    except InvalidIdentifier:
        return
    assert changed.strip().upper() == valid or len(changed.strip()) == 18


@_fuzz
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9A-HJ-NP-RTUWXY]{18}\Z"), _not_text), st.booleans())
def test_credit_code_parser_raises_only_invalid_identifier(value: Any, strict: bool) -> None:
    try:
        code, _ok = parse_uscc(value, strict=strict)
    except InvalidIdentifier:
        return
    assert len(code) == 18


@_fuzz
@given(st.one_of(st.text(max_size=20), _not_text))
def test_check_characters_raise_only_invalid_identifier(value: Any) -> None:
    for fn in (resident_id_check_character, uscc_check_character):
        with contextlib.suppress(InvalidIdentifier):
            assert len(fn(value)) == 1


# -- QR payload (signing/qr.py, signing/cose.py) ---------------------------------------------


@functools.cache
def _qr() -> tuple[Any, str, list[Any]]:
    p = make_pki()
    text = __import__("signing.qr", fromlist=["encode_qr_payload"]).encode_qr_payload(claims("business"), p.signer)
    message = cbor2.loads(b43decode(text[len(PREFIX) :]))
    return trust_for(p), text, message


def _cbor_leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=30),
        st.binary(max_size=40),
        st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 18, 100, 1004]), st.integers() | st.text(max_size=5)),
    )


@_fuzz
@given(st.data())
def test_qr_claims_mutated_at_any_depth_raise_only_payload_error(data: st.DataObject) -> None:
    trust, _text, message = _qr()
    tag = message
    protected, unprotected, payload, signature = tag.value
    claims_map = dict(cbor2.loads(payload))
    mutated = _mutate(claims_map, data, _cbor_leaf())
    try:
        new_payload = cbor2.dumps(mutated)
    except Exception:
        return
    parts = [protected, unprotected, new_payload, signature]
    which = data.draw(st.integers(0, 4))
    if which < 4:  # and sometimes the COSE structure itself
        parts[which] = data.draw(_cbor_leaf())
    text = PREFIX + b43encode(cbor2.dumps(cbor2.CBORTag(18, parts)))
    with contextlib.suppress(PayloadError):
        decode_qr_payload(text)
    result = verify_qr_payload(text, trust, now=NOW)
    assert not result.valid or mutated == claims_map


# -- trust lists (signing/trustlist.py) ------------------------------------------------------


@functools.cache
def _region() -> tuple[Keyring, dict[str, Any], str]:
    home = Path(tempfile.mkdtemp(prefix="yw-fuzz-"))
    ring = open_keyring(CommonSettings.from_values({"HOME": home}, default_issuer="http://x").keys)
    pki.init_region(ring, region="110000", name="Region A")
    signer = pki.issue_signer(ring, uscc=_PSB, name="PSB")
    ca = pki.region_ca(ring)
    doc = RegionTrustList(
        region="110000",
        region_name="Region A",
        issued_at=_now() - dt.timedelta(minutes=1),
        next_update=_now() + dt.timedelta(days=7),
        status_list_base_url="https://a.test/status-lists/",
        root=ca.root,
        issuers=(ListedIssuer(_PSB, "公安", signer.certificate, ("JZZM",)),),
        intermediates=(ca.issuing,),
        types=(ListedType("JZZM", "居住证明", "Residence"),),
    )
    text = export_trust_list(doc, pki.root_signer(ring))
    return ring, peek_trust_list(text), text


def _signed_list(payload: Any) -> str:
    ring, _, _ = _region()
    root = pki.region_root(ring)
    from cryptography.hazmat.primitives.serialization import Encoding

    x5c = [base64.b64encode(root.public_bytes(Encoding.DER)).decode()]
    return encode_jws(pki.root_signer(ring), payload, typ="trustlist+jwt", extra_headers={"x5c": x5c})


def _import(text: Any) -> None:
    ring, _, _ = _region()
    with contextlib.suppress(TrustListError):
        import_trust_list(text, [pki.region_root(ring)], now=_now())
    with contextlib.suppress(TrustListError):
        peek_trust_list(text)


@_fuzz
@given(st.one_of(st.text(max_size=200), st.from_regex(r"\A[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,40}\Z")))
def test_trust_list_text_raises_only_trust_list_error(text: str) -> None:
    _import(text)


@_fuzz
@given(st.data())
def test_trust_list_payload_mutated_and_re_signed_raises_only_trust_list_error(data: st.DataObject) -> None:
    _, payload, _ = _region()
    mutated = _mutate(payload, data, json_values)
    try:
        json.dumps(mutated)
    except (TypeError, ValueError):
        return
    _import(_signed_list(mutated))


def _signed_raw(signer: Any, payload: bytes, typ: str, **extra: Any) -> str:
    """A compact JWS over exactly these payload bytes (JSON no encoder would write)."""
    from keys.jws import b64url

    header = {"alg": signer.algorithm, "kid": signer.kid, "typ": typ, **extra}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(payload)
    return signing_input + "." + b64url(signer.sign(signing_input.encode("ascii")))


_DEEP = b'{"format": 1, "issuers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_trust_list_dates_out_of_range_and_deep_nesting_are_trust_list_errors() -> None:
    ring, payload, text = _region()
    for change in ({"iat": 2**39}, {"next_update": 2**39}):
        with pytest.raises(TrustListError):
            import_trust_list(_signed_list({**payload, **change}), [pki.region_root(ring)], now=_now())
    from cryptography.hazmat.primitives.serialization import Encoding

    x5c = [base64.b64encode(pki.region_root(ring).public_bytes(Encoding.DER)).decode()]
    deep_signed = _signed_raw(pki.root_signer(ring), _DEEP, "trustlist+jwt", x5c=x5c)
    with pytest.raises(TrustListError):
        import_trust_list(deep_signed, [pki.region_root(ring)], now=_now())
    head, body, sig = text.split(".")
    deep = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=").decode()
    for bad in (f"{deep}.{body}.{sig}", f"{head}.{deep}.{sig}"):
        with pytest.raises(TrustListError):
            import_trust_list(bad, [pki.region_root(ring)], now=_now())
    with pytest.raises(TrustListError):
        peek_trust_list(f"{head}.{deep}.{sig}")


# -- status lists (signing/statuslist.py) ---------------------------------------------------


_URI = "https://a.test/status-lists/L1"


@functools.cache
def _status() -> tuple[Any, dict[str, Any]]:
    ring, _, _ = _region()
    signer = pki.agency_signer(ring, _PSB)
    token = sign_status_list(StatusList(1024, 2), signer, uri=_URI, issued_at=_now())
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return signer, claims


def _verify_status(token: Any) -> None:
    signer, _ = _status()
    with contextlib.suppress(StatusListError):
        verify_status_list_token(
            token, [signer.public_key()], uri=_URI, now=_now(), max_age=dt.timedelta(days=1)
        )


@_fuzz
@given(st.one_of(st.text(max_size=200), st.from_regex(r"\A[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,40}\Z")))
def test_status_list_text_raises_only_status_list_error(text: str) -> None:
    _verify_status(text)


@_fuzz
@given(st.data())
def test_status_list_claims_mutated_and_re_signed_raise_only_status_list_error(data: st.DataObject) -> None:
    signer, claims_ = _status()
    mutated = _mutate(claims_, data, json_values)
    try:
        json.dumps(mutated)
    except (TypeError, ValueError):
        return
    _verify_status(encode_jws(signer, mutated, typ=STATUS_TYP))


@_fuzz
@given(json_values)
def test_status_list_claim_decoder_raises_only_status_list_error(value: Any) -> None:
    with contextlib.suppress(StatusListError):
        StatusList.decode(value)


def test_status_list_dates_out_of_range_and_deep_nesting_are_status_list_errors() -> None:
    signer, claims_ = _status()
    tokens = [encode_jws(signer, {**claims_, **change}, typ=STATUS_TYP) for change in ({"iat": 2**39}, {"exp": 2**39})]
    tokens.append(_signed_raw(signer, _DEEP, STATUS_TYP))
    for token in tokens:
        with pytest.raises(StatusListError):
            verify_status_list_token(token, [signer.public_key()], uri=_URI, now=_now(), max_age=dt.timedelta(days=1))
    deep = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=").decode()
    with pytest.raises(StatusListError):
        verify_status_list_token(
            f"{deep}.e30.sig", [signer.public_key()], uri=_URI, now=_now(), max_age=dt.timedelta(days=1)
        )
