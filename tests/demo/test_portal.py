"""The demo portal against an idp served on a local port: logout-token checks and kiosk mode."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from demo.portal import LocalSession, PortalConfig, create_portal
from idp.clients import ClientSpec
from idp.device import DEVICE_CODE_GRANT_TYPE
from idp.services import Services
from idp.settings import IdpSettings
from keys.backend import b64url
from keys.jws import encode_jws
from keys.keyring import open_keyring
from tests.demo.processes import Portal, free_port
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, csrf_of, login

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def idp(yiwang_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    from idp.web import create_app

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = IdpSettings.from_env({**yiwang_env, "YIWANG_ISSUER": issuer}).with_(
        password_hash_memory_kib=64, password_hash_iterations=1
    )
    keyring = open_keyring(settings.common.keys)
    services = Services.build(settings, pii=keyring.pii(), keyring=keyring)
    services.db.create_all()
    services.accounts.add(ID_NUMBER, "张三", PASSWORD)
    client, secret = services.clients.add(ClientSpec(
        name="Portal K", redirect_uris=["http://127.0.0.1:1/callback"], scopes=["openid", "profile"],
        grant_types=["authorization_code", DEVICE_CODE_GRANT_TYPE], first_party=True,
    ))
    app = create_app(settings, services=services)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"issuer": issuer, "app": app, "client_id": client.client_id, "secret": secret, "keyring": keyring}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        if app.extensions["yiwang"].logout is not None:
            app.extensions["yiwang"].logout.close()
        services.close()


@pytest.fixture
def portal(idp: dict[str, Any]) -> Any:
    app = create_portal(PortalConfig(name="K", port=1, issuer=idp["issuer"], client_id=idp["client_id"],
                                     client_secret=idp["secret"], expose_state=True))
    return app


def _logout_token(idp: dict[str, Any], **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": idp["issuer"], "aud": idp["client_id"], "iat": now, "exp": now + 120,
              "jti": f"j-{time.monotonic_ns()}", "events": {EVENT: {}}, "sid": "sid-1", "sub": "sub-1"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return encode_jws(idp["keyring"].keyset("idp-token").active(), claims, typ="logout+jwt")


def _with_session(portal: Any, sid: str = "sid-1") -> None:
    portal.extensions["portal_sessions"].add(LocalSession(sub="sub-1", sid=sid, name="张三", id_token="x"))  # noqa: S106


def test_valid_logout_token_ends_the_sessions_of_its_sid(idp, portal):
    _with_session(portal)
    _with_session(portal, sid="other")
    web = portal.test_client()
    resp = web.post("/backchannel-logout", data={"logout_token": _logout_token(idp)})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    state = web.get("/_state").get_json()
    assert state["signed_in"] == 1 and state["sids"] == ["other"]


@pytest.mark.parametrize("bad", [
    {"aud": "someone-else"}, {"iss": "http://evil.example"}, {"nonce": "n"}, {"events": None},
    {"events": {"http://example.com/other": {}}}, {"sid": None, "sub": None}, {"iat": None},
    {"exp": 1000},
])
def test_invalid_logout_tokens_are_rejected(idp, portal, bad):
    _with_session(portal)
    web = portal.test_client()
    resp = web.post("/backchannel-logout", data={"logout_token": _logout_token(idp, **bad)})
    assert resp.status_code == 400
    assert web.get("/_state").get_json()["signed_in"] == 1


def test_alg_none_and_replay_are_rejected(idp, portal):
    _with_session(portal)
    web = portal.test_client()
    good = _logout_token(idp)
    payload = good.split(".")[1]
    unsigned = b64url(json.dumps({"alg": "none", "typ": "logout+jwt"}).encode()) + "." + payload + "."
    assert web.post("/backchannel-logout", data={"logout_token": unsigned}).status_code == 400
    assert web.post("/backchannel-logout", data={"logout_token": good}).status_code == 200
    assert web.post("/backchannel-logout", data={"logout_token": good}).status_code == 400  # same jti


def test_kiosk_shows_a_qr_code_and_signs_in_after_approval(idp, portal):
    kiosk = portal.test_client()
    page = kiosk.get("/kiosk")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    user_code = re.search(r"id='user-code'>([A-Z]{4}-[A-Z]{4})<", html).group(1)
    assert "<svg" in html and "url=/kiosk/poll" in html
    assert "waiting" in kiosk.get("/kiosk/poll").get_data(as_text=True)

    phone = idp["app"].test_client()
    start = phone.get("/device", query_string={"user_code": user_code})
    after_login = login(phone, start.headers["Location"])
    confirm = phone.get(after_login.headers["Location"]).get_data(as_text=True)
    phone.post("/device", data={"csrf_token": csrf_of(confirm), "user_code": user_code, "decision": "approve"})

    done = kiosk.get("/kiosk/poll")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    home = kiosk.get("/").get_data(as_text=True)
    assert "signed in" in home
    sid = kiosk.get("/_state").get_json()["sids"][0]
    phone_sessions = idp["app"].extensions["yiwang"].sessions
    assert idp["client_id"] in phone_sessions.clients(sid)



def test_state_is_off_unless_asked_for(idp):
    from demo.portal import main

    config = PortalConfig(name="K", port=1, issuer=idp["issuer"], client_id=idp["client_id"], client_secret="s")  # noqa: S106
    assert create_portal(config).test_client().get("/_state").status_code == 404
    assert "--expose-state" in " ".join(Portal("A", 1, "c", "s").argv("http://x"))  # the tests opt in
    with pytest.raises(SystemExit):  # and the flag exists on the command line
        main(["--help"])


def test_security_headers_and_framing(idp, portal):
    web = portal.test_client()
    for path in ("/", "/kiosk"):
        resp = web.get(path)
        assert resp.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
    # the front-channel receiver is framed by the idp, and only by it
    fc = web.get("/frontchannel-logout", query_string={"iss": idp["issuer"], "sid": "sid-1"})
    assert fc.headers["Content-Security-Policy"] == f"default-src 'self'; frame-ancestors {idp['issuer']}"
    assert "unsafe-inline" not in fc.headers["Content-Security-Policy"]


def test_sign_out_is_a_post_with_a_csrf_token(idp, portal):
    web = portal.test_client()
    book = portal.extensions["portal_sessions"]
    key = book.add(LocalSession(sub="sub-1", sid="sid-1", name="张三", id_token="x"))  # noqa: S106
    with web.session_transaction() as sess:
        sess["sid_local"] = key
    home = web.get("/").get_data(as_text=True)
    assert "<form method='post' action='/logout'" in home and "href='/logout'" not in home
    token = re.search(r"name='csrf' value='([^']+)'", home).group(1)
    assert web.get("/logout").status_code == 405  # a link or an <img> on another site cannot sign out
    assert web.post("/logout", data={"csrf": "forged"}).status_code == 400
    assert web.post("/logout").status_code == 400
    assert book.count() == 1
    out = web.post("/logout", data={"csrf": token})
    assert out.status_code == 302 and out.headers["Location"].startswith(f"{idp['issuer']}/logout?")
    assert book.count() == 0
