"""RP-initiated logout (RP-Initiated Logout 1.0) and front-channel logout pages."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keys.backend import b64url
from keys.jws import encode_jws
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ISSUER,
    authorize_code,
    csrf_of,
    exchange,
    make_rp,
    pkce_pair,
    query_of,
)

POST_LOGOUT = "https://portal.example.cn/bye?from=idp"


@pytest.fixture
def portal(idp_services, citizen):
    return make_rp(
        idp_services,
        post_logout_redirect_uris=[POST_LOGOUT],
        frontchannel_logout_uri="https://portal.example.cn/fc-logout",
    )


def _signed_in(web, portal):
    query, verifier = authorize_code(web, portal)
    tokens = exchange(web, portal, query["code"], verifier).get_json()
    return tokens["id_token"]


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _prompt_none(web, rp) -> dict:
    _verifier, challenge = pkce_pair()
    resp = web.get(
        "/authorize",
        query_string={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid", "state": "s", "prompt": "none", "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert resp.status_code in (302, 303)
    return query_of(resp.headers["Location"])


def _session_alive(web, rp) -> bool:
    return "code" in _prompt_none(web, rp)


def test_discovery_names_the_end_session_endpoint(web):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["end_session_endpoint"] == f"{ISSUER}/logout"
    assert doc["backchannel_logout_supported"] and doc["frontchannel_logout_session_supported"]


def test_logout_with_id_token_hint_ends_session_and_returns_state(web, portal, app):
    id_token = _signed_in(web, portal)
    sid = _claims(id_token)["sid"]
    resp = web.get("/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": POST_LOGOUT, "state": "xyz",
    })
    # The client registered a front-channel URI: the logged-out page loads it, then continues.
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert f"https://portal.example.cn/fc-logout?iss={ISSUER.replace(':', '%3A').replace('/', '%2F')}&amp;sid={sid}" in page
    assert 'data-continue="https://portal.example.cn/bye?from=idp&amp;state=xyz"' in page
    assert "<script>" not in page and "logout_frontchannel.js" in page
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-src https://portal.example.cn" in csp and "script-src 'self'" in csp
    assert app.extensions["yiwang"].sessions.get(sid) is None
    assert _prompt_none(web, portal)["error"] == "login_required"


def test_logout_without_front_channel_redirects_with_state(web, idp_services, citizen):
    rp = make_rp(idp_services, post_logout_redirect_uris=[POST_LOGOUT])
    id_token = _signed_in(web, rp)
    resp = web.get("/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": POST_LOGOUT, "state": "s1", "client_id": rp.client_id,
    })
    assert resp.status_code == 303
    assert resp.headers["Location"] == POST_LOGOUT + "&state=s1"
    assert _prompt_none(web, rp)["error"] == "login_required"


@pytest.mark.parametrize("uri", [
    "https://portal.example.cn/bye?from=evil",  # changed query
    "https://portal.example.cn/bye",  # query dropped
    "https://evil.example/bye?from=idp",
])
def test_unregistered_post_logout_redirect_is_refused_and_nothing_ends(web, portal, uri):
    id_token = _signed_in(web, portal)
    resp = web.get("/logout", query_string={"id_token_hint": id_token, "post_logout_redirect_uri": uri})
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert 'id="logout-error"' in resp.get_data(as_text=True)
    assert _session_alive(web, portal)


def _none_alg(claims: dict) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


class _ForeignSigner:
    """An ES256 key that is not ours."""

    algorithm = "ES256"

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self._key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize("kind", ["alg_none", "foreign", "foreign_same_kid", "tampered", "garbage"])
def test_bad_id_token_hint_is_refused_and_changes_nothing(web, portal, app, kind):
    id_token = _signed_in(web, portal)
    claims = _claims(id_token)
    if kind == "alg_none":
        hint = _none_alg(claims)
    elif kind == "foreign":
        hint = encode_jws(_ForeignSigner("foreign-kid"), claims)
    elif kind == "foreign_same_kid":
        our_kid = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))["kid"]
        hint = encode_jws(_ForeignSigner(our_kid), claims)
    elif kind == "tampered":
        head, _payload, sig = id_token.split(".")
        hint = ".".join([head, b64url(json.dumps({**claims, "sid": "other"}).encode()), sig])
    else:
        hint = "not.a.jwt"
    resp = web.get("/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT})
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert app.extensions["yiwang"].sessions.get(claims["sid"], touch=False) is not None
    assert _session_alive(web, portal)


def test_expired_id_token_hint_of_ours_is_accepted(web, portal, app):
    id_token = _signed_in(web, portal)
    claims = _claims(id_token)
    signer = app.extensions["yiwang"].provider.tokens._signer("ES256")
    expired = encode_jws(signer, {**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600})
    resp = web.get("/logout", query_string={"id_token_hint": expired, "post_logout_redirect_uri": POST_LOGOUT})
    assert resp.status_code == 200  # the logged-out page (front-channel), not an error
    assert app.extensions["yiwang"].sessions.get(claims["sid"], touch=False) is None


def test_without_hint_the_citizen_confirms_on_a_csrf_protected_form(web, portal, app):
    id_token = _signed_in(web, portal)
    sid = _claims(id_token)["sid"]
    page = web.get("/logout", query_string={"client_id": portal.client_id, "post_logout_redirect_uri": POST_LOGOUT,
                                            "state": "st"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="confirm-logout"' in html
    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is not None  # not yet
    # A forged form (no CSRF token) ends nothing.
    forged = web.post("/logout", data={"decision": "logout", "client_id": portal.client_id})
    assert forged.status_code == 400
    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is not None
    # Tampering with the hidden redirect is caught again on the POST.
    evil = web.post("/logout", data={"csrf_token": csrf_of(html), "decision": "logout", "client_id": portal.client_id,
                                     "post_logout_redirect_uri": "https://evil.example/"})
    assert evil.status_code == 400 and "Location" not in evil.headers
    done = web.post("/logout", data={"csrf_token": csrf_of(html), "decision": "logout", "client_id": portal.client_id,
                                     "post_logout_redirect_uri": POST_LOGOUT, "state": "st"})
    assert done.status_code == 200
    assert 'data-continue="https://portal.example.cn/bye?from=idp&amp;state=st"' in done.get_data(as_text=True)
    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is None


def test_choosing_to_stay_keeps_the_session(web, portal):
    _signed_in(web, portal)
    html = web.get("/logout").get_data(as_text=True)
    resp = web.post("/logout", data={"csrf_token": csrf_of(html), "decision": "stay"})
    assert resp.status_code == 200
    assert _session_alive(web, portal)


def test_hint_for_another_session_asks_instead_of_ending(web, portal, app, idp_services):
    old = _signed_in(web, portal)
    old_sid = _claims(old)["sid"]
    app.extensions["yiwang"].sessions.end(old_sid, "admin")
    new = _signed_in(web, portal)  # signs in again: a new session
    new_sid = _claims(new)["sid"]
    assert new_sid != old_sid
    resp = web.get("/logout", query_string={"id_token_hint": old})
    assert resp.status_code == 200 and 'id="confirm-logout"' in resp.get_data(as_text=True)
    assert app.extensions["yiwang"].sessions.get(new_sid, touch=False) is not None


def test_unknown_sid_ends_nothing_and_shows_a_neutral_page(web, portal, app, idp_services):
    old = _signed_in(web, portal)
    app.extensions["yiwang"].sessions.end(_claims(old)["sid"], "admin")
    current = _signed_in(web, portal)  # another live session of the same citizen
    other = app.test_client()  # a browser with no SSO cookie
    resp = other.get("/logout", query_string={"id_token_hint": old})
    assert resp.status_code == 200
    assert 'id="logout-message"' in resp.get_data(as_text=True)
    assert "iframe" not in resp.get_data(as_text=True)
    assert app.extensions["yiwang"].sessions.get(_claims(current)["sid"], touch=False) is not None


def test_cross_site_post_without_cookie_ends_the_hinted_session(web, portal, app):
    id_token = _signed_in(web, portal)
    sid = _claims(id_token)["sid"]
    rp_backend = app.test_client()  # SameSite=Lax: a cross-site POST carries no SSO cookie
    resp = rp_backend.post("/logout", data={"id_token_hint": id_token, "post_logout_redirect_uri": POST_LOGOUT})
    assert resp.status_code == 200 and "fc-logout" in resp.get_data(as_text=True)
    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is None
    assert _prompt_none(web, portal)["error"] == "login_required"


def test_worker_start_hook_leaves_the_request_path_after_the_first_request(app, web):
    from idp.web.logout import _start_inprocess_worker

    assert _start_inprocess_worker in app.before_request_funcs[None]
    web.get("/.well-known/openid-configuration")
    assert _start_inprocess_worker not in app.before_request_funcs[None]
    runtime = app.extensions["yiwang"]
    # Embedded default (no Redis server configured): the in-process worker runs.
    assert (runtime.logout.queue._worker is not None) == (not runtime.settings.common.redis_url)


def test_ui_locales_chooses_the_language(web, portal):
    _signed_in(web, portal)
    english = web.get("/logout", query_string={"ui_locales": "en", "client_id": portal.client_id})
    assert "Sign out of Yiwang?" in english.get_data(as_text=True)
    assert 'lang="en"' in english.get_data(as_text=True)
    chinese = web.get("/logout", query_string={"ui_locales": "zh-CN"})
    assert "是否退出统一身份认证" in chinese.get_data(as_text=True)


def test_account_page_sign_out_runs_front_channel_logout(web, portal, app):
    id_token = _signed_in(web, portal)
    sid = _claims(id_token)["sid"]
    page = web.get("/account").get_data(as_text=True)
    resp = web.post(f"/account/sessions/{sid}/end", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "https://portal.example.cn/fc-logout?iss=" in html and f"sid={sid}" in html
    assert 'data-continue="/login"' in html
    assert "frame-src https://portal.example.cn" in resp.headers["Content-Security-Policy"]
    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is None


def test_sign_out_everywhere_without_front_channel_clients_redirects(web, idp_services, citizen, app):
    rp = make_rp(idp_services)  # no front-channel URI
    id_token = _signed_in(web, rp)
    page = web.get("/account").get_data(as_text=True)
    resp = web.post("/account/sign-out-everywhere", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/login")
    assert app.extensions["yiwang"].sessions.get(_claims(id_token)["sid"], touch=False) is None
