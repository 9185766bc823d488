"""The holder's authorization code flow against the real idp (in process, ``idp_world``): what it refuses.

A callback with another ``state``, an ID token whose ``nonce`` is not the one
this browser was sent with, a spent handle: no token is kept, no credential
is issued. The good path gives a credential bound to the key that signed the
proof (the browser's, here a test key), for the signed-in citizen.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.idp.oidc_helpers import ISSUER, is_login_page, login, query_of

from .idp_world import CS_URL, World, world  # noqa: F401

CALLBACK = f"{CS_URL}/wallet/vci/callback"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _enable_holder(w: World) -> None:
    from certstore.web import holder_issue
    from idp.clients import ClientSpec

    w.idp_services.clients.add(ClientSpec(
        name="wallet", client_id="demo-wallet", public=True, first_party=True, redirect_uris=[CALLBACK],
        grant_types=["authorization_code"], scopes=["openid", "certs:read:JZZM"],
    ))
    svc = w.cs_app.extensions["certstore"]
    svc.settings = dataclasses.replace(svc.settings, holder_client_id="demo-wallet",
                                       vci_wallet_clients=frozenset({"demo-wallet"}))
    holder_issue.register_client(w.cs_app)


def _to_callback(w: World) -> tuple[dict[str, str], dict[str, str]]:
    """certstore's authorization request, then the idp's sign-in; returns (request query, callback query)."""
    start = w.cs.get("/wallet/vci/signin?type=JZZM")
    assert start.status_code == 302, start.get_data(as_text=True)
    loc = start.headers["Location"]
    assert loc.startswith(f"{ISSUER}/authorize?")
    asked = query_of(loc)
    resp = w.idp.get("/authorize", query_string=asked)
    for _ in range(8):
        if is_login_page(resp):
            resp = login(w.idp, resp)
            continue
        assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
        nxt = resp.headers["Location"]
        if nxt.startswith(CALLBACK):
            return asked, query_of(nxt)
        resp = login(w.idp, nxt) if urlsplit(nxt).path == "/login" else w.idp.get(nxt)
    raise AssertionError("the sign-in did not reach the callback")


def _proof(key: ec.EllipticCurvePrivateKey, nonce: str) -> str:
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": _b64(nums.x.to_bytes(32, "big")), "y": _b64(nums.y.to_bytes(32, "big"))}
    header = {"alg": "ES256", "typ": "openid4vci-proof+jwt", "jwk": jwk}
    claims = {"aud": CS_URL, "iat": int(time.time()), "nonce": nonce, "iss": "demo-wallet"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_authorization_request_is_pkce_with_state_and_nonce(world: World) -> None:  # noqa: F811
    _enable_holder(world)
    asked, back = _to_callback(world)
    assert asked["client_id"] == "demo-wallet" and asked["redirect_uri"] == CALLBACK
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["state"] and asked["nonce"] and asked["state"] == back["state"]
    assert set(asked["scope"].split()) == {"openid", "certs:read:JZZM"}
    assert world.cs.get("/wallet/vci/signin?type=NOPE").status_code == 400


def test_another_state_is_refused(world: World) -> None:  # noqa: F811
    _enable_holder(world)
    _asked, back = _to_callback(world)
    resp = world.cs.get("/wallet/vci/callback", query_string={"code": back["code"], "state": "forged"})
    assert resp.status_code == 400
    assert "yw_holder_vci" not in resp.headers.get("Set-Cookie", "")


def test_an_id_token_with_another_nonce_is_refused(world: World) -> None:  # noqa: F811
    _enable_holder(world)
    _asked, back = _to_callback(world)
    with world.cs.session_transaction() as sess:
        key = f"_state_holder_{back['state']}"
        kept: dict[str, Any] = sess[key]
        kept["data"]["nonce"] = "not-the-one-sent"  # as if the ID token had been made for another request
        sess[key] = kept
    resp = world.cs.get("/wallet/vci/callback", query_string=back)
    assert resp.status_code == 400
    assert "yw_holder_vci" not in resp.headers.get("Set-Cookie", "")


def test_credential_bound_to_the_proof_key_once(world: World) -> None:  # noqa: F811
    _enable_holder(world)
    _asked, back = _to_callback(world)
    resp = world.cs.get("/wallet/vci/callback", query_string=back)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet/holder?vci=signed-in")
    assert "HttpOnly" in resp.headers["Set-Cookie"] and "SameSite=Strict" in resp.headers["Set-Cookie"]
    assert "Path=/wallet/vci" in resp.headers["Set-Cookie"]
    # no proof, no credential: the handle is kept for a proper request
    assert world.cs.post("/wallet/vci/credential", data="proof=x").status_code == 400
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = world.cs.post("/vci/nonce").get_json()["c_nonce"]
    got = world.cs.post("/wallet/vci/credential", json={"proof": _proof(key, nonce)})
    assert got.status_code == 200, got.get_data(as_text=True)
    text = got.get_json()["credentials"][0]["credential"]
    payload_b64 = text.split("~")[0].split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    nums = key.public_key().public_numbers()
    assert payload["cnf"]["jwk"]["x"] == _b64(nums.x.to_bytes(32, "big"))
    assert payload["vct"] == f"{CS_URL}/vct/JZZM"
    # spent: the same cookie again gets nothing
    nonce = world.cs.post("/vci/nonce").get_json()["c_nonce"]
    again = world.cs.post("/wallet/vci/credential", json={"proof": _proof(key, nonce)})
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_token"


def test_holder_page_offers_sign_in_per_type_in_each_language(world: World) -> None:  # noqa: F811
    import re

    assert 'id="holder-signin"' not in world.cs.get("/wallet/holder?lang=zh-CN").get_data(as_text=True)  # no client
    _enable_holder(world)
    zh = world.cs.get("/wallet/holder?lang=zh-CN").get_data(as_text=True)
    en = world.cs.get("/wallet/holder?lang=en").get_data(as_text=True)
    assert "或登录领取您本人的凭证" in zh and "Or sign in to receive your own" in en
    link = re.compile(r'<a href="/wallet/vci/signin\?type=JZZM" data-type="JZZM">([^<]+)</a>')
    zh_name, en_name = link.search(zh), link.search(en)
    assert zh_name and en_name and zh_name.group(1) != en_name.group(1)
    assert 'data-client="demo-wallet"' in zh



def test_two_sign_ins_at_once_each_get_their_own_type(world: World) -> None:  # noqa: F811
    _enable_holder(world)
    first_asked, first_back = _to_callback(world)
    second = world.cs.get("/wallet/vci/signin?type=BYZS")  # another tab starts a sign-in before the first ends
    assert second.status_code == 302, second.get_data(as_text=True)
    assert first_asked["state"] != query_of(second.headers["Location"])["state"]
    resp = world.cs.get("/wallet/vci/callback", query_string=first_back)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = world.cs.post("/vci/nonce").get_json()["c_nonce"]
    got = world.cs.post("/wallet/vci/credential", json={"proof": _proof(key, nonce)})
    assert got.status_code == 200, got.get_data(as_text=True)  # the first tab's JZZM, not the second's BYZS
    payload_b64 = got.get_json()["credentials"][0]["credential"].split("~")[0].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))["vct"].endswith("/JZZM")
