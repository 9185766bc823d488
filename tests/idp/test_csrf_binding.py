"""Issue 19 §1: a CSRF token is bound to the session, so a (cookie, token) pair planted by a same-site page fails.

The attacker visits the idp in their own browser, signs in as themselves and
keeps the CSRF cookie and a token from a page. A page on another port of the
host (or a sibling subdomain) can set that cookie in the victim's browser,
then make the victim's browser post the token to any form. Every
state-changing form must refuse the pair, and nothing must change.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from idp.device import DEVICE_CODE_GRANT_TYPE
from idp.models import Consent
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    PASSWORD,
    RP,
    authorize_code,
    csrf_of,
    is_login_page,
    login,
    make_id,
    make_rp,
    pkce_pair,
)

ATTACKER_ID = make_id("11010519800101001")
CSRF_COOKIE = "yw_csrf"


@pytest.fixture
def attacker_account(idp_services: Any) -> Any:
    return idp_services.accounts.add(ATTACKER_ID, "李四", PASSWORD)


@pytest.fixture
def victim(app: Any, citizen: Any, rp: RP) -> Any:
    """The citizen's browser, signed in (through a portal, so it has a consent and a session)."""
    browser = app.test_client()
    authorize_code(browser, rp)
    return browser


@pytest.fixture
def attacker(app: Any, attacker_account: Any) -> Any:
    """The attacker's own browser: it has seen a login page (so it holds a CSRF cookie) and signed in."""
    browser = app.test_client()
    login(browser, "/login", id_number=ATTACKER_ID)
    assert browser.get_cookie(CSRF_COOKIE) is not None
    return browser


@pytest.fixture
def kiosk(idp_services: Any) -> RP:
    return make_rp(idp_services, name="政务自助终端", grant_types=(DEVICE_CODE_GRANT_TYPE,),
                   scopes=("openid", "profile"), first_party=True)


def _plant(victim: Any, attacker: Any) -> None:
    """What a same-site page does with ``document.cookie`` or ``Set-Cookie``: the attacker's cookie, the victim's jar."""
    victim.set_cookie(CSRF_COOKIE, attacker.get_cookie(CSRF_COOKIE).value)


def _victim_sessions(app: Any, citizen: Any) -> list[Any]:
    return app.extensions["yiwang"].sessions.list_for_citizen(str(citizen.id))


def _attacker_token(attacker: Any, path: str = "/account") -> str:
    page = attacker.get(path)
    assert page.status_code == 200, page.status_code
    return csrf_of(page.get_data(as_text=True))


def test_device_approval_refuses_a_planted_pair(app, victim, attacker, kiosk, citizen):
    start = victim.post("/device/authorize", data={"scope": "openid profile"}, headers=kiosk.basic()).get_json()
    token = _attacker_token(attacker, f"/device?user_code={start['user_code']}")
    _plant(victim, attacker)
    resp = victim.post("/device", data={"csrf_token": token, "user_code": start["user_code"], "decision": "approve"})
    assert resp.status_code == 400
    poll = victim.post("/token", data={"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": start["device_code"]},
                       headers=kiosk.basic())
    assert poll.get_json()["error"] == "authorization_pending"


def test_device_approval_refuses_a_pre_session_pair(app, victim, attacker_account, kiosk):
    """A token from a page the attacker saw before signing in is no better."""
    stranger = app.test_client()
    token = csrf_of(stranger.get("/login").get_data(as_text=True))
    start = victim.post("/device/authorize", data={"scope": "openid"}, headers=kiosk.basic()).get_json()
    _plant(victim, stranger)
    resp = victim.post("/device", data={"csrf_token": token, "user_code": start["user_code"], "decision": "approve"})
    assert resp.status_code == 400


@pytest.mark.parametrize("form", ["end_session", "sign_out_everywhere", "revoke_consent"])
def test_account_forms_refuse_a_planted_pair(app, idp_services, victim, attacker, citizen, rp, form):
    sid = _victim_sessions(app, citizen)[0].sid
    path = {"end_session": f"/account/sessions/{sid}/end", "sign_out_everywhere": "/account/sign-out-everywhere",
            "revoke_consent": f"/account/consents/{rp.client_id}/revoke"}[form]
    token = _attacker_token(attacker)
    _plant(victim, attacker)
    assert victim.post(path, data={"csrf_token": token}).status_code == 400
    assert [s.sid for s in _victim_sessions(app, citizen)] == [sid]
    with idp_services.db.session() as s:
        consent = s.execute(sa.select(Consent).where(Consent.citizen_id == citizen.id)).scalar_one()
        assert consent.revoked_at is None


def test_logout_confirmation_refuses_a_planted_pair(app, victim, attacker, citizen):
    token = _attacker_token(attacker, "/logout")
    _plant(victim, attacker)
    resp = victim.post("/logout", data={"csrf_token": token, "decision": "logout"})
    assert resp.status_code == 400
    assert len(_victim_sessions(app, citizen)) == 1


def test_login_form_refuses_a_planted_pair(app, victim, attacker, citizen):
    """A forged login would end the citizen's session and sign the browser in as the attacker."""
    stranger = app.test_client()
    token = csrf_of(stranger.get("/login").get_data(as_text=True))
    _plant(victim, stranger)
    resp = victim.post("/login", data={"csrf_token": token, "id_number": ATTACKER_ID, "password": PASSWORD})
    assert resp.status_code == 400
    sessions = _victim_sessions(app, citizen)
    assert len(sessions) == 1
    assert victim.get("/account").status_code == 200


def test_second_factor_refuses_a_planted_pair(app, idp_services, victim, citizen):
    """The attacker's half-done login (their password, their code) would replace the citizen's session."""
    import pyotp

    intruder = idp_services.accounts.add(ATTACKER_ID, "李四", PASSWORD)
    secret = idp_services.accounts.enrol_totp(ATTACKER_ID).secret
    attacker = app.test_client()
    step = login(attacker, "/login", id_number=ATTACKER_ID)
    assert step.status_code == 303 and "/login/second-factor" in step.headers["Location"]
    second = step.headers["Location"]
    token = csrf_of(attacker.get(second).get_data(as_text=True))
    _plant(victim, attacker)
    resp = victim.post(second, data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 400
    assert len(_victim_sessions(app, citizen)) == 1
    assert _victim_sessions(app, intruder) == []  # the browser was not signed in as the attacker


def test_consent_refuses_a_planted_pair(app, idp_services, victim, attacker, citizen, idp_settings):
    """The attacker's own authorization request, consented with the citizen's session, would be remembered."""
    other = make_rp(idp_services, name="恶意应用", redirect_uri="https://evil.example/cb")
    _v, challenge = pkce_pair()
    resp = attacker.get("/authorize", query_string={
        "response_type": "code", "client_id": other.client_id, "redirect_uri": other.redirect_uri,
        "scope": "openid profile", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert not is_login_page(resp) and resp.status_code == 302
    consent_url = resp.headers["Location"]
    assert urlsplit(consent_url).path == "/consent"
    token = csrf_of(attacker.get(consent_url).get_data(as_text=True))
    _plant(victim, attacker)
    refused = victim.post(consent_url, data={"csrf_token": token, "decision": "allow"})
    assert refused.status_code == 400
    with idp_services.db.session() as s:
        rows = s.execute(sa.select(Consent).where(Consent.citizen_id == citizen.id,
                                                  Consent.client_id == other.client_id)).all()
    assert rows == []


def test_a_token_is_bound_to_its_flow(app, citizen, rp):
    """Within one browser, the token of one sign-in flow does not post another flow's form."""
    browser = app.test_client()
    pages = []
    for state in ("a", "b"):
        _v, challenge = pkce_pair()
        page = browser.get("/authorize", query_string={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid", "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        assert is_login_page(page)
        pages.append(page.get_data(as_text=True))
    action_b = re.search(r'action="([^"]+)" id="login-form"', pages[1]).group(1).replace("&amp;", "&")
    resp = browser.post(action_b, data={"csrf_token": csrf_of(pages[0]), "id_number": ID_NUMBER,
                                        "password": PASSWORD})
    assert resp.status_code == 400
    ok = browser.post(action_b, data={"csrf_token": csrf_of(pages[1]), "id_number": ID_NUMBER, "password": PASSWORD})
    assert ok.status_code == 303


def test_session_bound_token_survives_only_its_session(app, citizen, rp):
    """A page rendered in one session does not post in the next one (sign out, sign in again)."""
    browser = app.test_client()
    authorize_code(browser, rp)
    old = csrf_of(browser.get("/account").get_data(as_text=True))
    new_page = browser.get("/account").get_data(as_text=True)
    assert csrf_of(new_page) == old  # stable within a session: several tabs work
    browser.post("/account/sign-out-everywhere", data={"csrf_token": old})
    authorize_code(browser, rp)
    assert browser.post("/account/sign-out-everywhere", data={"csrf_token": old}).status_code == 400


def test_https_issuer_uses_host_prefixed_cookies(idp_settings, idp_services, citizen):
    """``__Host-``: Secure, Path=/, no Domain, so no sibling subdomain can set or shadow them."""
    from idp.web import create_app

    common = idp_settings.common.__class__(**{**idp_settings.common.__dict__, "issuer": "https://idp.example.gov.cn"})
    app = create_app(idp_settings.with_(common=common), services=idp_services)
    try:
        browser = app.test_client()
        page = browser.get("/login", base_url="https://idp.example.gov.cn")
        cookies = page.headers.getlist("Set-Cookie")
        assert any(c.startswith("__Host-yw_csrf=") for c in cookies), cookies
        for c in cookies:
            if c.startswith("__Host-"):
                assert "Secure" in c and "Path=/" in c and "Domain" not in c
        done = browser.post("/login", base_url="https://idp.example.gov.cn", data={
            "csrf_token": csrf_of(page.get_data(as_text=True)), "id_number": ID_NUMBER, "password": PASSWORD})
        assert done.status_code == 303
        sso = [c for c in done.headers.getlist("Set-Cookie") if c.startswith("__Host-yw_sso=")]
        assert sso and "Secure" in sso[0]
        # A cookie without the prefix (what a sibling could set) is not the session.
        value = sso[0].split(";", 1)[0].split("=", 1)[1]
        plain = app.test_client()
        plain.set_cookie("yw_sso", value, domain="idp.example.gov.cn")
        assert plain.get("/account", base_url="https://idp.example.gov.cn").status_code == 303
    finally:
        if app.extensions["yiwang"].logout is not None:
            app.extensions["yiwang"].logout.close()


def test_logout_confirmation_after_the_session_ended_is_the_neutral_page(app, victim, citizen):
    """Nothing is left to end, so nothing needs the session-bound token: no "form expired" for a stale tab."""
    page = victim.get("/logout").get_data(as_text=True)
    for s in _victim_sessions(app, citizen):
        app.extensions["yiwang"].sessions.end(s.sid, "logout")
    resp = victim.post("/logout", data={"csrf_token": csrf_of(page), "decision": "logout"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "表单已过期" not in html and "您当前没有登录" in html
