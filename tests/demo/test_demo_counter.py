"""The demo's counter channel (issue 13, docs/counter-guide.md "Try it with the demo").

``idp init --demo`` seeds a clerk (password, TOTP secret) and ``demo-counter``, a
staff portal registered for CIBA (poll, acting clerk); ``demo.serve`` prints how
to sign the clerk in. The walkthrough of the guide is run here in process with
the seeded secrets: clerk sign-in → actor token → /bc-authorize with the demo
citizen's ID number → the citizen approves → the poll gets tokens with ``act``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest

from demo.serve import counter_lines
from idp.cli.init import (
    COUNTER_CLIENT_ID,
    COUNTER_REDIRECT_URI,
    DEMO_ID_NUMBER,
    DEMO_STAFF,
    _seed_demo,
)
from idp.settings import IdpSettings
from idp.staff.accounts import StaffService
from tests.idp.ciba_helpers import approval_page, claims, pending_ids, poll, start
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import FAST_HASH, RP, csrf_of, login, pkce_pair, query_of


@pytest.fixture
def idp_settings(yiwang_env: dict[str, str]) -> IdpSettings:
    # the demo's issuer is on loopback, so its portals' http://127.0.0.1 logout URIs are accepted
    return IdpSettings.from_env(dict(yiwang_env, YIWANG_ISSUER="http://127.0.0.1:5000")).with_(**FAST_HASH)


def _clerk_actor_token(web: Any, counter: RP, staff: dict[str, Any]) -> str:
    verifier, challenge = pkce_pair()
    resp = web.get("/authorize", query_string={
        "response_type": "code", "client_id": counter.client_id, "redirect_uri": counter.redirect_uri,
        "scope": "openid profile", "state": "s1", "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/staff/login", resp.data[:300]
    where = resp.headers["Location"]
    page = web.get(where).get_data(as_text=True)
    resp = web.post(where, data={"csrf_token": csrf_of(page), "username": staff["username"],
                                 "password": staff["password"], "code": pyotp.TOTP(staff["totp_secret"]).now()})
    assert resp.status_code in (302, 303) and resp.headers["Location"].startswith(COUNTER_REDIRECT_URI), resp.data[:300]
    tokens = web.post("/token", data={"grant_type": "authorization_code", "code": query_of(resp.headers["Location"])["code"],
                                      "redirect_uri": counter.redirect_uri, "code_verifier": verifier},
                      headers=counter.basic())
    assert tokens.status_code == 200, tokens.data
    return str(tokens.get_json()["id_token"])


def test_the_seed_runs_the_counter_guides_walkthrough(idp_settings: IdpSettings, idp_services: Any, app: Any) -> None:
    data = _seed_demo(idp_settings, idp_services)
    staff, c = data["staff"], data["counter"]
    assert (staff["username"], staff["name"], staff["kind"], staff["office"]) == DEMO_STAFF
    client = idp_services.clients.get(COUNTER_CLIENT_ID)
    assert client is not None and client.check_client_secret(c["client_secret"])
    assert client.attributes["audience"] == "staff" and client.attributes["acting"] == "clerk"
    assert client.attributes["backchannel_token_delivery_mode"] == "poll"  # noqa: S105 - a mode
    assert list(client.redirect_uris) == [COUNTER_REDIRECT_URI] == [c["redirect_uri"]]

    counter = RP(COUNTER_CLIENT_ID, c["client_secret"], COUNTER_REDIRECT_URI)
    web = app.test_client()
    actor = _clerk_actor_token(app.test_client(), counter, staff)
    resp = start(web, counter, login_hint=DEMO_ID_NUMBER, actor_token=actor, binding_message="窗口 3")
    assert resp.status_code == 200, resp.data
    rid = resp.get_json()["auth_req_id"]
    assert poll(web, counter, rid).get_json()["error"] == "authorization_pending"

    phone = app.test_client()
    first = phone.get("/account")
    assert first.status_code == 303
    signed = login(phone, first.headers["Location"], id_number=DEMO_ID_NUMBER, password=data["citizen"]["password"])
    assert signed.status_code in (302, 303), signed.data[:300]
    (display_id,) = pending_ids(phone)
    page = approval_page(phone, display_id)
    html = page.get_data(as_text=True)
    assert "王芳" in html and "3 号窗口" in html and "窗口 3" in html
    decided = phone.post(f"/ciba/{display_id}", data={"csrf_token": csrf_of(html), "decision": "approve"})
    assert decided.status_code in (200, 303), decided.data[:300]

    got = poll(web, counter, rid)
    assert got.status_code == 200, got.data
    at = claims(got.get_json()["access_token"])
    assert at["client_id"] == COUNTER_CLIENT_ID and not at["sub"].startswith("staff:")
    assert at["act"]["staff_kind"] == "clerk" and at["act"]["office"] == DEMO_STAFF[3]
    assert poll(web, counter, rid).get_json()["error"] == "invalid_grant"  # redeemed once


def test_a_second_init_keeps_the_clerks_secrets_and_a_lost_file_gets_new_ones(
        idp_settings: IdpSettings, idp_services: Any) -> None:
    first = _seed_demo(idp_settings, idp_services)
    assert _seed_demo(idp_settings, idp_services) == first
    path = Path(idp_settings.home) / "demo-clients.json"
    lost = json.loads(path.read_text())
    del lost["staff"]
    path.write_text(json.dumps(lost))
    again = _seed_demo(idp_settings, idp_services)
    assert again["staff"]["totp_secret"] != first["staff"]["totp_secret"]
    assert again["counter"] == first["counter"]
    service = StaffService.of(idp_services)
    assert service.login(DEMO_STAFF[0], first["staff"]["password"],
                         pyotp.TOTP(again["staff"]["totp_secret"]).now()).status == "invalid"
    ok = service.login(DEMO_STAFF[0], again["staff"]["password"], pyotp.TOTP(again["staff"]["totp_secret"]).now())
    assert ok.ok and ok.staff is not None and ok.staff.office == DEMO_STAFF[3]


def test_demo_serve_prints_the_clerks_sign_in_but_no_client_secret(
        idp_settings: IdpSettings, idp_services: Any) -> None:
    data = _seed_demo(idp_settings, idp_services)
    path = Path(idp_settings.home) / "demo-clients.json"
    text = "\n".join(counter_lines(data, path))
    staff = data["staff"]
    assert staff["username"] in text and staff["password"] in text and COUNTER_CLIENT_ID in text
    assert f"secret={staff['totp_secret']}" in text and "otpauth://totp/" in text
    assert data["counter"]["client_secret"] not in text
    assert counter_lines({"citizen": data["citizen"]}, path) == []  # an older demo file: nothing to show
