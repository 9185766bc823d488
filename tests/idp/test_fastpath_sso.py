"""The silent SSO sign-in without Flask (idp.web.hotpaths, issue 16): the Flask view's answers, decided once."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from idp.signin import Browser
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, is_login_page, pkce_pair, query_of


@pytest.fixture
def authorize_view(app: Any) -> list[str]:
    """Which requests reached the Flask view of ``/authorize``: ``fresh`` (it decided) or ``decided`` (the hot path had)."""
    from idp.web.hotpaths import DECIDED_KEY

    seen: list[str] = []
    original = app.view_functions["oauth.authorize"]

    def tripwire(*a: Any, **kw: Any) -> Any:
        from flask import request

        seen.append("decided" if DECIDED_KEY in request.environ else "fresh")
        return original(*a, **kw)

    app.view_functions["oauth.authorize"] = tripwire
    return seen


def _params(rp: Any, **extra: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile", "state": "st-2", "nonce": "n-2", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}


def _flask_only(app: Any, web: Any, params: dict[str, str]) -> Any:
    """The same request answered by Flask alone (the class's wsgi_app, below every middleware)."""
    from werkzeug.test import EnvironBuilder

    cookie = "; ".join(f"{c.key}={c.value}" for c in web._cookies.values())
    env = EnvironBuilder(path="/authorize", query_string=params, headers={"Cookie": cookie},
                         base_url="http://127.0.0.1:5000").get_environ()
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, headers

    body = b"".join(Flask.wsgi_app(app, env, start_response))
    return seen["status"], seen["headers"], body


def test_the_silent_code_redirect_skips_flask_and_matches_its_answer(app, web, citizen, rp, authorize_view):
    authorize_code(web, rp)  # signed in, consent given
    authorize_view.clear()
    params = _params(rp)
    hot = web.get("/authorize", query_string=params)
    assert hot.status_code == 302 and authorize_view == []
    q = query_of(hot.headers["Location"])
    assert q["state"] == "st-2" and q["code"]
    status, headers, body = _flask_only(app, web, params)
    assert authorize_view == ["fresh"]
    assert status == hot.status and body == hot.data == b""

    def comparable(items: Any) -> list[tuple[str, str]]:
        out = []
        for k, v in items:
            if k == "Location":
                v = v.split("?", 1)[0] + "?" + "&".join(sorted(p.split("=", 1)[0] for p in v.split("?", 1)[1].split("&")))
            out.append((k, v))
        return sorted(out)

    # X-Request-Id: the request log around both (keys.logs.RequestLog), outside Flask
    assert comparable((k, v) for k, v in hot.headers.items() if k != "X-Request-Id") == comparable(headers)


def test_the_code_from_the_hot_path_is_exchanged_as_before(web, citizen, rp, authorize_view):
    from tests.idp.oidc_helpers import exchange

    authorize_code(web, rp)
    verifier, challenge = pkce_pair()
    hot = web.get("/authorize", query_string={**_params(rp), "code_challenge": challenge})
    tokens = exchange(web, rp, query_of(hot.headers["Location"])["code"], verifier)
    assert tokens.status_code == 200 and tokens.get_json()["id_token"]
    assert authorize_view == ["fresh"]  # only the first sign-in's (no session yet)


def test_other_outcomes_are_decided_once_and_answered_by_the_view(app, web, citizen, rp, authorize_view):
    authorize_code(web, rp)
    authorize_view.clear()
    runtime = app.extensions["yiwang"]
    decided: list[Any] = []
    original = runtime.signin.authorize

    def counted(*a: Any, **kw: Any) -> Any:
        decided.append(1)
        return original(*a, **kw)

    runtime.signin.authorize = counted
    try:
        # prompt=login: the login page, from the hot path's decision
        page = web.get("/authorize", query_string=_params(rp, prompt="login"))
        assert is_login_page(page)
        # an unknown client: the fixed error page
        bad = web.get("/authorize", query_string=_params(rp, client_id="nobody"))
        assert bad.status_code == 400 and "text/html" in bad.headers["Content-Type"]
        # an OAuth error at the redirect URI (RFC 9207 iss included)
        err = web.get("/authorize", query_string=_params(rp, response_mode="fragment"))
        assert err.status_code == 302 and query_of(err.headers["Location"])["error"] == "invalid_request"
        assert "iss" in query_of(err.headers["Location"])
    finally:
        del runtime.signin.authorize
    assert authorize_view == ["decided", "decided", "decided"]
    assert len(decided) == 3  # the sign-in ran once for each, not again in the view


def test_requests_the_hot_path_leaves_alone_get_flasks_own_answer(web, citizen, rp, authorize_view):
    authorize_code(web, rp)
    authorize_view.clear()
    # a repeated parameter, a NUL, an overlong value: Flask's checks answer
    twice = web.get("/authorize?" + "&".join(f"{k}={v}" for k, v in _params(rp).items()) + "&scope=openid")
    assert twice.status_code == 400
    nul = web.get("/authorize", query_string=_params(rp, state="a\x00b"))
    assert nul.status_code == 400
    long = web.get("/authorize", query_string=_params(rp, state="x" * 3000))
    assert long.status_code == 400
    # a language switch: the view sets its cookie
    switched = web.get("/authorize", query_string=_params(rp, lang="en"))
    assert switched.status_code == 302 and "yw_lang" in switched.headers.get("Set-Cookie", "")
    # the repeated one and the switch reached the view; the others stopped at Flask's input check
    assert authorize_view == ["fresh", "fresh"]
    # no session cookie: Flask alone
    web._cookies.clear()
    assert is_login_page(web.get("/authorize", query_string=_params(rp)))
    assert authorize_view == ["fresh", "fresh", "fresh"]


def test_an_outage_in_the_hot_path_is_the_views_503_page(app, web, citizen, rp, monkeypatch, authorize_view):
    import redis

    authorize_code(web, rp)
    authorize_view.clear()

    def down(*a: Any, **kw: Any) -> Any:
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(app.extensions["yiwang"].sessions, "get_by_cookie", down)
    r = web.get("/authorize", query_string=_params(rp))
    assert r.status_code == 503 and "text/html" in r.headers["Content-Type"]
    assert authorize_view == ["decided"]


def test_browser_of_cookie_is_the_views_browser(app):
    from idp.web.common import BROWSER_COOKIE, browser

    for value in (None, "short", "b" * 30, "c" * 70):
        header = {} if value is None else {"Cookie": f"{BROWSER_COOKIE}={value}"}
        with app.test_request_context("/authorize", headers=header):
            viewed = browser()
        mine = Browser.of_cookie(value)
        if value is not None and 20 <= len(value) <= 64:
            assert mine == viewed
        else:  # a new random value each time: both make one, of the same kind
            assert mine.new_cookie and viewed.new_cookie and len(mine.new_cookie) == len(viewed.new_cookie)


def test_the_grant_validates_once_and_only_the_scope_again(app, web, citizen, rp, monkeypatch):
    from authlib.oauth2.rfc6749 import OAuth2Error
    from authlib.oauth2.rfc6749.grants import authorization_code as authlib_code

    from idp.web.oauth_server import ParamsRequest

    full: list[int] = []
    original = authlib_code.validate_code_authorization_request

    def counted(grant: Any) -> Any:
        full.append(1)
        return original(grant)

    monkeypatch.setattr(authlib_code, "validate_code_authorization_request", counted)
    authorize_code(web, rp)
    full.clear()
    assert web.get("/authorize", query_string=_params(rp)).status_code == 302
    assert full == [1]  # the consent decision's; the code's issue re-ran only the scope's checks

    server = app.extensions["yiwang"].server
    params = _params(rp, scope="openid profile no-such-scope")
    grant = server.get_consent_grant(ParamsRequest("GET", dict(params)), end_user=None)
    assert grant.request.scope == "openid profile" and full == [1, 1]
    grant.request.payload.data["scope"] = "openid"  # the sign-in's cut
    assert grant.validate_authorization_request() == rp.redirect_uri
    assert grant.request.scope == "openid" and full == [1, 1]
    grant.request.payload.data["redirect_uri"] = "https://evil.example/cb"  # anything else: all checks again
    with pytest.raises(OAuth2Error):
        grant.validate_authorization_request()
    assert full == [1, 1, 1]
