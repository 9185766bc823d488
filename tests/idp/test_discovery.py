"""Discovery document and JWKS."""

from __future__ import annotations

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER


def test_discovery_document_is_complete_and_valid(web, monkeypatch):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == ISSUER
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                "introspection_endpoint", "revocation_endpoint", "pushed_authorization_request_endpoint",
                "end_session_endpoint"):
        assert doc[key].startswith(ISSUER + "/")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["require_pushed_authorization_requests"] is False
    assert {"pairwise", "public"} <= set(doc["subject_types_supported"])
    assert {"ES256", "RS256"} <= set(doc["id_token_signing_alg_values_supported"])
    assert "id_number" in doc["scopes_supported"] and "id_number" in doc["claims_supported"]
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"} <= set(
        doc["token_endpoint_auth_methods_supported"])
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test issuer is http
    AuthorizationServerMetadata(doc).validate()  # RFC 8414 rules, checked by Authlib


def test_jwks_lists_es256_and_rs256_public_keys_only(web):
    jwks = web.get("/jwks.json").get_json()
    algs = {k["alg"] for k in jwks["keys"]}
    assert {"ES256", "RS256"} <= algs
    for k in jwks["keys"]:
        assert k["kid"] and k["use"] == "sig"
        assert "d" not in k and "p" not in k


def test_endpoints_in_document_answer(web):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert web.get(doc["jwks_uri"].removeprefix(ISSUER)).status_code == 200
    assert web.post(doc["token_endpoint"].removeprefix(ISSUER), data={}).status_code in (400, 401)
