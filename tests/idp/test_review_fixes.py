"""Review findings of the idp (flow binding, device consent, proxies, login_hint, headers, file modes)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    PASSWORD,
    authorize_code,
    authorize_params,
    csrf_of,
    is_login_page,
    login,
    login_action,
    make_id,
    make_rp,
    query_of,
)

OTHER_ID = make_id("11010519800101001")
OTHER_PASSWORD = "attacker password 1"  # noqa: S105 - test account


def _consent_resume_url(web, rp, id_number, password=PASSWORD):
    """Log in as ``id_number``, allow the consent, stop at the 303 to /authorize/resume."""
    resp = web.get("/authorize", query_string=authorize_params(rp))
    resp = login(web, resp, id_number=id_number, password=password)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    loc = resp.headers["Location"]  # the login answers with the consent step
    assert urlsplit(loc).path == "/consent"
    page = web.get(loc)
    resp = web.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/authorize/resume"
    return resp.headers["Location"]


def test_resume_url_of_another_browser_does_not_carry_its_consent(app, idp_services, citizen, rp):
    idp_services.accounts.add(OTHER_ID, "李四", OTHER_PASSWORD)
    attacker, victim = app.test_client(), app.test_client()
    resume = _consent_resume_url(attacker, rp, OTHER_ID, OTHER_PASSWORD)
    # The victim is signed in (to a first-party page, say) but never consented to rp.
    resp = victim.get("/authorize", query_string=authorize_params(rp))
    login(victim, resp, id_number=ID_NUMBER)
    resp = victim.get(resume)
    assert resp.status_code == 302
    loc = resp.headers["Location"]
    assert not loc.startswith(rp.redirect_uri) and "code=" not in loc
    assert urlsplit(loc).path == "/consent"


def test_resume_url_without_session_asks_to_log_in(app, idp_services, citizen, rp):
    idp_services.accounts.add(OTHER_ID, "李四", OTHER_PASSWORD)
    attacker, other = app.test_client(), app.test_client()
    resume = _consent_resume_url(attacker, rp, OTHER_ID, OTHER_PASSWORD)
    resp = other.get(resume)
    assert urlsplit(resp.headers["Location"]).path == "/login"


def test_resume_in_the_same_browser_issues_the_code(app, idp_services, citizen, rp):
    web = app.test_client()
    resume = _consent_resume_url(web, rp, ID_NUMBER)
    resp = web.get(resume)
    assert resp.headers["Location"].startswith(rp.redirect_uri) and "code" in query_of(resp.headers["Location"])


# --------------------------------------------------------------- device consent


def _device_kiosk(idp_services):
    from idp.device import DEVICE_CODE_GRANT_TYPE

    return make_rp(idp_services, name="公安自助终端", first_party=True, may_receive_id_number=True,
                   grant_types=(DEVICE_CODE_GRANT_TYPE,), scopes=("openid", "profile", "id_number"))


def _device_tokens(app, kiosk, *, tick: bool):
    from idp.device import DEVICE_CODE_GRANT_TYPE

    device = app.test_client()
    data = device.post("/device/authorize", data={"scope": "openid profile id_number"},
                       headers=kiosk.basic()).get_json()
    phone = app.test_client()
    resp = phone.get("/device", query_string={"user_code": data["user_code"]})
    resp = login(phone, resp.headers["Location"])
    page = phone.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="share_id_number"' in page and "居民身份证号码" in page  # the consent page's label
    form = {"csrf_token": csrf_of(page), "user_code": data["user_code"], "decision": "approve"}
    if tick:
        form["share_id_number"] = "yes"
    assert phone.post("/device", data=form).status_code == 200
    tokens = device.post("/token", data={"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": data["device_code"]},
                         headers=kiosk.basic()).get_json()
    info = device.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).get_json()
    return tokens, info


def test_device_approval_without_the_tick_releases_no_id_number(app, idp_services, citizen):
    tokens, info = _device_tokens(app, _device_kiosk(idp_services), tick=False)
    assert "id_number" not in tokens["scope"].split()
    assert "id_number" not in info and ID_NUMBER not in str(info)
    assert info.get("name") == "张三"


def test_device_approval_with_the_tick_releases_it_and_is_remembered(app, idp_services, citizen):
    import sqlalchemy as sa

    from idp.models import Consent

    kiosk = _device_kiosk(idp_services)
    tokens, info = _device_tokens(app, kiosk, tick=True)
    assert info["id_number"] == ID_NUMBER
    with idp_services.db.session() as s:
        consent = s.execute(sa.select(Consent).where(Consent.client_id == kiosk.client_id)).scalar_one()
        assert "id_number" in consent.scopes


# ------------------------------------------------------------ no-store on errors


@pytest.mark.parametrize("path", ["/token", "/introspect", "/par"])
def test_json_errors_are_not_cached(web, path):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        web.post(path, data=b"grant_type=%FF%FE", headers=form),  # not UTF-8
        web.post(path, data="x=" + "a" * 3000, headers=form),  # a parameter too long
        web.post(path, data="x=" + "a" * (70 * 1024), headers=form),  # body too large
        web.get(path),  # method not allowed
    ]
    assert [r.status_code for r in answers] == [400, 400, 413, 405]
    for r in answers:
        assert r.mimetype in ("application/json", "application/problem+json")
        assert r.headers.get("Cache-Control") == "no-store"


def test_discovery_keeps_its_own_caching(web):
    assert web.get("/.well-known/openid-configuration").headers["Cache-Control"] == "public, max-age=300"


# ------------------------------------------------------ logout language link


def test_logout_language_link_carries_no_id_token(app, idp_services, citizen):
    import html
    import re

    from tests.idp.oidc_helpers import authorize_code, exchange

    portal = make_rp(idp_services, post_logout_redirect_uris=["https://portal.example.cn/bye"])
    web = app.test_client()
    q, v = authorize_code(web, portal)
    old = exchange(web, portal, q["code"], v).get_json()["id_token"]
    app.extensions["yiwang"].sessions.end(_sid_of(old), "admin")
    q, v = authorize_code(web, portal)  # a new session: the old hint no longer proves it
    resp = web.get("/logout", query_string={"id_token_hint": old, "state": "bye-1",
                                            "post_logout_redirect_uri": "https://portal.example.cn/bye"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="confirm-logout"' in page
    link = html.unescape(re.search(r'<a class="lang" href="([^"]+)"', page).group(1))
    assert old not in page and "id_token_hint" not in link
    args = query_of(link)
    assert args["client_id"] == portal.client_id and args["state"] == "bye-1"
    # The switched page still knows where to go back to.
    switched = web.get(link)
    assert switched.status_code == 200 and 'id="confirm-logout"' in switched.get_data(as_text=True)


def _sid_of(jwt: str) -> str:
    import base64
    import json

    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["sid"]


# ------------------------------------------------------------- idp.db mode


def test_idp_init_creates_the_sqlite_database_owner_only(embedded_init):
    import os
    import stat

    from idp.cli import main

    home = embedded_init(main, YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB="64")  # noqa: S106 - a cost, not a password
    db = home / "idp.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert os.umask(0o022) == 0o022  # the process umask is put back


# ---------------------------------------------------------------- jwks_uri


def test_jwks_uri_is_refused_with_a_clear_message(idp_services):
    from idp.clients import ClientSpec
    from idp.errors import InvalidInput

    spec = ClientSpec(name="portal", redirect_uris=["https://portal.example.cn/cb"],
                      auth_method="private_key_jwt", jwks_uri="https://portal.example.cn/jwks.json")
    with pytest.raises(InvalidInput, match="jwks_uri is not supported yet; register the keys with --jwks"):
        idp_services.clients.add(spec)
    assert idp_services.clients.list() == []  # nothing half written


# ------------------------------------------------------------ trusted proxies


def _login_ip(application, forwarded: str) -> str:
    web = application.test_client()
    resp = web.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.2"})
    data = {"csrf_token": csrf_of(resp.get_data(as_text=True)), "id_number": ID_NUMBER, "password": PASSWORD}
    resp = web.post("/login", data=data, headers={"X-Forwarded-For": forwarded},
                    environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert resp.status_code == 303
    cookie = web.get_cookie("yw_sso").value
    return application.extensions["yiwang"].sessions.get_by_cookie(cookie, touch=False).ip


def test_trusted_proxy_forwarded_for_is_the_client_address(idp_settings, idp_services, citizen):
    from idp.web import create_app

    assert idp_settings.trusted_proxies == 0
    assert _login_ip(create_app(idp_settings, services=idp_services), "203.0.113.7") == "10.0.0.2"
    behind_lb = create_app(idp_settings.with_(trusted_proxies=1), services=idp_services)
    assert _login_ip(behind_lb, "198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_trusted_proxies_variable(yiwang_env):
    from idp.settings import IdpSettings

    assert IdpSettings.from_env({**yiwang_env, "YIWANG_IDP_TRUSTED_PROXIES": "2"}).trusted_proxies == 2


# ------------------------------------------------------------------ login_hint


def _pushed_login_page(app, rp, browser):
    from tests.idp.oidc_helpers import pkce_pair as _pkce

    _v, challenge = _pkce()
    pushed = app.test_client().post("/par", headers=rp.basic(), data={
        "response_type": "code", "redirect_uri": rp.redirect_uri, "scope": "openid", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256", "login_hint": ID_NUMBER}).get_json()
    return browser.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": pushed["request_uri"]})


def test_pushed_login_hint_prefills_the_login_page_of_that_browser_only(app, rp):
    browser = app.test_client()
    first = _pushed_login_page(app, rp, browser)  # /authorize answers with the form
    for page in (first.get_data(as_text=True), browser.get(login_action(first)).get_data(as_text=True)):
        assert f'value="{ID_NUMBER}"' in page
        assert page.count(ID_NUMBER) == 1  # the input's value, nowhere else (not in the language link)
    assert ID_NUMBER not in first.headers.get("Location", "")
    other = app.test_client().get(login_action(first)).get_data(as_text=True)
    assert ID_NUMBER not in other


def test_front_channel_login_hint_is_neither_prefilled_nor_echoed(app, rp):
    browser = app.test_client()
    resp = browser.get("/authorize", query_string=authorize_params(rp, login_hint=ID_NUMBER))
    assert is_login_page(resp) and ID_NUMBER not in resp.get_data(as_text=True)
    page = browser.get(login_action(resp)).get_data(as_text=True)
    assert ID_NUMBER not in page


def test_login_on_a_flow_of_another_browser_is_not_its_fresh_login(app, idp_services, citizen, rp):
    """The login POST answers the request itself, but only in the browser that started it.

    A flow id pasted into another browser (prompt=login asked for a fresh
    login there) gets no code from that login: the flow starts over, bound to
    the browser that continues it, and a second login there finishes it.
    """
    starter, other = app.test_client(), app.test_client()
    authorize_code(other, rp)  # the other browser has consented to rp before
    page = starter.get("/authorize", query_string=authorize_params(rp, prompt="login"))
    pasted = login_action(page)
    page = other.get(pasted)
    resp = other.post(pasted, data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                    "id_number": ID_NUMBER, "password": PASSWORD})
    assert resp.status_code == 303 and "code=" not in resp.headers["Location"]
    assert urlsplit(resp.headers["Location"]).path == "/login"
    resp = login(other, resp.headers["Location"])  # now bound to this browser: the fresh login counts
    assert resp.headers["Location"].startswith(rp.redirect_uri) and "code" in query_of(resp.headers["Location"])
