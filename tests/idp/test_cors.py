"""Browser apps (issue 21 §1): web origins, the CORS decision per client, refresh lifetimes.

The rule (idp.oauth.cors) is tested without HTTP; then through the whole
WSGI stack (idp.web.cors around the hot path and Flask): an origin is
named in an answer only for the client that registered it, a preflight for
an origin some client registered, never with credentials.
"""

from __future__ import annotations

import base64

import pytest

from idp.clients.uris import validate_web_origin
from idp.errors import InvalidInput
from idp.oauth.cors import (
    RegisteredOrigins,
    actual_headers,
    client_id_from,
    preflight_headers,
    token_from,
)
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange, make_rp

APP = "https://app.example.cn"
OTHER_APP = "https://other.example.cn"
STRANGER = "https://evil.example.com"


# ---------------------------------------------------------------- origins


@pytest.mark.parametrize(("given", "stored"), [
    ("https://app.example.cn", "https://app.example.cn"),
    ("https://APP.example.cn/", "https://app.example.cn"),
    ("https://app.example.cn:443", "https://app.example.cn"),
    ("https://app.example.cn:8443", "https://app.example.cn:8443"),
])
def test_web_origins_are_stored_as_browsers_serialise_them(given: str, stored: str) -> None:
    assert validate_web_origin(given) == stored


@pytest.mark.parametrize(("origin", "why"), [
    ("https://*.example.cn", "wildcard"),
    ("*", "wildcard"),
    ("https://app.example.cn/cb", "no path"),
    ("https://app.example.cn?x=1", "no path"),
    ("https://user@app.example.cn", "no path"),
    ("http://app.example.cn", "https only"),
    ("http://127.0.0.1:8080", "https only"),
    ("ftp://app.example.cn", "https only"),
    ("null", "no path"),
    ("", "wildcard"),
])
def test_web_origins_refused(origin: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        validate_web_origin(origin)


def test_http_loopback_origins_only_in_the_demo() -> None:
    assert validate_web_origin("http://127.0.0.1:5173", allow_loopback=True) == "http://127.0.0.1:5173"
    assert validate_web_origin("http://localhost:80", allow_loopback=True) == "http://localhost"
    with pytest.raises(InvalidInput):
        validate_web_origin("http://10.0.0.1:5173", allow_loopback=True)


def test_registration_keeps_the_origins_and_refuses_them_without_a_browser_grant(idp_services) -> None:
    from idp.clients import ClientSpec

    client, _ = idp_services.clients.add(ClientSpec(
        name="SPA", public=True, redirect_uris=["https://app.example.cn/cb"],
        web_origins=["https://app.example.cn/", "https://app.example.cn"]))
    assert client.attribute("web_origins") == ["https://app.example.cn"]
    with pytest.raises(InvalidInput, match="authorization_code"):
        idp_services.clients.add(ClientSpec(name="M", grant_types=["client_credentials"],
                                            web_origins=["https://app.example.cn"]))


# ---------------------------------------------------------------- the rule


class _Client:
    def __init__(self, *origins: str) -> None:
        self.attributes = {"web_origins": list(origins)}


def test_the_actual_request_names_only_its_own_clients_origin() -> None:
    client = _Client(APP)
    granted = dict(actual_headers(APP, client))
    assert granted["Access-Control-Allow-Origin"] == APP and granted["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in granted
    for origin, who in ((OTHER_APP, client), (STRANGER, client), (APP, None), (APP, _Client())):
        assert actual_headers(origin, who) == [("Vary", "Origin")]


def test_a_preflight_is_answered_for_any_registered_origin_on_the_browser_endpoints() -> None:
    registered = frozenset({APP, OTHER_APP})
    answer = dict(preflight_headers("/token", OTHER_APP, registered))
    assert answer["Access-Control-Allow-Origin"] == OTHER_APP
    assert answer["Access-Control-Allow-Methods"] == "POST"
    assert answer["Access-Control-Allow-Headers"] == "Authorization, Content-Type, DPoP"
    assert int(answer["Access-Control-Max-Age"]) > 0 and answer["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in answer
    assert dict(preflight_headers("/userinfo", APP, registered))["Access-Control-Allow-Methods"] == "GET, POST"
    assert preflight_headers("/token", STRANGER, registered) == [("Vary", "Origin")]
    assert preflight_headers("/introspect", APP, registered) == [("Vary", "Origin")]


def test_the_client_and_token_a_request_names() -> None:
    basic = "Basic " + base64.b64encode(b"spa%2Dx:secret").decode()
    assert client_id_from(b"grant_type=refresh_token&client_id=spa-1", None) == "spa-1"
    assert client_id_from(b"", basic) == "spa-x"
    assert client_id_from(b"\xff", None) is None and client_id_from(b"", "Basic !!") is None
    assert token_from("Bearer abc", b"") == "abc" and token_from("DPoP abc", b"") == "abc"
    assert token_from(None, b"access_token=xyz") == "xyz" and token_from("Basic abc", b"") is None


def test_the_registered_origins_are_reloaded_after_their_ttl_or_when_forgotten() -> None:
    now = [0.0]
    loads: list[int] = []
    current = {APP}

    def load():
        loads.append(1)
        return set(current)

    cache = RegisteredOrigins(load, ttl=5, clock=lambda: now[0])
    assert cache.get() == {APP} and cache.get() == {APP} and len(loads) == 1
    current.add(OTHER_APP)
    now[0] = 4.9
    assert cache.get() == {APP}
    now[0] = 5.1
    assert cache.get() == {APP, OTHER_APP} and len(loads) == 2
    current.clear()
    cache.forget()
    assert cache.get() == frozenset()


# ---------------------------------------------------------------- over HTTP


@pytest.fixture
def spa(idp_services):
    return make_rp(idp_services, name="SPA", public=True, grant_types=("authorization_code", "refresh_token"),
                   redirect_uri="https://app.example.cn/cb", web_origins=[APP])


@pytest.fixture
def other_spa(idp_services):
    return make_rp(idp_services, name="Other SPA", public=True, grant_types=("authorization_code", "refresh_token"),
                   redirect_uri="https://other.example.cn/cb", web_origins=[OTHER_APP])


def _preflight(web, path, origin, method="POST"):
    return web.open(path, method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, dpop"})


def test_preflights_over_http(web, spa, other_spa) -> None:
    for path in ("/token", "/revoke", "/par", "/userinfo"):
        ok = _preflight(web, path, OTHER_APP)
        assert ok.status_code == 204 and ok.headers["Access-Control-Allow-Origin"] == OTHER_APP, path
        assert "DPoP" in ok.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in ok.headers
        refused = _preflight(web, path, STRANGER)
        assert "Access-Control-Allow-Origin" not in refused.headers and refused.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in _preflight(web, "/introspect", APP).headers


def test_token_and_userinfo_name_the_origin_of_their_own_client_only(web, citizen, spa, other_spa) -> None:
    q, verifier = authorize_code(web, spa)
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": spa.redirect_uri,
            "code_verifier": verifier, "client_id": spa.client_id}
    # Another client's origin: the answer is the same, but the browser may not read it.
    wrong = web.post("/token", data={**data, "code": "not-a-code"}, headers={"Origin": OTHER_APP})
    assert wrong.status_code == 400 and "Access-Control-Allow-Origin" not in wrong.headers
    tokens = web.post("/token", data=data, headers={"Origin": APP})
    assert tokens.status_code == 200, tokens.data
    assert tokens.headers["Access-Control-Allow-Origin"] == APP and tokens.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in tokens.headers
    access = tokens.get_json()["access_token"]
    bearer = {"Authorization": "Bearer " + access}
    mine = web.get("/userinfo", headers={**bearer, "Origin": APP})
    assert mine.status_code == 200 and mine.headers["Access-Control-Allow-Origin"] == APP
    for origin in (OTHER_APP, STRANGER):
        theirs = web.get("/userinfo", headers={**bearer, "Origin": origin})
        assert "Access-Control-Allow-Origin" not in theirs.headers
    # No Origin header: exactly the answer there was before (no CORS headers at all).
    plain = web.get("/userinfo", headers=bearer)
    assert plain.status_code == 200 and "Vary" not in plain.headers
    # Revocation authenticates the client (a public one is refused: it ends its tokens through
    # end_session), but the app may read that answer, as any error of its own endpoints.
    revoked = web.post("/revoke", data={"token": access, "client_id": spa.client_id}, headers={"Origin": APP})
    assert revoked.status_code == 401 and revoked.headers["Access-Control-Allow-Origin"] == APP
    pushed = web.post("/par", data={"client_id": spa.client_id, "response_type": "code"}, headers={"Origin": APP})
    assert pushed.status_code in (400, 401) and pushed.headers["Access-Control-Allow-Origin"] == APP


def test_discovery_and_jwks_stay_public(web) -> None:
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        assert web.get(path, headers={"Origin": STRANGER}).headers["Access-Control-Allow-Origin"] == "*"


def test_the_authorize_endpoint_cannot_be_framed(web, spa) -> None:
    # Silent renew runs on the refresh token, not prompt=none in a hidden iframe
    # (docs/rp-integration.md, "Single-page browser apps"): the idp stays unframeable.
    resp = web.get("/authorize", query_string={"client_id": spa.client_id, "response_type": "code",
                                               "redirect_uri": spa.redirect_uri, "prompt": "none",
                                               "scope": "openid", "code_challenge": "x" * 43,
                                               "code_challenge_method": "S256"})
    assert resp.status_code in (302, 303)
    assert resp.headers.get("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in resp.headers.get("Content-Security-Policy", "")


# ---------------------------------------------------------------- refresh lifetimes


def test_refresh_lifetimes_idle_and_absolute(app, web, idp_services, citizen) -> None:
    rp = make_rp(idp_services, name="SPA", public=True, grant_types=("authorization_code", "refresh_token"),
                 redirect_uri="https://app.example.cn/cb", web_origins=[APP],
                 refresh_idle_seconds=60, refresh_absolute_seconds=120)
    tokens = app.extensions["yiwang"].provider.tokens
    real = tokens._clock
    shift = [0]
    tokens._clock = lambda: real() + shift[0]

    def refresh(token):
        return web.post("/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                        "client_id": rp.client_id})

    try:
        q, v = authorize_code(web, rp)
        first = exchange(web, rp, q["code"], v).get_json()["refresh_token"]
        shift[0] = 50
        second = refresh(first)
        assert second.status_code == 200, second.data
        shift[0] = 100  # 50 s idle, 100 s since the family began
        third = refresh(second.get_json()["refresh_token"])
        assert third.status_code == 200, third.data
        shift[0] = 125  # 25 s idle, but past the absolute lifetime
        late = refresh(third.get_json()["refresh_token"])
        assert late.get_json()["error"] == "invalid_grant"
        # The family is revoked: the last access token is no longer active.
        intro = web.post("/introspect", data={"token": third.get_json()["refresh_token"],
                                              "client_id": rp.client_id})
        assert intro.get_json().get("active") in (False, None)

        shift[0] = 0
        q, v = authorize_code(web, rp)
        idle = exchange(web, rp, q["code"], v).get_json()["refresh_token"]
        shift[0] = 61
        assert refresh(idle).get_json()["error"] == "invalid_grant"
    finally:
        tokens._clock = real


@pytest.mark.parametrize(("idle", "absolute", "why"), [
    (30, None, "60"), (None, 10**9, "400 days"), (600, 300, "cannot exceed"), (True, None, "seconds"),
])
def test_refresh_lifetimes_are_checked_at_registration(idp_services, idle, absolute, why) -> None:
    with pytest.raises(InvalidInput, match=why):
        make_rp(idp_services, public=True, grant_types=("authorization_code", "refresh_token"),
                refresh_idle_seconds=idle, refresh_absolute_seconds=absolute)


def test_a_failing_origin_load_keeps_the_last_set_and_retries_after_the_ttl() -> None:
    now = [0.0]
    answers: list = [{APP}, RuntimeError("database away"), {OTHER_APP}]

    def load():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = RegisteredOrigins(load, ttl=5, clock=lambda: now[0])
    assert cache.get() == {APP}
    now[0] = 6
    assert cache.get() == {APP}  # the failure is logged, the old set kept
    now[0] = 7
    assert cache.get() == {APP} and len(answers) == 1  # not retried before the ttl
    now[0] = 12
    assert cache.get() == {OTHER_APP}
