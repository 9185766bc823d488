"""Refresh tokens rotate on every use; reuse of a rotated one revokes the family."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _refresh(web, rp, token):
    return web.post("/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=rp.basic())


def _active(web, rp, token):
    return web.post("/introspect", data={"token": token}, headers=rp.basic()).get_json()["active"]


def test_refresh_rotates(web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"])
    assert second.status_code == 200, second.data
    body = second.get_json()
    assert body["refresh_token"] != first["refresh_token"]
    assert _active(web, rp, body["access_token"])
    assert not _active(web, rp, first["refresh_token"])  # rotated away
    assert _active(web, rp, body["refresh_token"])


def test_reuse_of_rotated_refresh_token_revokes_family(web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    reuse = _refresh(web, rp, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    # the whole family, including the newest tokens, is gone
    assert not _active(web, rp, second["refresh_token"])
    assert not _active(web, rp, second["access_token"])
    assert not _active(web, rp, first["access_token"])
    assert _refresh(web, rp, second["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_refused(web, idp_services, citizen, rp):
    from tests.idp.oidc_helpers import make_rp

    other = make_rp(idp_services, name="Other", redirect_uri="https://o.example.cn/cb")
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    assert _refresh(web, other, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    # and the rightful client can still use it (nothing was consumed)
    assert _refresh(web, rp, first["refresh_token"]).status_code == 200


def test_scope_cannot_grow_on_refresh(web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile")
    first = exchange(web, rp, q["code"], v).get_json()
    resp = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                    "scope": "openid profile email"}, headers=rp.basic())
    assert resp.get_json()["error"] == "invalid_scope"


def test_session_end_kills_session_tokens_but_not_offline(app, web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile")
    online = exchange(web, rp, q["code"], v).get_json()
    q2, v2 = authorize_code(web, rp, scope="openid offline_access")
    offline = exchange(web, rp, q2["code"], v2).get_json()
    runtime = app.extensions["yiwang"]
    sid = runtime.provider.tokens.verify_access_token(online["access_token"]).sid
    runtime.sessions.end(sid, "logout")
    assert not _active(web, rp, online["access_token"])
    assert _refresh(web, rp, online["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert _refresh(web, rp, offline["refresh_token"]).status_code == 200


def test_refresh_returns_a_consistent_id_token(web, citizen, rp):
    import base64
    import json

    def claims(jwt):
        part = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    a, b = claims(first["id_token"]), claims(second["id_token"])
    for k in ("iss", "sub", "aud", "sid", "auth_time", "acr"):
        assert a[k] == b[k]
    assert "nonce" not in b
