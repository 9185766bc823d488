"""The FAPI 2.0 Security Profile per client (idp/oauth/fapi.py): one test per point of docs/fapi2.md.

A client registered ``--profile fapi2`` gets PAR, ``code``, PKCE S256,
``iss`` in the authorization response, private_key_jwt (aud = the issuer,
PS256/ES256/EdDSA) or mTLS, sender-constrained tokens (DPoP or mTLS) and
codes that live at most 60 s; every deviation is refused with the standard
error. The same requests from an ordinary client still work (the profile is
per client).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from idp.clients import ClientSpec, build_client
from idp.errors import InvalidInput
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ISSUER,
    csrf_of,
    is_login_page,
    login,
    make_rp,
    pkce_pair,
    query_of,
)
from tests.idp.test_mtls import mtls_app, pkit  # noqa: F401 - fixtures: the agency PKI, the idp behind the proxy
from tests.keys.dpop_client import DPoPKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "https://bank.example.cn/cb"


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class FapiClient:
    def __init__(self, services: Any, *, profile: str | None = "fapi2", key: Any = None, alg: str = "ES256",
                 **kw: Any) -> None:
        self.key = key or ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
        self.alg = alg
        pub = self.key.as_dict(private=False)
        pub.update(alg=alg, use="sig", kid="k1")
        rp = make_rp(services, name="银行", auth_method="private_key_jwt", jwks={"keys": [pub]},
                     redirect_uri=REDIRECT, profile=profile, **kw)
        self.client_id, self.redirect_uri = rp.client_id, rp.redirect_uri

    def assertion(self, aud: Any = ISSUER, alg: str | None = None) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": aud, "jti": uuid.uuid4().hex,
                  "iat": now, "exp": now + 60}
        token = jwt.encode({"alg": alg or self.alg, "kid": "k1"}, claims, self.key, algorithms=[alg or self.alg])
        return {"client_assertion_type": JWT_BEARER, "client_assertion": token}


@pytest.fixture
def fapi(idp_services: Any) -> FapiClient:
    return FapiClient(idp_services)


@pytest.fixture
def plain(idp_services: Any) -> FapiClient:
    return FapiClient(idp_services, profile=None)


def _push(web: Any, client: FapiClient, *, drop: tuple[str, ...] = (), headers: dict[str, str] | None = None,
          **params: str) -> tuple[Any, str]:
    verifier, challenge = pkce_pair()
    data = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": "openid profile", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256", **params, **client.assertion()}
    for name in drop:
        data.pop(name, None)
    return web.post("/par", data=data, headers=headers or {}), verifier


def _drive(web: Any, query: dict[str, str], redirect_uri: str) -> dict[str, str]:
    """/authorize → login → consent → the redirect's query."""
    resp = web.get("/authorize", query_string=query)
    for _ in range(8):
        if is_login_page(resp):
            resp = login(web, resp)
            continue
        assert resp.status_code in (302, 303), (resp.status_code, resp.data[:300])
        loc = resp.headers["Location"]
        if loc.startswith(redirect_uri):
            return query_of(loc)
        if urlsplit(loc).path == "/consent":
            page = web.get(loc)
            resp = web.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
        else:
            resp = web.get(loc)
    raise AssertionError("the flow did not end at the redirect URI")


def _code(web: Any, client: FapiClient, **params: str) -> tuple[str, str]:
    pushed, verifier = _push(web, client, **params)
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    query = _drive(web, {"client_id": client.client_id, "request_uri": pushed.get_json()["request_uri"]},
                   client.redirect_uri)
    assert query["iss"] == ISSUER and "code" in query, query
    return query["code"], verifier


def _redeem(web: Any, client: FapiClient, code: str, verifier: str, *, dpop: DPoPKey | None = None,
            **assertion: Any) -> Any:
    headers = {"DPoP": dpop.proof("POST", ISSUER + "/token")} if dpop else {}
    return web.post("/token", data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": client.redirect_uri, "code_verifier": verifier,
                                    **client.assertion(**assertion)}, headers=headers)


# ------------------------------------------------------------------ registration


@pytest.mark.parametrize("kw, words", [
    ({"public": True, "auth_method": None}, "confidential"),
    ({"auth_method": "client_secret_basic"}, "private_key_jwt"),
    ({"grant_types": ("authorization_code", "urn:ietf:params:oauth:grant-type:device_code")}, "may not use"),
    ({"redirect_uris": ["http://bank.example.cn/cb"]}, "https"),
    ({"redirect_uris": ["http://127.0.0.1:8080/cb"]}, "https"),
    ({"id_token_alg": "RS256"}, "PS256, ES256, EdDSA"),
], ids=["public", "client-secret", "device-grant", "http-redirect", "loopback-outside-demo", "rs256-id-token"])
def test_an_incompatible_registration_is_refused(kw, words):
    spec = dict(name="银行", redirect_uris=[REDIRECT], auth_method="private_key_jwt", profile="fapi2",
                jwks={"keys": [ECKey.generate_key("P-256").as_dict(private=False)]})
    spec.update(kw)
    with pytest.raises(InvalidInput, match=words):
        build_client(ClientSpec(**spec))


def test_loopback_http_redirect_only_in_the_demo_and_unknown_profiles_are_refused():
    spec = dict(name="银行", redirect_uris=["http://127.0.0.1:8080/cb"], auth_method="private_key_jwt",
                profile="fapi2", jwks={"keys": [ECKey.generate_key("P-256").as_dict(private=False)]})
    assert build_client(ClientSpec(**spec), allow_loopback=True).attribute("profile") == "fapi2"
    with pytest.raises(InvalidInput, match="unknown profile"):
        build_client(ClientSpec(**{**spec, "profile": "fapi1"}), allow_loopback=True)


def test_cli_registers_a_fapi2_client(yiwang_env, tmp_path):
    from click.testing import CliRunner

    from idp.cli import cli

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}))
    env = {**yiwang_env, "YIWANG_ISSUER": "http://127.0.0.1:5000"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    base = ["clients", "add", "--name", "银行", "--redirect-uri", REDIRECT, "--profile", "fapi2", "--json"]
    ok = runner.invoke(cli, [*base, "--auth-method", "private_key_jwt", "--jwks", str(jwks)], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["attributes"]["profile"] == "fapi2"
    refused = runner.invoke(cli, base, env=env)  # client_secret_basic by default
    # The group itself raises; `idp` (main) prints it as one line and exits 2.
    assert refused.exit_code != 0 and isinstance(refused.exception, InvalidInput)
    assert "FAPI 2.0" in str(refused.exception)


# ------------------------------------------------------------ authorization requests


def test_par_is_required(web, fapi, plain, citizen):
    verifier, challenge = pkce_pair()
    for client in (fapi, plain):
        resp = web.get("/authorize", query_string={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
            "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
        if client is fapi:
            query = query_of(resp.headers["Location"])
            assert query["error"] == "invalid_request" and "pushed" in query["error_description"]
            assert query["iss"] == ISSUER and query["state"] == "s"  # RFC 9207 on the error too
        else:
            assert is_login_page(resp)  # the profile is per client


@pytest.mark.parametrize("drop, params, words", [
    (("code_challenge", "code_challenge_method"), {}, "PKCE"),
    ((), {"code_challenge_method": "plain"}, "S256"),
    ((), {"response_type": "token"}, "response_type"),
], ids=["no-pkce", "plain-pkce", "response-type-token"])
def test_par_refuses_what_fapi2_forbids(web, fapi, drop, params, words):
    resp, _ = _push(web, fapi, drop=drop, **params)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert words in resp.get_json()["error_description"]


def test_a_confidential_non_fapi_client_may_still_push_without_pkce(web, plain):
    resp, _ = _push(web, plain, drop=("code_challenge", "code_challenge_method"))
    assert resp.status_code == 201


# ------------------------------------------------------------------ token endpoint


def test_the_client_assertion_audience_must_be_the_issuer(web, fapi, plain, citizen):
    for client, status in ((fapi, 401), (plain, 200)):
        code, verifier = _code(web, client)
        resp = _redeem(web, client, code, verifier, dpop=DPoPKey(), aud=ISSUER + "/token")
        assert resp.status_code == status, resp.get_data(as_text=True)
        if status == 401:
            assert resp.get_json()["error"] == "invalid_client"


def test_a_client_assertion_signed_rs256_is_invalid_client(web, idp_services, citizen):
    rsa = FapiClient(idp_services, key=RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True),
                     alg="RS256")
    resp, _ = _push(web, rsa)
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"
    assert "PS256" in resp.get_json()["error_description"]


def test_tokens_must_be_sender_constrained(web, fapi, plain, citizen):
    code, verifier = _code(web, fapi)
    resp = _redeem(web, fapi, code, verifier)  # no DPoP proof, no client certificate
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert "sender-constrained" in resp.get_json()["error_description"]
    code, verifier = _code(web, plain)
    assert _redeem(web, plain, code, verifier).status_code == 200  # a bearer token for an ordinary client


def test_codes_live_at_most_60_seconds(app_with, idp_services, citizen):
    app = app_with(code_seconds=600)
    web = app.test_client()
    fapi, plain = FapiClient(idp_services), FapiClient(idp_services, profile=None)
    codes = app.extensions["yiwang"].provider.codes
    for client, low, high in ((fapi, 1, 60), (plain, 540, 600)):
        code, _ = _code(web, client)
        ttl = codes._r.ttl(codes._p + "c:" + codes.hash_of(code))
        assert low <= ttl <= high, (client is fapi, ttl)


# ------------------------------------------------------------------ the compliant flow


def test_the_compliant_flow_with_dpop_end_to_end(web, fapi, citizen):
    key = DPoPKey()
    code, verifier = _code(web, fapi)
    resp = _redeem(web, fapi, code, verifier, dpop=key)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["token_type"] == "DPoP" and _claims(body["access_token"])["cnf"] == {"jkt": key.jkt}  # noqa: S105
    assert _header(body["id_token"])["alg"] in ("PS256", "ES256", "EdDSA")
    proof = key.proof("GET", ISSUER + "/userinfo", access_token=body["access_token"])
    info = web.get("/userinfo", headers={"Authorization": f"DPoP {body['access_token']}", "DPoP": proof})
    assert info.status_code == 200 and info.get_json()["sub"]
    # The code was single use; a replay is refused.
    assert _redeem(web, fapi, code, verifier, dpop=key).get_json()["error"] == "invalid_grant"


def test_the_compliant_flow_with_mtls_end_to_end(idp_services, citizen, pkit, mtls_app):  # noqa: F811
    """private_key_jwt at PAR and token, tokens bound to the agency's TLS client certificate, through the proxy."""
    import requests
    from cryptography.hazmat.primitives import serialization

    from tests.support.tls_proxy import TlsProxy, serve_wsgi

    fapi = FapiClient(idp_services, tls_bound_tokens=True)
    web = mtls_app.test_client()
    with serve_wsgi(mtls_app) as (host, port), TlsProxy(
            (host, port), server_cert=pkit["server_cert"], server_key=pkit["server_key"],
            ca_files=[pkit["chain"]]) as proxy:
        verify = str(pkit["server_cert"])
        verifier, challenge = pkce_pair()
        pushed = requests.post(proxy.url + "/par", cert=pkit["a"].pair, verify=verify, timeout=10, data={
            "response_type": "code", "client_id": fapi.client_id, "redirect_uri": fapi.redirect_uri,
            "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
            **fapi.assertion()})
        assert pushed.status_code == 201, pushed.text
        query = _drive(web, {"client_id": fapi.client_id, "request_uri": pushed.json()["request_uri"]},
                       fapi.redirect_uri)
        assert query["iss"] == ISSUER
        resp = requests.post(proxy.url + "/token", cert=pkit["a"].pair, verify=verify, timeout=10, data={
            "grant_type": "authorization_code", "code": query["code"], "redirect_uri": fapi.redirect_uri,
            "code_verifier": verifier, **fapi.assertion()})
        assert resp.status_code == 200, resp.text
        der = pkit["a"].cert.public_bytes(serialization.Encoding.DER)
        x5t = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        assert _claims(resp.json()["access_token"])["cnf"] == {"x5t#S256": x5t}
        assert resp.json()["token_type"] == "Bearer"  # noqa: S105

