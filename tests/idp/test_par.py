"""Pushed authorization requests (RFC 9126)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    csrf_of,
    exchange,
    is_login_page,
    login,
    make_rp,
    pkce_pair,
    query_of,
)


def _push(web, rp, **extra):
    verifier, challenge = pkce_pair()
    data = {"response_type": "code", "redirect_uri": rp.redirect_uri, "scope": "openid profile",
            "state": "par-state", "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return web.post("/par", data=data, headers=rp.basic()), verifier


def test_push_then_authorize_with_request_uri(web, citizen, rp):
    resp, verifier = _push(web, rp)
    assert resp.status_code == 201, resp.data
    body = resp.get_json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and body["expires_in"] > 0
    r = web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": body["request_uri"]})
    r = login(web, r)  # the login form, then straight to the consent page
    assert urlsplit(r.headers["Location"]).path == "/consent"
    page = web.get(r.headers["Location"])
    r = web.post(r.headers["Location"], data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
    r = web.get(r.headers["Location"])
    q = query_of(r.headers["Location"])
    assert q["state"] == "par-state"
    assert exchange(web, rp, q["code"], verifier).status_code == 200


def test_request_uri_is_single_use(web, rp):
    resp, _ = _push(web, rp)
    uri = resp.get_json()["request_uri"]
    first = web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": uri})
    assert is_login_page(first)
    second = web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": uri})
    assert second.status_code == 400 and "Location" not in second.headers


def test_request_uri_of_another_client_refused(web, idp_services, rp):
    other = make_rp(idp_services, name="O", redirect_uri="https://o.example.cn/cb")
    uri = _push(web, rp)[0].get_json()["request_uri"]
    resp = web.get("/authorize", query_string={"client_id": other.client_id, "request_uri": uri})
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_par_requires_client_auth_and_valid_request(web, rp):
    assert web.post("/par", data={"response_type": "code", "redirect_uri": rp.redirect_uri}).status_code == 401
    bad_uri, _ = _push(web, rp, redirect_uri="https://evil.example/cb")
    assert bad_uri.status_code == 400 and bad_uri.get_json()["error"] == "invalid_request"
    nested, _ = _push(web, rp, request_uri="urn:ietf:params:oauth:request_uri:x")
    assert nested.get_json()["error"] == "invalid_request"
    plain, _ = _push(web, rp, code_challenge_method="plain")
    assert plain.get_json()["error"] == "invalid_request"


def test_require_par_setting(idp_settings, idp_services, rp):
    from idp.web import create_app

    app = create_app(idp_settings.with_(require_par=True), services=idp_services)
    try:
        web = app.test_client()
        assert web.get("/.well-known/openid-configuration").get_json()["require_pushed_authorization_requests"] is True
        direct = web.get("/authorize", query_string={"response_type": "code", "client_id": rp.client_id,
                                                     "redirect_uri": rp.redirect_uri, "scope": "openid"})
        assert direct.status_code == 400 and "Location" not in direct.headers
        pushed, _ = _push(web, rp)
        r = web.get("/authorize", query_string={"client_id": rp.client_id,
                                                "request_uri": pushed.get_json()["request_uri"]})
        assert is_login_page(r)
    finally:
        if app.extensions["yiwang"].logout is not None:
            app.extensions["yiwang"].logout.close()
