"""The idp's protocol edges: malformed client credentials, redirect matching, revocation,
client assertions, unsupported authorization parameters, error pages, logout URIs.

Issue 11 findings 5, 8, 10, 11 and issue 19 findings 5, 6, 7, 10.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

import pytest

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import make_rp, pkce_pair

# ------------------------------------------------------------ fixtures / helpers


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records of errors logged as unexpected (a traceback in the log)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


_ENDPOINTS = [
    ("/token", {"grant_type": "client_credentials"}),
    ("/introspect", {"token": "x"}),
    ("/revoke", {"token": "x"}),
    ("/par", {"response_type": "code", "redirect_uri": "https://portal.example.cn/cb"}),
    ("/device_authorization", {"scope": "openid"}),
    ("/device/authorize", {"scope": "openid"}),
]

_MALFORMED = {
    "not-utf8": "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "not-utf8-id": "Basic " + base64.b64encode(b"client\xc3:secret").decode(),
    "bad-base64": "Basic !!!not base64!!!",
    "bad-padding": "Basic YWJj",
    "no-colon": "Basic " + base64.b64encode(b"justaclientid").decode(),
    "empty-secret": "Basic " + base64.b64encode(b"client:").decode(),
    "bad-percent": "Basic " + base64.b64encode(b"%ff%fe:x").decode(),
    "non-ascii-header": "Basic \u00e9\u00e9\u00e9\u00e9",
    "huge": "Basic " + "A" * 6000,
}


# ------------------------------------------------ 11.5: malformed Basic credentials


@pytest.mark.parametrize("hot", [True, False], ids=["hot-path", "flask"])
@pytest.mark.parametrize("path,data", _ENDPOINTS, ids=[p for p, _ in _ENDPOINTS])
@pytest.mark.parametrize("kind", list(_MALFORMED))
def test_malformed_basic_credentials_are_invalid_client(web, rp, caplog, hot, path, data, kind):
    # A query string sends even the hot endpoints through Flask.
    resp = web.post(path, data=data, headers={"Authorization": _MALFORMED[kind]},
                    query_string=None if hot else "x=1")
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert "Traceback" not in resp.get_data(as_text=True)
    assert _unhandled(caplog) == []


@pytest.mark.parametrize("hot", [True, False], ids=["hot-path", "flask"])
def test_basic_credentials_are_form_urlencoded(web, idp_services, hot):
    # RFC 6749 §2.3.1: client id and secret are form-urlencoded, then put in Basic.
    rp = make_rp(idp_services, client_id="agency.a~b")
    raw = f"{quote(rp.client_id, safe='')}:{quote(rp.secret, safe='')}".encode()
    resp = web.post("/token", data={"grant_type": "client_credentials"},
                    headers=_basic(raw), query_string=None if hot else "x=1")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    wrong = web.post("/token", data={"grant_type": "client_credentials"},
                     headers=_basic(f"{rp.client_id}:{rp.secret}x".encode()))
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"


def test_unknown_client_and_wrong_secret_answer_alike(web, rp):
    unknown = web.post("/token", data={"grant_type": "client_credentials"}, headers=_basic(b"nobody:secret"))
    wrong = web.post("/token", data={"grant_type": "client_credentials"},
                     headers=_basic(f"{rp.client_id}:wrong".encode()))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()


# ------------------------------------------- 11.10: revoking another client's token


def _cc_token(web, rp) -> str:
    resp = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["access_token"]


def _active(web, rp, token: str) -> bool:
    resp = web.post("/introspect", data={"token": token}, headers=rp.basic())
    assert resp.status_code == 200
    return bool(resp.get_json()["active"])


def test_revoking_another_clients_access_token_is_a_silent_no_op(web, idp_services):
    owner, other = make_rp(idp_services, name="A"), make_rp(idp_services, name="B")
    token = _cc_token(web, owner)
    for hint in (None, "access_token"):
        data = {"token": token, **({"token_type_hint": hint} if hint else {})}
        resp = web.post("/revoke", data=data, headers=other.basic())
        # RFC 7009 §2.2: the same answer as for an unknown token, which says nothing.
        unknown = web.post("/revoke", data={**data, "token": "not-a-token"}, headers=other.basic())
        assert resp.status_code == unknown.status_code == 200
        assert resp.get_data() == unknown.get_data()
    assert _active(web, owner, token)  # and the token was left alone
    assert web.post("/revoke", data={"token": token}, headers=owner.basic()).status_code == 200
    assert not _active(web, owner, token)


def test_revoking_another_clients_refresh_token_is_a_silent_no_op(web, idp_services, citizen):
    from tests.idp.oidc_helpers import authorize_code, exchange

    owner, other = make_rp(idp_services, name="A"), make_rp(idp_services, name="B")
    q, verifier = authorize_code(web, owner, scope="openid offline_access")
    tokens = exchange(web, owner, q["code"], verifier).get_json()
    refresh = tokens["refresh_token"]
    resp = web.post("/revoke", data={"token": refresh, "token_type_hint": "refresh_token"}, headers=other.basic())
    assert resp.status_code == 200 and resp.get_json() == {}
    assert _active(web, owner, refresh) and _active(web, owner, tokens["access_token"])


# ------------------------------- 11.8: loopback port wildcard for native apps only


def test_loopback_redirect_port_is_exact_for_a_confidential_client(idp_services):
    rp = make_rp(idp_services, redirect_uri="http://127.0.0.1:5201/callback")
    client = idp_services.clients.get(rp.client_id)
    assert client.check_redirect_uri("http://127.0.0.1:5201/callback")
    for other in ("http://127.0.0.1:9999/callback", "http://127.0.0.1/callback"):
        assert not client.check_redirect_uri(other)


def test_loopback_redirect_port_may_vary_for_a_native_app(idp_services):
    rp = make_rp(idp_services, name="App", public=True, grant_types=("authorization_code",),
                 redirect_uri="http://127.0.0.1/callback")
    client = idp_services.clients.get(rp.client_id)
    assert client.check_redirect_uri("http://127.0.0.1:53011/callback")  # RFC 8252 §7.3
    assert not client.check_redirect_uri("http://127.0.0.1:53011/other")
    assert not client.check_redirect_uri("http://localhost:53011/callback")


def test_authorize_refuses_another_loopback_port_for_a_web_client(web, idp_services):
    rp = make_rp(idp_services, redirect_uri="http://127.0.0.1:5201/callback")
    _v, challenge = pkce_pair()
    resp = web.get("/authorize", query_string={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": "http://127.0.0.1:9999/callback",
        "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert resp.status_code == 400 and "Location" not in resp.headers
