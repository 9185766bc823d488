"""The scope policy (idp.oauth.scopes) and each grant's use of it: issue 11 §1, §2, §4, §11.

Regression tests for the security review of f807b44: a client registered
``certs:issue`` obtained ``certs:lookup`` (and anything else it asked for)
through client credentials; the device flow stored and granted the scope as
requested; the device user-code lockout was per SSO session only.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from idp.clients import ClientSpec
from idp.device import DEVICE_CODE_GRANT_TYPE
from idp.models import Client
from idp.oauth.scopes import GRANT_KINDS, decide, grant_scope
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    RP,
    authorize_code,
    csrf_of,
    exchange,
    login,
    make_id,
    make_rp,
    widen_registration,
)

PSB_ASKS = "certs:lookup certs:issue certs:read openid anything:else"


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.fixture
def agency(idp_services) -> RP:
    """Registered as demo-psb is (idp/cli/init.py): client credentials, certs:issue only."""
    client, secret = idp_services.clients.add(ClientSpec(
        name="朝阳分局", client_id="psb-test", grant_types=["client_credentials"], scopes=["certs:issue"]))
    return RP(client.client_id, secret, "")


# ------------------------------------------------------------ the function


def _client(scopes, *, public=False, may_id=False):
    return SimpleNamespace(scopes=list(scopes), is_public=public, may_receive_id_number=may_id)


def test_decide_is_requested_and_registered_and_known_of_the_grants_kind():
    portal = _client(["openid", "profile", "certs:read", "certs:read:BYZS", "certs:lookup", "made:up"])
    d = decide(portal, "authorization_code", "openid profile profile certs:lookup made:up email certs:read:BYZS")
    assert d.granted == ("openid", "profile", "certs:read:BYZS")
    assert d.refused == ("certs:lookup", "made:up", "email")  # agency kind, unknown, unregistered
    agency = _client(["certs:issue", "certs:lookup", "openid"])
    assert decide(agency, "client_credentials", "certs:issue openid certs:lookup").granted == (
        "certs:issue", "certs:lookup")


def test_privileged_scopes_need_the_registration():
    assert decide(_client(["openid", "id_number"]), "authorization_code", "openid id_number").granted == ("openid",)
    assert decide(_client(["openid", "id_number"], may_id=True), "authorization_code",
                  "openid id_number").granted == ("openid", "id_number")
    # an agency scope is nothing for a public client, whatever its registration says
    assert decide(_client(["certs:issue"], public=True), "client_credentials", "certs:issue").granted == ()


def test_a_grant_the_policy_does_not_know_gets_nothing():
    everything = _client(["openid", "profile", "certs:issue"], may_id=True)
    assert decide(everything, "urn:ietf:params:oauth:grant-type:token-exchange", "openid certs:issue").granted == ()
    assert set(GRANT_KINDS) == {"authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT_TYPE,
                                "urn:openid:params:grant-type:ciba"}
    assert GRANT_KINDS["urn:openid:params:grant-type:ciba"] == "citizen"  # issue 13: a citizen approves


def test_invalid_scope_never_echoes_what_is_not_a_scope_token():
    from authlib.oauth2.rfc6749.errors import InvalidScopeError

    with pytest.raises(InvalidScopeError) as e:
        grant_scope(_client(["certs:issue"]), "client_credentials", 'certs:issue "x\\ é', strict=True)
    assert '"x' not in e.value.description and "é" not in e.value.description


# ------------------------------------------------ client credentials (§1)


def test_agency_cannot_get_a_scope_beyond_its_registration_on_the_hot_path(web, agency, flask_reached):
    resp = web.post("/token", data={"grant_type": "client_credentials", "scope": PSB_ASKS}, headers=agency.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope", resp.data
    assert "access_token" not in resp.get_json()
    ok = web.post("/token", data={"grant_type": "client_credentials", "scope": "certs:issue"}, headers=agency.basic())
    assert ok.status_code == 200 and ok.get_json()["scope"] == "certs:issue"
    assert _claims(ok.get_json()["access_token"])["scope"] == "certs:issue"
    assert flask_reached == []


def test_agency_cannot_get_a_scope_beyond_its_registration_through_flask(web, agency, flask_reached):
    # A query string sends /token to the Flask view (idp.web.hotpaths): the same answer.
    resp = web.post("/token?grant_type=client_credentials", data={"scope": PSB_ASKS}, headers=agency.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope", resp.data
    ok = web.post("/token?grant_type=client_credentials", data={"scope": "certs:issue"}, headers=agency.basic())
    assert ok.status_code == 200 and _claims(ok.get_json()["access_token"])["scope"] == "certs:issue"
    assert flask_reached == ["oauth.token", "oauth.token"]


def test_a_portal_gets_no_citizen_scope_through_client_credentials(web, rp):
    # make_rp registers client_credentials with the OIDC scopes: those need a citizen.
    resp = web.post("/token", data={"grant_type": "client_credentials", "scope": "openid profile"},
                    headers=rp.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


# ------------------------------------------- authorization code, refresh


def test_authorization_code_drops_what_the_policy_refuses(web, idp_services, citizen):
    portal = make_rp(idp_services, name="门户", scopes=("openid", "profile"),
                     grant_types=("authorization_code", "refresh_token"))
    widen_registration(idp_services, portal.client_id, ("openid", "profile", "certs:lookup", "made:up"))
    q, v = authorize_code(web, portal, scope="openid profile certs:lookup made:up email")
    tokens = exchange(web, portal, q["code"], v).get_json()
    assert tokens["scope"] == "openid profile"  # RFC 6749 §5.1: what was granted
    assert _claims(tokens["access_token"])["scope"] == "openid profile"


def test_authorization_code_through_par_drops_it_too(web, idp_services, citizen):
    portal = make_rp(idp_services, name="门户", scopes=("openid", "profile"), grant_types=("authorization_code",))
    widen_registration(idp_services, portal.client_id, ("openid", "profile", "certs:lookup"))
    from tests.idp.oidc_helpers import pkce_pair

    verifier, challenge = pkce_pair()
    pushed = web.post("/par", headers=portal.basic(), data={
        "response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
        "scope": "openid profile certs:lookup", "state": "s", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert pushed.status_code == 201, pushed.data
    resp = web.get("/authorize", query_string={"client_id": portal.client_id,
                                               "request_uri": pushed.get_json()["request_uri"]})
    for _ in range(6):
        if resp.status_code == 200 and 'id="login-form"' in resp.get_data(as_text=True):
            resp = login(web, resp)
            continue
        loc = resp.headers["Location"]
        if loc.startswith(portal.redirect_uri):
            break
        if urlsplit(loc).path == "/consent":
            page = web.get(loc).get_data(as_text=True)
            assert "scope_certs" not in page
            resp = web.post(loc, data={"csrf_token": csrf_of(page), "decision": "allow"})
        else:
            resp = web.get(loc)
    code = dict(p.split("=", 1) for p in urlsplit(resp.headers["Location"]).query.split("&"))["code"]
    tokens = exchange(web, portal, code, verifier).get_json()
    assert tokens["scope"] == "openid profile"


def test_refresh_cannot_widen_and_a_refused_scope_leaves_the_token_usable(web, rp, citizen):
    q, v = authorize_code(web, rp, scope="openid profile")
    rt = exchange(web, rp, q["code"], v).get_json()["refresh_token"]
    bad = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                   "scope": "openid profile certs:lookup"}, headers=rp.basic())
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_scope"
    narrower = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt, "scope": "openid"},
                        headers=rp.basic())
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "openid"
    rt2 = narrower.get_json()["refresh_token"]
    wider = web.post("/token", data={"grant_type": "refresh_token", "scope": "openid profile", "refresh_token": rt2},
                     headers=rp.basic())
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"  # RFC 6749 §6
    # neither refusal consumed the token (a retry would otherwise revoke the family as reuse)
    after = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt2}, headers=rp.basic())
    assert after.status_code == 200 and after.get_json()["scope"] == "openid"


def test_refresh_follows_a_narrowed_registration(web, rp, citizen, app, idp_services):
    q, v = authorize_code(web, rp, scope="openid profile email")
    rt = exchange(web, rp, q["code"], v).get_json()["refresh_token"]
    _narrow(app, idp_services, rp.client_id, ["openid", "profile"])
    again = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=rp.basic())
    assert again.status_code == 200 and again.get_json()["scope"] == "openid profile"


def _narrow(app, idp_services, client_id: str, scopes: list[str]) -> None:
    with idp_services.db.session() as s:
        s.execute(sa.update(Client).where(Client.client_id == client_id).values(scopes=scopes))
    app.extensions["yiwang"].provider.forget_client(client_id)


# --------------------------------------------------------- device flow (§2)


@pytest.fixture
def kiosk(idp_services, citizen) -> RP:
    scopes = ("openid", "profile", "phone", "certs:read", "certs:read:BYZS")
    kiosk = make_rp(idp_services, name="政务自助终端", grant_types=(DEVICE_CODE_GRANT_TYPE, "refresh_token"),
                    scopes=scopes)
    widen_registration(idp_services, kiosk.client_id, (*scopes, "certs:lookup"))  # never grantable here
    return kiosk


def _device_page(app, user_code: str, lang: str = "zh-CN"):
    phone = app.test_client()
    start = phone.get("/device", query_string={"user_code": user_code})
    page = phone.get(login(phone, start.headers["Location"]).headers["Location"] + f"&lang={lang}")
    return phone, page


def test_device_authorization_refuses_what_the_client_may_not_have(web, kiosk):
    for scope in ("openid certs:lookup", "openid email", "openid anything:else", "openid id_number"):
        resp = web.post("/device/authorize", data={"scope": scope}, headers=kiosk.basic())
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope", scope


def test_device_page_names_each_scope_and_grants_what_it_showed(web, kiosk, app, idp_services):
    data = web.post("/device/authorize", data={"scope": "openid profile phone certs:read:BYZS"},
                    headers=kiosk.basic()).get_json()
    # The registration is narrowed after the kiosk asked: the page and the grant follow it.
    _narrow(app, idp_services, kiosk.client_id, ["openid", "profile", "certs:read:BYZS"])
    phone, page = _device_page(app, data["user_code"], "en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "scope_" not in html
    assert "Your name" in html and "Read your BYZS certificates" in html and "phone number" not in html
    zh = phone.get("/device", query_string={"user_code": data["user_code"], "lang": "zh-CN"}).get_data(as_text=True)
    assert "姓名" in zh and "BYZS 类证照" in zh and "scope_" not in zh
    assert phone.post("/device", data={"csrf_token": csrf_of(html), "user_code": data["user_code"],
                                       "decision": "approve"}).status_code == 200
    tokens = web.post("/token", data={"grant_type": DEVICE_CODE_GRANT_TYPE, "device_code": data["device_code"]},
                      headers=kiosk.basic()).get_json()
    assert tokens["scope"] == "openid profile certs:read:BYZS"
    assert _claims(tokens["access_token"])["scope"] == "openid profile certs:read:BYZS"


# ------------------------------------------------ user-code lockout (§11)


def _miss_until_locked(phone, n: int) -> None:
    for _ in range(n):
        assert phone.get("/device", query_string={"user_code": "BCDF-GHJK"}).status_code == 400
    assert phone.get("/device", query_string={"user_code": "BCDF-GHJK"}).status_code == 429


def _signed_in_phone(app, *, ip: str, id_number: str = ID_NUMBER):  # noqa: F405
    phone = app.test_client()
    phone.environ_base["REMOTE_ADDR"] = ip
    start = phone.get("/device")
    login(phone, start.headers["Location"], id_number=id_number)
    return phone


def test_a_new_session_does_not_reset_the_user_code_lockout(web, kiosk, app):
    data = web.post("/device/authorize", data={"scope": "openid"}, headers=kiosk.basic()).get_json()
    _miss_until_locked(_signed_in_phone(app, ip="198.51.100.7"), 10)
    # Sign in again (a new SSO session, a new browser), even from another address: the account is locked.
    again = _signed_in_phone(app, ip="203.0.113.9")
    assert again.get("/device", query_string={"user_code": data["user_code"]}).status_code == 429


def test_new_accounts_from_the_same_address_do_not_reset_it(web, kiosk, app, idp_services):
    data = web.post("/device/authorize", data={"scope": "openid"}, headers=kiosk.basic()).get_json()
    ip = "198.51.100.8"
    for i in range(5):
        number = make_id(f"11010519800101{i:03d}")
        idp_services.accounts.add(number, f"甲{i}", PASSWORD)  # noqa: F405
        phone = _signed_in_phone(app, ip=ip, id_number=number)
        for _ in range(10):
            assert phone.get("/device", query_string={"user_code": "BCDF-GHJK"}).status_code in (400, 429)
    other = _signed_in_phone(app, ip=ip)
    assert other.get("/device", query_string={"user_code": data["user_code"]}).status_code == 429
    # elsewhere the same citizen is not locked: the lock is the address's, not global
    fresh = _signed_in_phone(app, ip="192.0.2.44")
    assert fresh.get("/device", query_string={"user_code": data["user_code"]}).status_code == 200
