"""The Flask-free hot endpoints (idp.web.hotpaths): same answers, and Flask for anything unusual."""

from __future__ import annotations

import base64

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def test_token_introspection_userinfo_skip_flask(web, citizen, rp, flask_reached):
    q, v = authorize_code(web, rp, scope="openid profile")
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 200, resp.data
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    tokens = resp.get_json()
    at = tokens["access_token"]
    info = web.get("/userinfo", headers={"Authorization": "Bearer " + at})
    assert info.status_code == 200 and info.get_json()["name"] == "张三"
    assert info.headers["Cache-Control"] == "no-store"
    posted = web.post("/userinfo", data={"access_token": at})
    assert posted.get_json() == info.get_json()
    intro = web.post("/introspect", data={"token": at}, headers=rp.basic())
    assert intro.status_code == 200 and intro.get_json()["active"] is True
    cc = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert cc.status_code == 200 and cc.get_json()["token_type"] == "Bearer"  # noqa: S105
    assert flask_reached == []


def test_errors_on_the_hot_path_are_the_rfc_ones(web, rp, flask_reached):
    bad = web.post("/token", data={"grant_type": "client_credentials"},
                   headers={"Authorization": "Basic " + "eDp5"})  # x:y
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_client"
    unknown = web.post("/token", data={"grant_type": "password"}, headers=rp.basic())
    assert unknown.status_code == 400 and unknown.get_json()["error"] == "unsupported_grant_type"
    anon = web.get("/userinfo")
    assert anon.status_code == 401 and anon.headers["WWW-Authenticate"] == 'Bearer realm="yiwang"'
    forged = web.get("/userinfo", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    assert flask_reached == []


def test_unusual_requests_go_to_flask_with_their_body(web, rp, flask_reached):
    # a query string: Flask merges it with the form, as before
    r = web.post("/token?grant_type=client_credentials", data={}, headers=rp.basic())
    assert r.status_code == 200 and r.get_json()["access_token"]
    assert flask_reached == ["oauth.token"]
    # not UTF-8, an overlong parameter, a body too large: Flask's input limits answer
    r = web.post("/token", data=b"grant_type=client_credentials&x=%ff%fe",
                 content_type="application/x-www-form-urlencoded", headers=rp.basic())
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"
    r = web.post("/introspect", data={"token": "x" * 5000}, headers=rp.basic())
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"
    r = web.post("/token", data={"grant_type": "client_credentials", "pad": "x" * 70_000}, headers=rp.basic())
    assert r.status_code == 413
    # JSON instead of a form: Flask's view, Authlib's error
    r = web.post("/token", json={"grant_type": "client_credentials"}, headers=rp.basic())
    assert r.status_code == 400


def test_an_outage_on_the_hot_path_is_a_503(app, web, citizen, rp, monkeypatch):
    import redis

    q, v = authorize_code(web, rp)
    at = exchange(web, rp, q["code"], v).get_json()["access_token"]
    provider = app.extensions["yiwang"].provider

    def down(*a, **kw):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(provider.tokens, "snapshot_if_live", down)
    r = web.get("/userinfo", headers={"Authorization": "Bearer " + at})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.get_json()["title"] == "service_unavailable"


_SAME = ("Content-Type", "Cache-Control", "Pragma", "WWW-Authenticate", "X-Content-Type-Options")


def _answer(resp) -> tuple:
    return resp.status_code, resp.get_json(), {h: resp.headers.get(h) for h in _SAME}


def test_flask_and_the_hot_path_give_the_same_answers(web, citizen, rp, flask_reached):
    """Both call idp.oauth.endpoints: a query string sends the same request through Flask."""
    q, v = authorize_code(web, rp, scope="openid profile")
    at = exchange(web, rp, q["code"], v).get_json()["access_token"]
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{rp.client_id}:wrong".encode()).decode()}
    cases = [
        ("post", "/token", {"grant_type": "client_credentials"}, wrong),  # invalid_client, 401
        ("post", "/token", {"grant_type": "password"}, rp.basic()),  # unsupported_grant_type
        ("post", "/introspect", {"token": at}, rp.basic()),
        ("post", "/introspect", {"token": "nope", "token_type_hint": "id_token"}, rp.basic()),
        ("get", "/userinfo", None, {"Authorization": "Bearer " + at}),
        ("get", "/userinfo", None, {"Authorization": "Bearer not-a-token"}),
        ("get", "/userinfo", None, {}),
    ]
    for method, path, form, headers in cases:
        hot = getattr(web, method)(path, data=form, headers=headers)
        assert flask_reached == [], path
        via_flask = getattr(web, method)(path + "?via=flask", data=form, headers=headers)
        assert flask_reached == ["oauth." + path.strip("/")], path
        flask_reached.clear()
        assert _answer(hot) == _answer(via_flask), (path, form)
