"""Staff accounts and the staff sign-in of a staff portal (issue 13 §1, "acting for")."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from idp.clients import ClientSpec
from idp.errors import Conflict, InvalidInput, NotFound
from idp.models import AuditEvent
from idp.staff.accounts import StaffService
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP, authorize_code, csrf_of, pkce_pair, query_of

STAFF_PASSWORD = "counter-clerk password 1"  # noqa: S105 - test account


def make_staff(services: Any, username: str = "clerk.wang", *, kind: str = "clerk",
               office: str = "朝阳区政务服务中心 3 号窗口", name: str = "王芳") -> tuple[Any, pyotp.TOTP]:
    view, enrolment = StaffService.of(services).add(username, name, kind, office, STAFF_PASSWORD)
    return view, pyotp.TOTP(enrolment.secret)


def make_portal(services: Any, **kw: Any) -> RP:
    redirect = kw.pop("redirect_uri", "https://counter.example.cn/cb")
    spec = ClientSpec(name=kw.pop("name", "窗口受理系统"), redirect_uris=[redirect],
                      grant_types=kw.pop("grant_types", ("authorization_code",)),
                      scopes=("openid", "profile"), audience="staff", first_party=True, **kw)
    client, secret = services.clients.add(spec)
    return RP(client.client_id, secret, redirect)


def authorize_params(portal: RP, **extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    return {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
            "scope": "openid profile", "state": "s-1", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}, verifier


def staff_sign_in(web: Any, portal: RP, totp: pyotp.TOTP, *, username: str = "clerk.wang",
                  code: str | None = None, extra: dict[str, str] | None = None) -> tuple[Any, str]:
    """/authorize → /staff/login → POST; the last response and the PKCE verifier."""
    params, verifier = authorize_params(portal, **(extra or {}))
    resp = web.get("/authorize", query_string=params)
    assert resp.status_code == 303, resp.data[:300]
    where = resp.headers["Location"]
    assert urlsplit(where).path == "/staff/login"
    page = web.get(where)
    assert page.status_code == 200 and 'id="staff-login-form"' in page.get_data(as_text=True)
    resp = web.post(where, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "username": username,
                                 "password": STAFF_PASSWORD, "code": code if code is not None else totp.now()})
    return resp, verifier


def redeem(web: Any, portal: RP, location: str, verifier: str) -> dict[str, Any]:
    q = query_of(location)
    assert q.get("code"), location
    resp = web.post("/token", data={"grant_type": "authorization_code", "code": q["code"],
                                    "redirect_uri": portal.redirect_uri, "code_verifier": verifier},
                    headers=portal.basic())
    assert resp.status_code == 200, resp.data
    return resp.get_json()


def id_claims(app: Any, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(app.extensions["yiwang"].provider.tokens.jwks())
    return dict(jose_jwt.decode(id_token, keys, algorithms=["ES256", "RS256"]).claims)


def audit_kinds(services: Any) -> list[str]:
    services.audit.flush()
    with services.db.session() as s:
        return list(s.scalars(sa.select(AuditEvent.kind).order_by(AuditEvent.seq)))


# ------------------------------------------------------------------ accounts


def test_an_account_needs_valid_fields_and_a_unique_username(idp_services: Any) -> None:
    staff = StaffService.of(idp_services)
    for bad in (dict(username="x"), dict(username="Has Space"), dict(kind="boss"), dict(office=""),
                dict(office="a\nb"), dict(password="short"), dict(name="")):  # noqa: S106
        args = {"username": "agent.li", "name": "李强", "kind": "agent", "office": "12345 热线", "password": STAFF_PASSWORD}
        args.update(bad)
        with pytest.raises(InvalidInput):
            staff.add(args["username"], args["name"], args["kind"], args["office"], args["password"])
    view, _ = make_staff(idp_services, "Agent.Li", kind="agent", office="12345 热线")
    assert view.username == "agent.li" and view.sub.startswith("staff:") and view.kind == "agent"
    with pytest.raises(Conflict):
        make_staff(idp_services, "agent.li")
    with pytest.raises(NotFound):
        staff.set_disabled("nobody.here")
    assert [v.username for v in staff.list()] == ["agent.li"]


def test_sign_in_needs_password_and_a_fresh_totp_code(idp_services: Any) -> None:
    staff = StaffService.of(idp_services)
    view, totp = make_staff(idp_services)
    assert staff.login("clerk.wang", "wrong password!!", totp.now()).status == "invalid"
    assert staff.login("clerk.wang", STAFF_PASSWORD, "000000" if totp.now() != "000000" else "111111").status == "invalid"
    assert staff.login("nobody.here", STAFF_PASSWORD, totp.now()).status == "invalid"
    code = totp.now()
    ok = staff.login("CLERK.wang ", STAFF_PASSWORD, code)
    assert ok.ok and ok.staff is not None and ok.staff.sub == view.sub
    assert staff.login("clerk.wang", STAFF_PASSWORD, code).status == "invalid"  # a code works once
    kinds = audit_kinds(idp_services)
    assert kinds.count("staff.login_failure") == 4 and kinds.count("staff.login") == 1 and "staff.created" in kinds


def test_a_disabled_account_cannot_sign_in_and_a_reset_replaces_the_authenticator(idp_services: Any) -> None:
    staff = StaffService.of(idp_services)
    _, old = make_staff(idp_services)
    staff.set_disabled("clerk.wang", reason="left the office")
    assert staff.login("clerk.wang", STAFF_PASSWORD, old.now()).status == "invalid"
    staff.set_disabled("clerk.wang", False, reason="back")
    enrolment = staff.reset_second_factor("clerk.wang", reason="lost phone")
    new = pyotp.TOTP(enrolment.secret)
    if old.now() != new.now():
        assert staff.login("clerk.wang", STAFF_PASSWORD, old.now()).status == "invalid"
    assert staff.login("clerk.wang", STAFF_PASSWORD, new.now()).ok
    kinds = audit_kinds(idp_services)
    assert {"staff.disabled", "staff.enabled", "staff.second_factor_reset"} <= set(kinds)


def test_failed_sign_ins_lock_the_username_whether_or_not_it_exists(idp_services: Any) -> None:
    staff = StaffService.of(idp_services)
    _, totp = make_staff(idp_services)
    for name in ("clerk.wang", "ghost.user"):
        for _ in range(5):
            assert staff.login(name, "wrong password!!", "123456", ip="198.51.100.7").status == "invalid"
        result = staff.login(name, STAFF_PASSWORD, totp.now(), ip="198.51.100.7")
        assert result.status == "throttled" and result.retry_after > 0
    assert "staff.login_locked" in audit_kinds(idp_services)


# ------------------------------------------------------------- registration


def test_a_staff_portal_gets_no_refresh_tokens_nor_the_device_grant(idp_services: Any) -> None:
    for grants in (("authorization_code", "refresh_token"),
                   ("authorization_code", "urn:ietf:params:oauth:grant-type:device_code"), ("client_credentials",)):
        with pytest.raises(InvalidInput):
            make_portal(idp_services, grant_types=grants)
    with pytest.raises(InvalidInput):
        idp_services.clients.add(ClientSpec(name="x", redirect_uris=["https://x.example.cn/cb"], audience="citizens"))
    portal = make_portal(idp_services)
    assert idp_services.clients.get(portal.client_id).attributes["audience"] == "staff"


# ------------------------------------------------------------ staff sign-in


def test_a_staff_portal_signs_in_staff_with_their_own_subject_and_claims(app: Any, web: Any, idp_services: Any) -> None:
    view, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    resp, verifier = staff_sign_in(web, portal, totp)
    assert resp.status_code == 303 and resp.headers["Location"].startswith(portal.redirect_uri)
    assert query_of(resp.headers["Location"])["state"] == "s-1"
    tokens = redeem(web, portal, resp.headers["Location"], verifier)
    assert "refresh_token" not in tokens
    claims = id_claims(app, tokens["id_token"])
    assert claims["sub"] == view.sub and claims["sub"].startswith("staff:")
    assert claims["staff_kind"] == "clerk" and claims["office"] == "朝阳区政务服务中心 3 号窗口"
    assert claims["name"] == "王芳" and claims["aud"] == portal.client_id and claims["nonce"] == "n-1"
    assert claims["amr"] == ["pwd", "otp"] and "sid" not in claims
    assert set(audit_kinds(idp_services)) >= {"staff.login", "staff.authorized", "token.grant"}


def test_the_staff_session_answers_the_next_request_and_prompt_login_asks_again(web: Any, idp_services: Any) -> None:
    _, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    hotline = make_portal(idp_services, name="热线系统", redirect_uri="https://hotline.example.cn/cb")
    resp, _ = staff_sign_in(web, portal, totp)
    assert resp.headers["Location"].startswith(portal.redirect_uri)
    params, _v = authorize_params(hotline)
    resp = web.get("/authorize", query_string=params)
    resp = web.get(resp.headers["Location"])
    assert resp.status_code == 302 and resp.headers["Location"].startswith(hotline.redirect_uri)
    assert "code" in query_of(resp.headers["Location"])
    params, _v = authorize_params(hotline, prompt="login")
    resp = web.get(web.get("/authorize", query_string=params).headers["Location"])
    assert resp.status_code == 200 and 'id="staff-login-form"' in resp.get_data(as_text=True)


def test_prompt_none_without_a_staff_session_is_login_required(web: Any, idp_services: Any) -> None:
    portal = make_portal(idp_services)
    params, _ = authorize_params(portal, prompt="none")
    resp = web.get("/authorize", query_string=params)  # answered at once: nobody is signed in at all
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["error"] == "login_required" and q["state"] == "s-1"


def test_prompt_none_with_only_a_citizen_session_is_login_required(web: Any, idp_services: Any, citizen: Any,
                                                                   rp: RP) -> None:
    authorize_code(web, rp)
    portal = make_portal(idp_services)
    params, _ = authorize_params(portal, prompt="none")
    resp = web.get(web.get("/authorize", query_string=params).headers["Location"])
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["error"] == "login_required" and q["state"] == "s-1"


def test_a_citizen_session_never_signs_in_to_a_staff_portal(web: Any, idp_services: Any, citizen: Any,
                                                            rp: RP) -> None:
    authorize_code(web, rp)  # the citizen is signed in (SSO cookie)
    portal = make_portal(idp_services)
    params, _ = authorize_params(portal)
    resp = web.get("/authorize", query_string=params)
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/staff/login"
    page = web.get(resp.headers["Location"])
    assert page.status_code == 200 and 'id="staff-login-form"' in page.get_data(as_text=True)


def test_wrong_credentials_csrf_and_another_browser_are_refused(app: Any, web: Any, idp_services: Any) -> None:
    _, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    params, _ = authorize_params(portal)
    where = web.get("/authorize", query_string=params).headers["Location"]
    page = web.get(where)
    token = csrf_of(page.get_data(as_text=True))
    resp = web.post(where, data={"csrf_token": token, "username": "clerk.wang", "password": "nope nope nope",
                                 "code": totp.now()})
    assert resp.status_code == 401 and "wrong" in resp.get_data(as_text=True).lower() or resp.status_code == 401
    resp = web.post(where, data={"csrf_token": token, "username": "", "password": "", "code": ""})
    assert resp.status_code == 400
    resp = web.post(where, data={"username": "clerk.wang", "password": STAFF_PASSWORD, "code": totp.now()})
    assert resp.status_code == 400  # no CSRF token
    other = app.test_client()
    assert other.get(where).status_code == 400  # bound to the browser that opened it
    assert web.get("/staff/login?flow=unknown").status_code == 400


def test_a_disabled_staff_member_gets_no_code_from_a_live_session(web: Any, idp_services: Any) -> None:
    _, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    staff_sign_in(web, portal, totp)
    StaffService.of(idp_services).set_disabled("clerk.wang", reason="left")
    params, _ = authorize_params(portal)
    resp = web.get(web.get("/authorize", query_string=params).headers["Location"])
    assert resp.status_code == 400 and "code=" not in resp.headers.get("Location", "")


def test_staff_tokens_time_out_with_the_id_token_lifetime(app: Any, web: Any, idp_services: Any) -> None:
    _, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    resp, verifier = staff_sign_in(web, portal, totp)
    claims = id_claims(app, redeem(web, portal, resp.headers["Location"], verifier)["id_token"])
    assert 0 < claims["exp"] - int(time.time()) <= app.extensions["yiwang"].settings.id_token_seconds + 5


def test_staff_sign_out_ends_the_staff_session(web: Any, idp_services: Any) -> None:
    _, totp = make_staff(idp_services)
    portal = make_portal(idp_services, post_logout_redirect_uris=["https://counter.example.cn/bye"])
    staff_sign_in(web, portal, totp)
    resp = web.get("/staff/logout", query_string={"client_id": portal.client_id, "state": "x1",
                                                   "post_logout_redirect_uri": "https://counter.example.cn/bye"})
    assert resp.status_code == 303 and resp.headers["Location"] == "https://counter.example.cn/bye?state=x1"
    params, _ = authorize_params(portal)
    page = web.get(web.get("/authorize", query_string=params).headers["Location"])
    assert page.status_code == 200 and 'id="staff-login-form"' in page.get_data(as_text=True)  # asked again
    other = web.get("/staff/logout", query_string={"client_id": portal.client_id,
                                                    "post_logout_redirect_uri": "https://evil.example/x"})
    assert other.status_code == 200 and 'id="staff-logout-message"' in other.get_data(as_text=True)


def test_a_staff_access_token_introspects_as_the_staff_member_and_userinfo_is_for_citizens(
        web: Any, idp_services: Any) -> None:
    view, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    resp, verifier = staff_sign_in(web, portal, totp)
    access = redeem(web, portal, resp.headers["Location"], verifier)["access_token"]
    intro = web.post("/introspect", data={"token": access}, headers=portal.basic()).get_json()
    assert intro["active"] and intro["sub"] == view.sub and intro["client_id"] == portal.client_id
    info = web.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert info.status_code in (401, 403) and "sub" not in (info.get_json() or {})


def test_the_audit_names_only_existing_staff_accounts(idp_services: Any) -> None:
    staff = StaffService.of(idp_services)
    make_staff(idp_services)
    staff.login("clerk.wang", "wrong password!!", "123456")
    staff.login("my-secret-pass", "x", "123456")  # a password typed into the username field
    idp_services.audit.flush()
    with idp_services.db.session() as s:
        subjects = list(s.scalars(sa.select(AuditEvent.subject).where(AuditEvent.kind == "staff.login_failure")
                                  .order_by(AuditEvent.seq)))
    assert subjects == ["staff:clerk.wang", "staff:?"]


def test_discovery_lists_the_staff_claims(web: Any) -> None:
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert {"preferred_username", "staff_kind", "office"} <= set(doc["claims_supported"])
