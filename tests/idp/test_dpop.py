"""DPoP (RFC 9449) at the idp: token endpoint, code binding, refresh, introspection, userinfo.

Each attack of issue 14 is a test here (the proof checker's own attacks are in
tests/keys/test_dpop.py); the answers are the same on the WSGI hot path and on
the Flask views.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, authorize_code, make_rp, pkce_pair
from tests.keys.dpop_client import DPoPKey

TOKEN = f"{ISSUER}/token"
USERINFO = f"{ISSUER}/userinfo"


def kind_of(body: dict[str, Any]) -> str:
    """The response's ``token_type`` (DPoP or Bearer)."""
    return str(body["token_type"])


def claims_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def token(web: Any, rp: Any, data: dict[str, str], key: DPoPKey | None = None, *, proof: str | None = None,
          path: str = "/token") -> Any:
    headers = dict(rp.basic()) if rp.secret else {}
    if not rp.secret:
        data = {**data, "client_id": rp.client_id}
    if proof is None and key is not None:
        proof = key.proof("POST", TOKEN)
    if proof is not None:
        headers["DPoP"] = proof
    return web.post(path, data=data, headers=headers)


def code_tokens(web: Any, rp: Any, key: DPoPKey | None, *, extra: dict[str, str] | None = None) -> Any:
    q, verifier = authorize_code(web, rp, scope="openid profile offline_access", extra=extra)
    return token(web, rp, {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": rp.redirect_uri,
                           "code_verifier": verifier}, key)


def introspect(web: Any, rp: Any, value: str) -> dict[str, Any]:
    return web.post("/introspect", data={"token": value}, headers=rp.basic()).get_json()


def userinfo(web: Any, access: str, key: DPoPKey | None, *, scheme: str = "DPoP", method: str = "GET",
             proof: str | None = None) -> Any:
    headers = {"Authorization": f"{scheme} {access}"}
    if proof is None and key is not None:
        proof = key.proof(method, USERINFO, access_token=access)
    if proof is not None:
        headers["DPoP"] = proof
    return web.open("/userinfo", method=method, headers=headers)


def challenge(resp: Any) -> str:
    return resp.headers.get("WWW-Authenticate", "")


@pytest.fixture
def public_rp(idp_services: Any) -> Any:
    return make_rp(idp_services, name="App", public=True, grant_types=("authorization_code", "refresh_token"),
                   redirect_uri="cn.gov.app:/cb")


# ------------------------------------------------------------------ issuing


def test_client_credentials_with_a_proof_gives_a_dpop_bound_token(web: Any, rp: Any) -> None:
    key = DPoPKey()
    resp = token(web, rp, {"grant_type": "client_credentials"}, key)
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert kind_of(body) == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}
    info = introspect(web, rp, body["access_token"])
    assert info["active"] and kind_of(info) == "DPoP" and info["cnf"] == {"jkt": key.jkt}


def test_without_a_proof_tokens_stay_bearer(web: Any, rp: Any) -> None:
    body = token(web, rp, {"grant_type": "client_credentials"}).get_json()
    assert kind_of(body) == "Bearer" and "cnf" not in claims_of(body["access_token"])
    assert "cnf" not in introspect(web, rp, body["access_token"])


def test_code_flow_with_dpop_and_userinfo(web: Any, citizen: Any, rp: Any) -> None:
    key = DPoPKey()
    body = code_tokens(web, rp, key).get_json()
    assert kind_of(body) == "DPoP", body
    access = body["access_token"]
    assert claims_of(access)["cnf"]["jkt"] == key.jkt
    ok = userinfo(web, access, key)
    assert ok.status_code == 200 and ok.get_json()["sub"]
    # A confidential client's refresh token may stay unbound (RFC 9449 §5) …
    assert "cnf" not in introspect(web, rp, body["refresh_token"])
    # … but the new access token is bound to the refresh request's key.
    other = DPoPKey()
    again = token(web, rp, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, other)
    assert again.status_code == 200, again.data
    assert claims_of(again.get_json()["access_token"])["cnf"]["jkt"] == other.jkt


def test_a_replayed_proof_is_refused_at_the_token_endpoint(web: Any, rp: Any) -> None:
    proof = DPoPKey().proof("POST", TOKEN)
    assert token(web, rp, {"grant_type": "client_credentials"}, proof=proof).status_code == 200
    again = token(web, rp, {"grant_type": "client_credentials"}, proof=proof)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_dpop_proof"


def test_a_proof_for_another_url_or_method_is_refused(web: Any, rp: Any) -> None:
    key = DPoPKey()
    for proof in (key.proof("POST", USERINFO), key.proof("GET", TOKEN),
                  key.proof("POST", "http://attacker.example/token")):
        resp = token(web, rp, {"grant_type": "client_credentials"}, proof=proof)
        assert resp.get_json()["error"] == "invalid_dpop_proof"


def test_a_stale_proof_hmac_none_and_private_jwk_are_refused(web: Any, rp: Any) -> None:
    import time

    from tests.keys.dpop_client import raw_jws

    key = DPoPKey()
    claims = {"jti": "x1", "htm": "POST", "htu": TOKEN, "iat": int(time.time())}
    for proof in (key.proof("POST", TOKEN, iat=time.time() - 600),
                  raw_jws({"typ": "dpop+jwt", "alg": "none", "jwk": key.public}, claims),
                  raw_jws({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}}, claims, b"s" * 32),
                  key.proof("POST", TOKEN, header={"jwk": key.key.as_dict(private=True)})):
        resp = token(web, rp, {"grant_type": "client_credentials"}, proof=proof)
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof", proof[:20]


def test_a_dpop_bound_client_gets_no_bearer_token(web: Any, idp_services: Any) -> None:
    rp = make_rp(idp_services, name="DPoP only", dpop_bound_access_tokens=True)
    resp = token(web, rp, {"grant_type": "client_credentials"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"
    assert kind_of(token(web, rp, {"grant_type": "client_credentials"}, DPoPKey()).get_json()) == "DPoP"
    from idp.clients import client_to_dict

    assert client_to_dict(idp_services.clients.get(rp.client_id))["dpop_bound_access_tokens"] is True


def test_a_dpop_bound_client_keeps_its_code_when_the_proof_is_missing(web: Any, citizen: Any,
                                                                      idp_services: Any) -> None:
    rp = make_rp(idp_services, name="DPoP only", dpop_bound_access_tokens=True)
    q, verifier = authorize_code(web, rp)
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier}
    assert token(web, rp, data).get_json()["error"] == "invalid_dpop_proof"
    assert kind_of(token(web, rp, data, DPoPKey()).get_json()) == "DPoP"


# ------------------------------------------------------------ code binding


def test_a_dpop_jkt_bound_code_needs_that_key(web: Any, citizen: Any, rp: Any) -> None:
    key, other = DPoPKey(), DPoPKey()
    refused = code_tokens(web, rp, other, extra={"dpop_jkt": key.jkt})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_dpop_proof"
    no_proof = code_tokens(web, rp, None, extra={"dpop_jkt": key.jkt})
    assert no_proof.get_json()["error"] == "invalid_dpop_proof"
    ok = code_tokens(web, rp, key, extra={"dpop_jkt": key.jkt})
    assert ok.status_code == 200 and claims_of(ok.get_json()["access_token"])["cnf"]["jkt"] == key.jkt


def test_a_malformed_dpop_jkt_is_refused_at_the_authorization_endpoint(web: Any, citizen: Any, rp: Any) -> None:
    _, challenge_ = pkce_pair()
    resp = web.get("/authorize", query_string={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri, "scope": "openid",
        "code_challenge": challenge_, "code_challenge_method": "S256", "dpop_jkt": "short"})
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"], resp.status_code


def test_par_with_a_proof_binds_the_code(web: Any, citizen: Any, rp: Any) -> None:
    key, other = DPoPKey(), DPoPKey()
    verifier, challenge_ = pkce_pair()
    form = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid", "code_challenge": challenge_, "code_challenge_method": "S256"}
    mismatch = web.post("/par", data={**form, "dpop_jkt": other.jkt},
                        headers={**rp.basic(), "DPoP": key.proof("POST", f"{ISSUER}/par")})
    assert mismatch.status_code == 400 and mismatch.get_json()["error"] == "invalid_dpop_proof"
    pushed = web.post("/par", data=form, headers={**rp.basic(), "DPoP": key.proof("POST", f"{ISSUER}/par")})
    assert pushed.status_code == 201, pushed.data
    q, _ = authorize_code(web, rp, extra={"request_uri": pushed.get_json()["request_uri"]})
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier}
    assert token(web, rp, data, other).get_json()["error"] == "invalid_dpop_proof"
    # The refused redemption consumed the code (RFC 6749 §4.1.2: single use); the right key's flow:
    pushed = web.post("/par", data=form, headers={**rp.basic(), "DPoP": key.proof("POST", f"{ISSUER}/par")})
    q, _ = authorize_code(web, rp, extra={"request_uri": pushed.get_json()["request_uri"]})
    ok = token(web, rp, {**data, "code": q["code"]}, key)
    assert ok.status_code == 200 and claims_of(ok.get_json()["access_token"])["cnf"]["jkt"] == key.jkt


# ------------------------------------------------------------------ refresh


def test_a_public_clients_refresh_token_is_bound_to_its_key(web: Any, citizen: Any, public_rp: Any) -> None:
    key, other = DPoPKey(), DPoPKey()
    body = code_tokens(web, public_rp, key).get_json()
    rt = body["refresh_token"]
    for attempt in (other, None):  # another key, no proof: refused, and the token is not used up
        resp = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": rt}, attempt)
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"
    ok = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": rt}, key)
    assert ok.status_code == 200, ok.data
    assert claims_of(ok.get_json()["access_token"])["cnf"]["jkt"] == key.jkt
    # The retry of a rotated token (issue 20 grace window) must carry the same key too.
    retry = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": rt}, key)
    assert retry.status_code == 200, retry.data


def test_a_retry_with_another_key_is_not_the_honest_retry(web: Any, citizen: Any, public_rp: Any) -> None:
    key = DPoPKey()
    rt = code_tokens(web, public_rp, key).get_json()["refresh_token"]
    child = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": rt}, key).get_json()
    stolen = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": rt}, DPoPKey())
    assert stolen.status_code == 400
    # The thief's attempt on a rotated token is reuse: the family is revoked.
    later = token(web, public_rp, {"grant_type": "refresh_token", "refresh_token": child["refresh_token"]}, key)
    assert later.get_json()["error"] == "invalid_grant"


def test_a_confidential_clients_retry_must_carry_the_first_key(web: Any, citizen: Any, rp: Any) -> None:
    key = DPoPKey()
    rt = code_tokens(web, rp, key).get_json()["refresh_token"]
    assert "cnf" not in introspect(web, rp, rt)  # unbound (RFC 9449 §5) …
    first = token(web, rp, {"grant_type": "refresh_token", "refresh_token": rt}, key)
    assert first.status_code == 200
    # … yet its one retry (issue 20 grace window) must come with the key of that first request
    for attempt in (DPoPKey(), None):
        retry = token(web, rp, {"grant_type": "refresh_token", "refresh_token": rt}, attempt)
        assert retry.status_code == 400 and retry.get_json()["error"] == "invalid_dpop_proof"
    honest = token(web, rp, {"grant_type": "refresh_token", "refresh_token": rt}, key)
    assert honest.status_code == 200 and claims_of(honest.get_json()["access_token"])["cnf"]["jkt"] == key.jkt


# --------------------------------------------------------------- userinfo


def test_userinfo_refuses_a_bound_token_as_bearer_and_another_keys_proof(web: Any, citizen: Any, rp: Any) -> None:
    key = DPoPKey()
    access = code_tokens(web, rp, key).get_json()["access_token"]
    as_bearer = userinfo(web, access, None, scheme="Bearer")
    assert as_bearer.status_code == 401 and 'error="invalid_token"' in challenge(as_bearer)
    assert challenge(as_bearer).startswith("DPoP ") and 'algs="ES256 EdDSA PS256"' in challenge(as_bearer)
    wrong = userinfo(web, access, DPoPKey())
    assert wrong.status_code == 401 and 'error="invalid_dpop_proof"' in challenge(wrong)
    no_ath = userinfo(web, access, None, proof=key.proof("GET", USERINFO))
    assert 'error="invalid_dpop_proof"' in challenge(no_ath)
    missing = userinfo(web, access, None)
    assert 'error="invalid_dpop_proof"' in challenge(missing)
    post = userinfo(web, access, key, method="POST")
    assert post.status_code == 200


def test_userinfo_keeps_bearer_tokens_working_and_refuses_them_as_dpop(web: Any, citizen: Any, rp: Any) -> None:
    access = code_tokens(web, rp, None).get_json()["access_token"]
    assert userinfo(web, access, None, scheme="Bearer").status_code == 200
    resp = userinfo(web, access, DPoPKey())
    assert resp.status_code == 401 and 'error="invalid_token"' in challenge(resp)


# ------------------------------------------------------------------ nonces


@pytest.fixture
def nonce_web(app_with: Any) -> Any:
    return app_with(dpop_nonce_endpoints=("token", "userinfo")).test_client()


def test_the_token_endpoint_asks_for_a_nonce_and_accepts_it(nonce_web: Any, rp: Any) -> None:
    key = DPoPKey()
    first = token(nonce_web, rp, {"grant_type": "client_credentials"}, key)
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    ok = token(nonce_web, rp, {"grant_type": "client_credentials"}, proof=key.proof("POST", TOKEN, nonce=nonce))
    assert ok.status_code == 200 and ok.headers["DPoP-Nonce"]


def test_an_old_or_made_up_nonce_is_refused(nonce_web: Any, rp: Any) -> None:
    key = DPoPKey()
    nonces = nonce_web.application.extensions["yiwang"].provider.dpop.verifier.nonces
    old = nonces._for(nonces._window() - 2)
    for nonce in (old, "made-up"):
        resp = token(nonce_web, rp, {"grant_type": "client_credentials"}, proof=key.proof("POST", TOKEN, nonce=nonce))
        assert resp.get_json()["error"] == "use_dpop_nonce" and resp.headers["DPoP-Nonce"] != old


def test_userinfo_asks_for_a_nonce_with_a_dpop_challenge(nonce_web: Any, citizen: Any, rp: Any) -> None:
    key = DPoPKey()
    first = token(nonce_web, rp, {"grant_type": "client_credentials"}, key)
    nonce = first.headers["DPoP-Nonce"]
    access = token(nonce_web, rp, {"grant_type": "client_credentials"},
                   proof=key.proof("POST", TOKEN, nonce=nonce)).get_json()["access_token"]
    resp = userinfo(nonce_web, access, key)
    assert resp.status_code == 401 and 'error="use_dpop_nonce"' in challenge(resp) and resp.headers["DPoP-Nonce"]


# ------------------------------------------------------- both front doors


def test_the_hot_path_and_flask_answer_dpop_alike(web: Any, rp: Any, flask_reached: list[str]) -> None:
    key = DPoPKey()
    hot = token(web, rp, {"grant_type": "client_credentials"}, key)
    assert flask_reached == []
    flask = token(web, rp, {"grant_type": "client_credentials"}, key, path="/token?via=flask")
    assert flask_reached == ["oauth.token"]
    assert kind_of(hot.get_json()) == kind_of(flask.get_json()) == "DPoP"
    bad = DPoPKey().proof("POST", USERINFO)
    a = token(web, rp, {"grant_type": "client_credentials"}, proof=bad)
    b = token(web, rp, {"grant_type": "client_credentials"}, proof=bad, path="/token?via=flask")
    assert a.get_json()["error"] == "invalid_dpop_proof" and b.get_json()["error"] == "invalid_dpop_proof"


def test_discovery_advertises_the_proof_algorithms(web: Any) -> None:
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256"]
