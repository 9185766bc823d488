"""Token endpoint: authorization_code with PKCE, replay, client_credentials, client auth."""

from __future__ import annotations

import base64
import json

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, authorize_code, exchange


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _header(jwt: str) -> dict:
    part = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_code_flow_issues_id_token_and_rfc9068_access_token(web, citizen, rp):
    q, verifier = authorize_code(web, rp)
    assert q["state"] == "st-1" and q["iss"] == ISSUER
    resp = exchange(web, rp, q["code"], verifier)
    assert resp.status_code == 200, resp.data
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    id_token = _claims(body["id_token"])
    assert id_token["iss"] == ISSUER and id_token["aud"] == rp.client_id
    assert id_token["nonce"] == "n-1" and id_token["name"] == "张三"
    for claim in ("sub", "sid", "auth_time", "acr", "amr", "at_hash", "exp", "iat"):
        assert claim in id_token
    assert _header(body["id_token"])["alg"] == "ES256" and "kid" in _header(body["id_token"])
    at = body["access_token"]
    assert _header(at)["typ"] == "at+jwt"
    at_claims = _claims(at)
    assert at_claims["client_id"] == rp.client_id and at_claims["sub"] == id_token["sub"]
    assert at_claims["sid"] == id_token["sid"] and "jti" in at_claims
    assert "refresh_token" in body



def test_replayed_code_is_refused_and_revokes_its_tokens(web, citizen, rp):
    q, verifier = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], verifier)
    assert first.status_code == 200
    tokens = first.get_json()
    again = exchange(web, rp, q["code"], verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: what the code produced is revoked
    intro = web.post("/introspect", data={"token": tokens["access_token"]}, headers=rp.basic())
    assert intro.get_json() == {"active": False}
    refresh = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       headers=rp.basic())
    assert refresh.get_json()["error"] == "invalid_grant"


def test_pkce_wrong_or_missing_verifier_is_invalid_grant(web, citizen, rp):
    q, _verifier = authorize_code(web, rp)
    wrong = exchange(web, rp, q["code"], "x" * 50)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    q2, _ = authorize_code(web, rp)
    missing = exchange(web, rp, q2["code"], None)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_grant"


def test_unknown_code_is_invalid_grant(web, citizen, rp):
    resp = exchange(web, rp, "no-such-code", "v" * 50)
    assert resp.get_json()["error"] == "invalid_grant"


def test_code_of_another_client_is_invalid_grant(web, idp_services, citizen, rp):
    from tests.idp.oidc_helpers import make_rp

    other = make_rp(idp_services, name="Other", redirect_uri="https://other.example.cn/cb")
    q, verifier = authorize_code(web, rp)
    resp = web.post("/token", data={"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": rp.redirect_uri, "code_verifier": verifier},
                    headers=other.basic())
    assert resp.get_json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client_401(web, rp):
    import base64 as b64

    bad = {"Authorization": "Basic " + b64.b64encode(f"{rp.client_id}:wrong".encode()).decode()}
    resp = web.post("/token", data={"grant_type": "client_credentials"}, headers=bad)
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_unknown_client_is_invalid_client_401(web):
    import base64 as b64

    bad = {"Authorization": "Basic " + b64.b64encode(b"nobody:secret").decode()}
    resp = web.post("/token", data={"grant_type": "client_credentials"}, headers=bad)
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_client_credentials_is_short_lived_with_kid(web, rp):
    resp = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert body["expires_in"] <= 600
    assert "refresh_token" not in body
    claims = _claims(body["access_token"])
    assert claims["sub"] == rp.client_id and claims["exp"] - claims["iat"] == body["expires_in"]
    assert _header(body["access_token"])["kid"]


def test_client_secret_post_is_refused_when_basic_is_registered(web, rp):
    resp = web.post("/token", data={"grant_type": "client_credentials", "client_id": rp.client_id,
                                    "client_secret": rp.secret})
    assert resp.get_json()["error"] == "invalid_client"


def test_client_secret_post_works_when_registered(web, idp_services):
    from tests.idp.oidc_helpers import make_rp

    post_rp = make_rp(idp_services, name="Post", auth_method="client_secret_post")
    resp = web.post("/token", data={"grant_type": "client_credentials", "client_id": post_rp.client_id,
                                    "client_secret": post_rp.secret})
    assert resp.status_code == 200, resp.data


def test_private_key_jwt_with_jti_replay_refused(web, idp_services):
    import time
    import uuid

    from joserfc import jwk, jwt

    from tests.idp.oidc_helpers import make_rp

    key = jwk.ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"}, private=True)
    pub = key.as_dict(private=False)
    pub.update(alg="ES256", use="sig")
    pk_rp = make_rp(idp_services, name="PKJWT", auth_method="private_key_jwt", jwks={"keys": [pub]})
    now = int(time.time())
    claims = {"iss": pk_rp.client_id, "sub": pk_rp.client_id, "aud": ISSUER + "/token",
              "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60}
    assertion = jwt.encode({"alg": "ES256", "kid": "rp-key-1"}, claims, key)
    data = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    assert web.post("/token", data=data).status_code == 200
    replay = web.post("/token", data=data)
    assert replay.status_code in (400, 401) and replay.get_json()["error"] == "invalid_client"
    garbage = web.post("/token", data={**data, "client_assertion": "not.a.jwt"})
    assert garbage.get_json()["error"] == "invalid_client"


def test_unsupported_grant_type(web, rp):
    resp = web.post("/token", data={"grant_type": "password", "username": "x", "password": "y"},
                    headers=rp.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "unsupported_grant_type"


def test_rs256_client_gets_rs256_id_token(web, idp_services, citizen):
    from tests.idp.oidc_helpers import make_rp

    rs_rp = make_rp(idp_services, name="RS", id_token_alg="RS256")  # noqa: S106
    q, verifier = authorize_code(web, rs_rp)
    body = exchange(web, rs_rp, q["code"], verifier).get_json()
    assert _header(body["id_token"])["alg"] == "RS256"
    jwks = web.get("/jwks.json").get_json()
    assert _header(body["id_token"])["kid"] in {k["kid"] for k in jwks["keys"]}


def test_the_app_takes_one_token_service_from_the_composition_root(app):
    """idp.container builds one TokenService: the provider issues with it, single sign-out revokes with it."""
    runtime = app.extensions["yiwang"]
    assert runtime.server.provider is runtime.provider
    assert runtime.logout.service.tokens is runtime.provider.tokens
    assert runtime.logout.service.sessions is runtime.sessions is runtime.provider.sessions
