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

