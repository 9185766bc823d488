"""RFC 7662 introspection and RFC 7009 revocation."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, authorize_code, exchange, make_rp


def _tokens(web, rp):
    q, v = authorize_code(web, rp)
    return exchange(web, rp, q["code"], v).get_json()


def test_introspection_of_live_access_token(web, citizen, rp):
    t = _tokens(web, rp)
    resp = web.post("/introspect", data={"token": t["access_token"]}, headers=rp.basic())
    body = resp.get_json()
    assert resp.status_code == 200 and body["active"] is True
    assert body["client_id"] == rp.client_id and body["iss"] == ISSUER and "openid" in body["scope"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_introspection_requires_client_authentication(web, citizen, rp):
    t = _tokens(web, rp)
    resp = web.post("/introspect", data={"token": t["access_token"]})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_introspection_of_garbage_and_foreign_tokens_is_inactive(web, idp_services, citizen, rp):
    other = make_rp(idp_services, name="Other", redirect_uri="https://o.example.cn/cb")
    t = _tokens(web, rp)
    assert web.post("/introspect", data={"token": "garbage"}, headers=rp.basic()).get_json() == {"active": False}
    assert web.post("/introspect", data={"token": "a.b.c"}, headers=rp.basic()).get_json() == {"active": False}
    # RFC 7662 §4: a client that the token is not for learns nothing
    assert web.post("/introspect", data={"token": t["access_token"]}, headers=other.basic()).get_json() == {"active": False}


def test_introspection_missing_token_is_invalid_request(web, rp):
    resp = web.post("/introspect", data={}, headers=rp.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_revoke_access_token(web, citizen, rp):
    t = _tokens(web, rp)
    resp = web.post("/revoke", data={"token": t["access_token"], "token_type_hint": "access_token"}, headers=rp.basic())
    assert resp.status_code == 200
    assert web.post("/introspect", data={"token": t["access_token"]}, headers=rp.basic()).get_json() == {"active": False}
    ui = web.get("/userinfo", headers={"Authorization": "Bearer " + t["access_token"]})
    assert ui.status_code == 401


def test_revoke_refresh_token_revokes_family(web, citizen, rp):
    t = _tokens(web, rp)
    assert web.post("/revoke", data={"token": t["refresh_token"]}, headers=rp.basic()).status_code == 200
    assert web.post("/introspect", data={"token": t["refresh_token"]}, headers=rp.basic()).get_json()["active"] is False
    assert web.post("/introspect", data={"token": t["access_token"]}, headers=rp.basic()).get_json()["active"] is False
    r = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}, headers=rp.basic())
    assert r.get_json()["error"] == "invalid_grant"


def test_revoke_unknown_token_is_200(web, rp):
    # RFC 7009 §2.2: invalid tokens do not cause an error response
    assert web.post("/revoke", data={"token": "never-issued"}, headers=rp.basic()).status_code == 200


def test_revoke_unsupported_hint(web, rp):
    resp = web.post("/revoke", data={"token": "x", "token_type_hint": "id_token"}, headers=rp.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "unsupported_token_type"


def test_revoke_client_credentials_token(web, rp):
    at = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic()).get_json()["access_token"]
    assert web.post("/introspect", data={"token": at}, headers=rp.basic()).get_json()["active"] is True
    web.post("/revoke", data={"token": at}, headers=rp.basic())
    assert web.post("/introspect", data={"token": at}, headers=rp.basic()).get_json()["active"] is False


def test_introspection_gives_the_id_number_only_to_the_resource_server(web, idp_services, citizen):
    # issue 6: certstore maps a citizen's certs:read token to their certificates through
    # introspection; the portal holding the token never sees the number.
    certstore = make_rp(idp_services, name="certstore", client_id="certstore", may_receive_id_number=True,
                        redirect_uri="https://certs.example.cn/wallet/callback")
    nosy = make_rp(idp_services, name="nosy", client_id="nosy-rs", may_receive_id_number=True,
                   redirect_uri="https://nosy.example.cn/cb")
    portal = make_rp(idp_services, name="portal", scopes=("openid", "certs:read"),
                     redirect_uri="https://p.example.cn/cb")
    q, v = authorize_code(web, portal, scope="openid certs:read")
    token = exchange(web, portal, q["code"], v).get_json()["access_token"]
    body = web.post("/introspect", data={"token": token}, headers=certstore.basic()).get_json()
    assert body["active"] is True and body["aud"] == "certstore"
    assert len(body["id_number"]) == 18 and body["client_name"] == "portal"
    own = web.post("/introspect", data={"token": token}, headers=portal.basic()).get_json()
    assert own["active"] is True and "id_number" not in own
    # a client outside the audience learns nothing at all
    assert web.post("/introspect", data={"token": token}, headers=nosy.basic()).get_json() == {"active": False}
