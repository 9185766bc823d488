"""Userinfo (OIDC Core §5.3): GET and POST, Bearer, claims by scope, errors per RFC 6750."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _tokens(web, rp, scope="openid profile phone email"):
    q, v = authorize_code(web, rp, scope=scope)
    return exchange(web, rp, q["code"], v).get_json()


def test_get_and_post_return_claims_by_scope(web, citizen, rp):
    t = _tokens(web, rp)
    for resp in (web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}),
                 web.post("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}),
                 web.post("/userinfo", data={"access_token": t["access_token"]})):
        assert resp.status_code == 200, resp.data
        body = resp.get_json()
        assert body["name"] == "张三" and body["phone_number"] == "+8613800000000"
        assert body["email"] == "zs@example.cn" and body["sub"]
        assert resp.headers["Cache-Control"] == "no-store"


def test_sub_matches_id_token(web, citizen, rp):
    import base64
    import json

    t = _tokens(web, rp)
    part = t["id_token"].split(".")[1]
    sub = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["sub"]
    assert web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}).get_json()["sub"] == sub


def test_narrow_scope_releases_less(web, citizen, rp):
    t = _tokens(web, rp, scope="openid")
    body = web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}).get_json()
    assert set(body) == {"sub"}


def test_missing_or_bad_token(web):
    resp = web.get("/userinfo")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = web.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    forged = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0."
    assert web.get("/userinfo", headers={"Authorization": "Bearer " + forged}).status_code == 401


def test_client_credentials_token_has_no_userinfo(web, rp):
    at = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic()).get_json()["access_token"]
    resp = web.get("/userinfo", headers={"Authorization": "Bearer " + at})
    assert resp.status_code in (401, 403)


def test_userinfo_refused_after_session_ends(app, web, citizen, rp):
    t = _tokens(web, rp)
    runtime = app.extensions["yiwang"]
    sid = runtime.provider.tokens.verify_access_token(t["access_token"]).sid
    runtime.sessions.end(sid, "logout")
    assert web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}).status_code == 401


def test_no_id_number_in_redis_after_a_release(app, web, idp_services, citizen):
    import json

    from tests.idp.oidc_helpers import ID_NUMBER, make_rp

    rp = make_rp(idp_services, name="社保", may_receive_id_number=True,
                 scopes=("openid", "profile", "id_number"), redirect_uri="https://sb.example.cn/cb")
    q, v = authorize_code(web, rp, scope="openid profile id_number", share_id_number=True)
    t = exchange(web, rp, q["code"], v).get_json()
    body = web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]}).get_json()
    assert body["id_number"] == ID_NUMBER
    r = idp_services.redis
    for key in r.scan_iter(match=idp_services.keyspace.prefix + "*"):
        if r.type(key) == b"string":
            assert ID_NUMBER.encode() not in (r.get(key) or b""), key
    assert json.dumps(body, ensure_ascii=False).count(ID_NUMBER) == 1
