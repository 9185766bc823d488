"""Device authorization grant (RFC 8628): codes, polling, approval from the SSO session, sign-out."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from idp.device import DEVICE_CODE_GRANT_TYPE
from idp.models import LogoutDelivery
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, RP, csrf_of, login, make_rp

USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


@pytest.fixture
def kiosk(idp_services, citizen) -> RP:
    return make_rp(
        idp_services,
        name="政务自助终端",
        grant_types=(DEVICE_CODE_GRANT_TYPE, "refresh_token"),
        scopes=("openid", "profile"),
        backchannel_logout_uri="https://kiosk.example.cn/backchannel-logout",  # not loopback: issue 19 §7
        first_party=True,
    )


def _start(web, kiosk: RP, scope: str = "openid profile") -> dict:
    resp = web.post("/device/authorize", data={"scope": scope}, headers=kiosk.basic())
    assert resp.status_code == 200, resp.data
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.get_json()


def _poll(web, kiosk: RP, device_code: str):
    return web.post(
        "/token", data={"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": device_code}, headers=kiosk.basic()
    )


def _approve(phone, user_code: str, decision: str = "approve"):
    """The citizen's phone: open verification_uri_complete, log in if needed, decide."""
    resp = phone.get("/device", query_string={"user_code": user_code})
    if resp.status_code == 303:  # no SSO session on this phone yet: log in first
        assert urlsplit(resp.headers["Location"]).path == "/login"
        resp = login(phone, resp.headers["Location"])
        assert resp.status_code == 303
        resp = phone.get(resp.headers["Location"])
    assert resp.status_code == 200, resp.data[:300]
    page = resp.get_data(as_text=True)
    assert user_code in page
    return phone.post("/device", data={"csrf_token": csrf_of(page), "user_code": user_code, "decision": decision})


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_device_authorization_response(web, kiosk):
    data = _start(web, kiosk)
    assert USER_CODE.match(data["user_code"])
    assert data["verification_uri"] == f"{ISSUER}/device"
    assert data["verification_uri_complete"] == f"{ISSUER}/device?user_code={data['user_code']}"
    assert data["expires_in"] == 600 and data["interval"] == 5
    assert len(data["device_code"]) >= 40


def test_discovery_points_at_the_device_endpoint(web, kiosk):
    doc = web.get("/.well-known/openid-configuration").get_json()
    path = urlsplit(doc["device_authorization_endpoint"]).path
    assert web.post(path, data={"scope": "openid"}, headers=kiosk.basic()).status_code == 200


def test_client_without_the_grant_is_refused(web, idp_services):
    portal = make_rp(idp_services)
    resp = web.post("/device/authorize", data={"scope": "openid"}, headers=portal.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "unauthorized_client"


def test_wrong_client_secret_is_invalid_client(web, kiosk):
    bad = RP(kiosk.client_id, "wrong", kiosk.redirect_uri)
    resp = web.post("/device/authorize", data={"scope": "openid"}, headers=bad.basic())
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_pending_slow_down_approve_tokens_with_sid_then_replay(web, kiosk, app):
    data = _start(web, kiosk)
    first = _poll(web, kiosk, data["device_code"])
    assert first.status_code == 400 and first.get_json()["error"] == "authorization_pending"
    second = _poll(web, kiosk, data["device_code"])  # sooner than the 5 s interval
    assert second.status_code == 400 and second.get_json()["error"] == "slow_down"

    phone = app.test_client()
    done = _approve(phone, data["user_code"])
    assert done.status_code == 200 and 'id="device-result"' in done.get_data(as_text=True)

    tokens = _poll(web, kiosk, data["device_code"])
    assert tokens.status_code == 200, tokens.data
    body = tokens.get_json()
    assert {"access_token", "refresh_token", "id_token"} <= set(body)
    sessions = app.extensions["yiwang"].sessions
    phone_sid = _claims(body["id_token"])["sid"]
    assert _claims(body["access_token"])["sid"] == phone_sid
    live = sessions.get(phone_sid, touch=False)
    assert live is not None and kiosk.client_id in sessions.clients(phone_sid)

    replay = _poll(web, kiosk, data["device_code"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"


def test_signing_out_on_the_phone_ends_the_kiosk(web, kiosk, app, idp_services):
    data = _start(web, kiosk)
    phone = app.test_client()
    _approve(phone, data["user_code"])
    body = _poll(web, kiosk, data["device_code"]).get_json()
    assert web.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200
    sid = _claims(body["id_token"])["sid"]

    # The citizen signs out on the phone (RP-less logout: confirm on the idp's page).
    page = phone.get("/logout").get_data(as_text=True)
    assert phone.post("/logout", data={"csrf_token": csrf_of(page), "decision": "logout"}).status_code == 200

    assert app.extensions["yiwang"].sessions.get(sid, touch=False) is None
    assert web.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401
    refreshed = web.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, headers=kiosk.basic()
    )
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    with idp_services.db.session() as db:
        rows = db.scalars(sa.select(LogoutDelivery).where(LogoutDelivery.sid == sid)).all()
    assert [r.client_id for r in rows] == [kiosk.client_id]  # the kiosk is told through back-channel


def test_denied_is_access_denied(web, kiosk, app):
    data = _start(web, kiosk)
    _approve(app.test_client(), data["user_code"], decision="deny")
    resp = _poll(web, kiosk, data["device_code"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "access_denied"


def test_expired_code_is_expired_token(web, kiosk, app, idp_services):
    data = _start(web, kiosk)
    store = app.extensions["yiwang"].server.device_codes
    import hashlib

    key = f"{idp_services.keyspace.base}device:dc:{hashlib.sha256(data['device_code'].encode()).hexdigest()}"
    idp_services.redis.hset(key, "expires_at", 1)
    assert store.pending_for_user_code(data["user_code"]) is None
    resp = _poll(web, kiosk, data["device_code"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "expired_token"


def test_unknown_device_code_and_unknown_user_code(web, kiosk, app):
    resp = _poll(web, kiosk, "made-up-device-code")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    phone = app.test_client()
    _approve_start = phone.get("/device", query_string={"user_code": "BCDF-GHJK"})
    login_resp = login(phone, _approve_start.headers["Location"])
    page = phone.get(login_resp.headers["Location"])
    assert page.status_code == 400 and 'id="device-error"' in page.get_data(as_text=True)


def test_a_user_code_is_decided_once(web, kiosk, app):
    data = _start(web, kiosk)
    phone = app.test_client()
    _approve(phone, data["user_code"], decision="deny")
    page = phone.get("/device").get_data(as_text=True)
    again = phone.post("/device", data={"csrf_token": csrf_of(page), "user_code": data["user_code"],
                                        "decision": "approve"})
    assert again.status_code == 400
    assert _poll(web, kiosk, data["device_code"]).get_json()["error"] == "access_denied"


def test_decision_without_csrf_changes_nothing(web, kiosk, app):
    data = _start(web, kiosk)
    phone = app.test_client()
    resp = phone.get("/device", query_string={"user_code": data["user_code"]})
    login(phone, resp.headers["Location"])
    forged = phone.post("/device", data={"user_code": data["user_code"], "decision": "approve"})
    assert forged.status_code == 400
    assert _poll(web, kiosk, data["device_code"]).get_json()["error"] == "authorization_pending"


def test_guessing_user_codes_is_rate_limited(web, kiosk, app):
    data = _start(web, kiosk)
    phone = app.test_client()
    start = phone.get("/device", query_string={"user_code": "BCDF-GHJK"})
    login(phone, start.headers["Location"])
    for _ in range(10):
        assert phone.get("/device", query_string={"user_code": "BCDF-GHJK"}).status_code == 400
    # Locked out for a while, even with the right code.
    locked = phone.get("/device", query_string={"user_code": data["user_code"]})
    assert locked.status_code == 429
    assert 'id="approve"' not in locked.get_data(as_text=True)


def test_configure_server_registers_the_device_grant_once(app):
    from idp.device import YiwangDeviceCodeGrant

    runtime = app.extensions["yiwang"]
    grants = [cls for cls, _ in runtime.server._token_grants]
    assert grants.count(YiwangDeviceCodeGrant) == 1
    assert runtime.server.device_codes is runtime.provider.device_codes
    assert runtime.server.device_verification_uri == f"{ISSUER}/device"


def test_configure_server_alone_serves_the_device_flow(app):
    """No web layer involved: the protocol core registers the device grant and endpoint itself."""
    from authlib.oauth2 import AuthorizationServer

    from idp.oauth.server import configure_server, registered_grant_types

    server = configure_server(AuthorizationServer(), app.extensions["yiwang"].provider)
    assert DEVICE_CODE_GRANT_TYPE in registered_grant_types(server)
    assert "device_authorization" in server._endpoints
