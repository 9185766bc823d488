"""signing.sdjwt_verify: an SD-JWT VC presentation against a trust list (issue 15 §2), without a server."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest

from keys.backend import jwk_thumbprint
from signing.qr import TrustedIssuer, TrustList
from signing.sdjwt_verify import SdJwtError, verify_presentation
from tests.signing.conftest import make_pki

from .vp_holder import ISS, Holder, b64, issue

AUD = "x509_hash:verifier"
NONCE = "n-0S6_WzA2Mj"


@pytest.fixture(scope="module")
def world() -> dict:
    here, foreign = make_pki("Beijing"), make_pki("Shanghai", uscc="91310000MA1FL8XQ2E")
    for p in (here, foreign):
        p.signer.kid = jwk_thumbprint(p.signer.public_key())  # what keys/ signers carry
    trust = TrustList([
        TrustedIssuer.from_certificate(here.signer.certificate, uscc=here.signer.uscc, name="本地局", region="110000",
                                       allowed_types={"JZZM", "YYZZ"}),
        # agreed with Shanghai: business licences only
        TrustedIssuer.from_certificate(foreign.signer.certificate, uscc=foreign.signer.uscc, name="上海局",
                                       region="310000", allowed_types={"YYZZ"}),
    ])
    return {"here": here, "foreign": foreign, "trust": trust}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _verify(world: dict, text: str, **kw):  # type: ignore[no-untyped-def]
    return verify_presentation(text, world["trust"], audience=kw.pop("aud", AUD), nonce=kw.pop("nonce", NONCE),
                               now=kw.pop("now", _now()), **kw)


def test_only_the_chosen_claims_come_out(world: dict) -> None:
    holder = Holder()
    text = holder.present(issue(world["here"].signer, holder), {"address", "since"}, aud=AUD, nonce=NONCE)
    p = _verify(world, text)
    assert p.claims == {"address": "北京市东城区", "since": "2020-03-01"}
    assert p.disclosed == {("address",), ("since",)}
    assert p.type_code == "JZZM" and p.issuer.region == "110000"
    assert p.status_uri == ISS + "/status-lists/1" and p.status_index == 7


def test_a_disclosure_nobody_signed_is_refused(world: dict) -> None:
    holder = Holder()
    forged = b64(json.dumps(["c2FsdA", "holder_name", "李四"]).encode())
    text = holder.present(issue(world["here"].signer, holder), {"since"}, aud=AUD, nonce=NONCE, extra=[forged])
    with pytest.raises(SdJwtError) as e:
        _verify(world, text)
    assert e.value.reason == "disclosure"


def test_a_tampered_disclosure_is_refused(world: dict) -> None:
    holder = Holder()
    cred = issue(world["here"].signer, holder)
    jwt_part, *ds = cred.rstrip("~").split("~")
    salt, name, _ = json.loads(base64.urlsafe_b64decode(ds[0] + "=="))
    tampered = b64(json.dumps([salt, name, "改过的"], ensure_ascii=False).encode())
    text = holder.present(jwt_part + "~" + "~".join([tampered, *ds[1:]]) + "~", None, aud=AUD, nonce=NONCE)
    with pytest.raises(SdJwtError) as e:
        _verify(world, text)
    assert e.value.reason == "disclosure"


def test_a_key_binding_jwt_from_another_key_is_refused(world: dict) -> None:
    holder, thief = Holder(), Holder()
    text = thief.present(issue(world["here"].signer, holder), {"since"}, aud=AUD, nonce=NONCE)
    with pytest.raises(SdJwtError) as e:
        _verify(world, text)
    assert e.value.reason == "key_binding"


@pytest.mark.parametrize(("kw", "reason"), [({"aud": "x509_hash:other"}, "audience"), ({"nonce": "old-nonce"}, "nonce")])
def test_a_presentation_for_another_verifier_or_request_is_refused(world: dict, kw: dict, reason: str) -> None:
    holder = Holder()
    text = holder.present(issue(world["here"].signer, holder), {"since"}, aud=AUD, nonce=NONCE)
    with pytest.raises(SdJwtError) as e:
        _verify(world, text, **kw)
    assert e.value.reason == reason


def test_an_old_key_binding_jwt_and_a_wrong_sd_hash_are_refused(world: dict) -> None:
    holder = Holder()
    cred = issue(world["here"].signer, holder)
    with pytest.raises(SdJwtError) as e:
        _verify(world, holder.present(cred, {"since"}, aud=AUD, nonce=NONCE, iat=int(time.time()) - 3600))
    assert e.value.reason == "stale"
    with pytest.raises(SdJwtError) as e:
        _verify(world, holder.present(cred, {"since"}, aud=AUD, nonce=NONCE, sd_hash=b64(b"x" * 32)))
    assert e.value.reason == "sd_hash"
    with pytest.raises(SdJwtError) as e:
        _verify(world, holder.present(cred, {"since"}, aud=AUD, nonce=NONCE, typ="JWT"))
    assert e.value.reason == "key_binding"


def test_a_foreign_issuer_only_for_the_types_agreed_with_its_region(world: dict) -> None:
    holder = Holder()
    ok = holder.present(issue(world["foreign"].signer, holder, type_code="YYZZ", iss="https://certs.sh.example"),
                        {"since"}, aud=AUD, nonce=NONCE)
    assert _verify(world, ok).issuer.region == "310000"
    bad = holder.present(issue(world["foreign"].signer, holder, type_code="JZZM", iss="https://certs.sh.example"),
                         {"since"}, aud=AUD, nonce=NONCE)
    with pytest.raises(SdJwtError) as e:
        _verify(world, bad)
    assert e.value.reason == "type_not_allowed"


def test_an_issuer_outside_the_trust_list_is_refused(world: dict) -> None:
    stranger = make_pki("Nowhere")
    stranger.signer.kid = jwk_thumbprint(stranger.signer.public_key())
    holder = Holder()
    text = holder.present(issue(stranger.signer, holder), {"since"}, aud=AUD, nonce=NONCE)
    with pytest.raises(SdJwtError) as e:
        _verify(world, text)
    assert e.value.reason == "unknown_issuer"


def test_an_expired_credential_and_a_missing_key_binding_are_refused(world: dict) -> None:
    holder = Holder()
    old = issue(world["here"].signer, holder, iat=int(time.time()) - 86400 * 3, exp=int(time.time()) - 86400)
    with pytest.raises(SdJwtError) as e:
        _verify(world, holder.present(old, {"since"}, aud=AUD, nonce=NONCE))
    assert e.value.reason == "expired"
    with pytest.raises(SdJwtError) as e:
        _verify(world, issue(world["here"].signer, holder))
    assert e.value.reason == "key_binding"
