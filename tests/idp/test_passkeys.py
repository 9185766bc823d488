"""Issue 13 §2: passkeys through the pages' JSON endpoints, with a software authenticator (benchmarks.softauthn).

Registration, discoverable sign-in (no ID number typed), step-up by acr_values,
a client's acr floor, and the refusals: replayed challenge, another browser's
challenge, no user verification, sign-count regression (blocks, audited), a
forged answer (blocks nothing), removing the last way in.
"""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks.softauthn import SoftAuthenticator
from idp.models import AuditEvent, Citizen
from idp.oauth.discovery import ACR_2FA, ACR_PASSKEY, ACR_PASSWORD
from idp.passkeys.models import PasskeyCredential
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ISSUER,
    authorize_code,
    csrf_of,
    exchange,
    is_login_page,
    make_rp,
    pkce_pair,
    query_of,
)

_DATA = re.compile(r'data-(options-url|submit-url|csrf)="([^"]*)"')


_SECTION = re.compile(r'<section[^>]*id="passkey-(?:sign-in|add)"[^>]*>', re.S)


def _box(html: str) -> dict[str, str]:
    section = _SECTION.search(html)
    assert section, html[:2000]
    found = {k: unescape(v) for k, v in _DATA.findall(section.group(0))}
    assert {"options-url", "submit-url", "csrf"} <= set(found), html[:2000]
    return found


def _soft(**kw) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ISSUER, rp_id=urlsplit(ISSUER).hostname, **kw)


def _register(web, soft, name="我的手机"):
    box = _box(web.get("/account").get_data(as_text=True))
    options = web.post(box["options-url"], json={"csrf_token": box["csrf"]})
    assert options.status_code == 200, options.get_json()
    opts = options.get_json()
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    assert opts["attestation"] == "none"
    done = web.post(box["submit-url"], json={"csrf_token": box["csrf"], "credential": soft.create(opts), "name": name})
    assert done.status_code == 200, done.get_json()
    return done


def _params(rp, **extra):
    verifier, challenge = pkce_pair()
    return verifier, {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
                      "scope": "openid profile", "state": "st", "nonce": "n", "code_challenge": challenge,
                      "code_challenge_method": "S256", **extra}


def _assert_with(web, page_html, soft, **kw):
    box = _box(page_html)
    options = web.post(box["options-url"], json={"csrf_token": box["csrf"]})
    assert options.status_code == 200, options.get_json()
    assertion = soft.get(options.get_json(), **kw)
    return box, options.get_json(), assertion, web.post(box["submit-url"], json={"csrf_token": box["csrf"],
                                                                                  "credential": assertion})


def _follow_to_code(web, rp, resp):
    for _ in range(6):
        loc = resp.headers["Location"]
        if loc.startswith(rp.redirect_uri):
            return query_of(loc)
        if urlsplit(loc).path == "/consent":
            page = web.get(loc)
            resp = web.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
        else:
            resp = web.get(loc)
    raise AssertionError("no code")


def _id_token(web, rp, code, verifier):
    token = exchange(web, rp, code, verifier)
    assert token.status_code == 200, token.get_json()
    part = token.get_json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _signed_in_with_password(web, rp):
    query, _ = authorize_code(web, rp)
    assert "code" in query


def test_register_then_sign_in_without_typing_the_id_number(app, web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    account = web.get("/account").get_data(as_text=True)
    assert "我的手机" in account and 'id="passkey-list"' in account
    with idp_services.db.session() as s:
        row = s.scalars(sa.select(PasskeyCredential)).one()
        assert row.citizen_id == citizen.id and row.attestation_format == "none" and not row.backup_eligible
    # A new browser: the login page, the passkey, nothing typed.
    other = app.test_client()
    verifier, params = _params(rp)
    page = other.get("/authorize", query_string=params)
    assert is_login_page(page)
    _, opts, _, done = _assert_with(other, page.get_data(as_text=True), soft)
    assert opts["allowCredentials"] == [] and opts["userVerification"] == "required"  # discoverable
    assert done.status_code == 200, done.get_json()
    query = _follow_to_code(other, rp, other.get(done.get_json()["next"]))
    claims = _id_token(other, rp, query["code"], verifier)
    assert claims["acr"] == ACR_PASSKEY
    assert claims["amr"] == ["hwk", "user", "mfa"]


def test_a_replayed_assertion_and_another_browsers_challenge_are_refused(app, web, citizen, rp):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    other = app.test_client()
    page = other.get("/login").get_data(as_text=True)
    box, _, assertion, done = _assert_with(other, page, soft)
    assert done.status_code == 200, done.get_json()
    fresh = _box(other.get("/login").get_data(as_text=True))  # the session changed the CSRF binding
    again = other.post(fresh["submit-url"], json={"csrf_token": fresh["csrf"], "credential": assertion})
    assert again.status_code == 401 and again.get_json()["error"] == "challenge"
    # Options fetched by one browser, the answer posted from another (a phishing relay).
    third, fourth = app.test_client(), app.test_client()
    page3 = third.get("/login").get_data(as_text=True)
    box3 = _box(page3)
    opts = third.post(box3["options-url"], json={"csrf_token": box3["csrf"]}).get_json()
    page4 = fourth.get("/login").get_data(as_text=True)
    relayed = fourth.post(_box(page4)["submit-url"], json={"csrf_token": _box(page4)["csrf"],
                                                          "credential": soft.get(opts)})
    assert relayed.status_code == 401 and relayed.get_json()["error"] == "challenge", relayed.get_json()


def test_without_user_verification_nobody_is_signed_in(app, web, citizen, rp):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    soft.user_verifying = False
    other = app.test_client()
    _, _, _, done = _assert_with(other, other.get("/login").get_data(as_text=True), soft)
    assert done.status_code == 401 and done.get_json()["error"] == "no_user_verification"
    assert other.get("/account").status_code == 303  # not signed in


def test_a_sign_count_regression_blocks_the_passkey_and_is_audited(app, web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    b = app.test_client()
    assert _assert_with(b, b.get("/login").get_data(as_text=True), soft, count=5)[3].status_code == 200
    clone = app.test_client()
    _, _, _, done = _assert_with(clone, clone.get("/login").get_data(as_text=True), soft, count=3)
    assert done.status_code == 401 and done.get_json()["error"] == "blocked"
    # Blocked for good, whatever the counter says next.
    later = app.test_client()
    _, _, _, again = _assert_with(later, later.get("/login").get_data(as_text=True), soft, count=50)
    assert again.status_code == 401 and again.get_json()["error"] == "blocked"
    with idp_services.db.session() as s:
        row = s.scalars(sa.select(PasskeyCredential)).one()
        assert row.blocked_reason == "sign_count_regression" and row.sign_count == 5
        events = [e for e in s.scalars(sa.select(AuditEvent)).all() if e.kind == "passkey.blocked"]
    assert len(events) == 1 and events[0].detail["reason_code"] == "sign_count_regression"
    assert "blocked: it looked copied" in web.get("/account?lang=en").get_data(as_text=True)
    assert "已停用：疑似被复制" in web.get("/account?lang=zh-CN").get_data(as_text=True)


def test_a_forged_answer_with_a_low_counter_blocks_nothing(app, web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    b = app.test_client()
    assert _assert_with(b, b.get("/login").get_data(as_text=True), soft, count=9)[3].status_code == 200
    forger = _soft(credential_id=soft.credential_id, key=ec.generate_private_key(ec.SECP256R1()))
    forger.user_handle = soft.user_handle
    c = app.test_client()
    _, _, _, done = _assert_with(c, c.get("/login").get_data(as_text=True), forger, count=1)
    assert done.status_code == 401 and done.get_json()["error"] == "invalid"
    with idp_services.db.session() as s:
        assert s.scalars(sa.select(PasskeyCredential)).one().blocked_at is None


def test_removing_the_last_way_in_is_refused(web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    _register(web, _soft())
    with idp_services.db.session() as s:
        row_id = s.scalars(sa.select(PasskeyCredential.id)).one()
        s.execute(sa.update(Citizen).where(Citizen.id == citizen.id).values(password_hash=None))  # passkey only
    csrf = csrf_of(web.get("/account").get_data(as_text=True))
    refused = web.post(f"/account/passkeys/{row_id}/remove", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert 'id="passkey-last-factor"' in refused.get_data(as_text=True)
    with idp_services.db.session() as s:
        assert s.scalars(sa.select(PasskeyCredential)).one() is not None
    _register(web, _soft(), name="second")  # a second passkey: now the first may go
    assert web.post(f"/account/passkeys/{row_id}/remove", data={"csrf_token": csrf}).status_code == 303
    assert web.post("/account/passkeys/999/remove", data={"csrf_token": "bad"}).status_code == 400  # CSRF


def test_rename_keeps_to_the_citizens_own_passkeys(app, web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    _register(web, _soft())
    with idp_services.db.session() as s:
        row_id = s.scalars(sa.select(PasskeyCredential.id)).one()
    csrf = csrf_of(web.get("/account").get_data(as_text=True))
    assert web.post(f"/account/passkeys/{row_id}/rename", data={"csrf_token": csrf, "name": "办公室电脑"}
                    ).status_code == 303
    assert "办公室电脑" in web.get("/account").get_data(as_text=True)


def test_step_up_from_password_to_passkey_through_acr_values(web, citizen, rp):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    verifier, params = _params(rp, acr_values=ACR_PASSKEY)
    resp = web.get("/authorize", query_string=params)
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login/passkey"
    page = web.get(resp.headers["Location"])
    assert page.status_code == 200
    zh = page.get_data(as_text=True)
    assert "使用通行密钥确认" in zh and "Confirm with your passkey" not in zh
    assert "Confirm with your passkey" in web.get(resp.headers["Location"] + "&lang=en").get_data(as_text=True)
    web.get(resp.headers["Location"] + "&lang=zh-CN")  # back to Chinese for the rest
    _, opts, _, done = _assert_with(web, page.get_data(as_text=True), soft)
    assert [c["id"] for c in opts["allowCredentials"]] == [base64.urlsafe_b64encode(soft.credential_id)
                                                           .rstrip(b"=").decode()]
    assert done.status_code == 200, done.get_json()
    query = _follow_to_code(web, rp, web.get(done.get_json()["next"]))
    assert _id_token(web, rp, query["code"], verifier)["acr"] == ACR_PASSKEY
    # prompt=none cannot step up: interaction_required at the client.
    _, params = _params(rp, acr_values=ACR_PASSKEY, prompt="none")
    assert "code" in query_of(web.get("/authorize", query_string=params).headers["Location"])  # already passkey


def test_step_up_refuses_a_passkey_without_user_verification(web, citizen, rp):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    _, params = _params(rp, acr_values=ACR_PASSKEY)
    loc = web.get("/authorize", query_string=params).headers["Location"]
    soft.user_verifying = False
    _, _, _, done = _assert_with(web, web.get(loc).get_data(as_text=True), soft)
    assert done.status_code == 401 and done.get_json()["error"] == "no_user_verification"
    _, params = _params(rp, acr_values=ACR_PASSKEY, prompt="none")
    assert query_of(web.get("/authorize", query_string=params).headers["Location"])["error"] == \
        "interaction_required"


def test_a_client_that_requires_a_passkey(web, citizen, idp_services):
    strict = make_rp(idp_services, name="不动产登记", require_acr=ACR_PASSKEY)
    _signed_in_with_password(web, make_rp(idp_services))
    _, params = _params(strict)
    resp = web.get("/authorize", query_string=params)
    assert query_of(resp.headers["Location"])["error"] == "unmet_authentication_requirements"
    _register(web, _soft())
    resp = web.get("/authorize", query_string=params)
    assert urlsplit(resp.headers["Location"]).path == "/login/passkey"


def test_discovery_lists_the_levels_in_order(web):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["acr_values_supported"][:3] == [ACR_PASSWORD, ACR_2FA, ACR_PASSKEY]


def test_adding_a_passkey_later_in_a_session_needs_the_password(web, citizen, rp, app):
    _signed_in_with_password(web, rp)
    runtime = app.extensions["yiwang"]
    later = runtime.provider.tokens.now() + 3600
    runtime.provider.tokens.now = lambda: later
    box = _box(web.get("/account").get_data(as_text=True))
    refused = web.post(box["options-url"], json={"csrf_token": box["csrf"]})
    assert refused.status_code == 403 and refused.get_json()["error"] == "password"
    from tests.idp.oidc_helpers import PASSWORD

    ok = web.post(box["options-url"], json={"csrf_token": box["csrf"], "current_password": PASSWORD})
    assert ok.status_code == 200
    assert web.post(box["options-url"], json={"csrf_token": "nope"}).status_code == 400


def test_login_page_offers_a_passkey(web):
    html = web.get("/login").get_data(as_text=True)
    assert 'id="passkey-sign-in"' in html and "passkeys.js" in html and "<script>" not in html


def test_an_agency_policy_refuses_unattested_authenticators(app_with, citizen, rp, idp_services):
    strict = app_with(passkey_attestation_formats=("packed",)).test_client()
    _signed_in_with_password(strict, rp)
    box = _box(strict.get("/account").get_data(as_text=True))
    opts = strict.post(box["options-url"], json={"csrf_token": box["csrf"]}).get_json()
    assert opts["attestation"] == "direct"
    refused = strict.post(box["submit-url"], json={"csrf_token": box["csrf"], "credential": _soft().create(opts)})
    assert refused.status_code == 400 and refused.get_json()["error"] == "attestation_required"
    with idp_services.db.session() as s:
        assert s.scalars(sa.select(PasskeyCredential)).all() == []
        assert "passkey.refused" in [e.kind for e in s.scalars(sa.select(AuditEvent)).all()]


def test_a_local_page_can_ask_the_signed_in_citizen_for_a_passkey(app, web, citizen, rp):
    from idp.web.views_passkeys import step_up_url

    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    with app.test_request_context("/"):
        url = step_up_url("/account")
    page = web.get(url)
    assert page.status_code == 200
    _, _, _, done = _assert_with(web, page.get_data(as_text=True), soft)
    assert done.status_code == 200 and done.get_json()["next"] == "/account"
    assert web.get(url).status_code == 400  # used once
    with app.test_request_context("/"):
        url = step_up_url("/account")
    assert app.test_client().get(url).status_code == 303  # a browser without the session: to the login page


def test_a_changed_backup_eligibility_is_a_clone_signal(app, web, citizen, rp, idp_services):
    _signed_in_with_password(web, rp)
    soft = _soft()
    _register(web, soft)
    soft.backup_eligible = True  # fixed when the credential was made (WebAuthn §6.1.3)
    b = app.test_client()
    _, _, _, done = _assert_with(b, b.get("/login").get_data(as_text=True), soft)
    assert done.status_code == 401 and done.get_json()["error"] == "blocked"
    with idp_services.db.session() as s:
        assert s.scalars(sa.select(PasskeyCredential)).one().blocked_reason == "backup_eligibility_changed"


def test_the_apps_origin_is_accepted_only_when_configured(app_with, citizen, rp):
    app_origin = "android:apk-key-hash:" + "A" * 43
    plain = app_with().test_client()
    _signed_in_with_password(plain, rp)
    box = _box(plain.get("/account").get_data(as_text=True))
    opts = plain.post(box["options-url"], json={"csrf_token": box["csrf"]}).get_json()
    refused = plain.post(box["submit-url"], json={"csrf_token": box["csrf"],
                                                  "credential": _soft().create(opts, origin=app_origin)})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid"
    with_app = app_with(passkey_extra_origins=(app_origin,)).test_client()
    _signed_in_with_password(with_app, rp)
    box = _box(with_app.get("/account").get_data(as_text=True))
    opts = with_app.post(box["options-url"], json={"csrf_token": box["csrf"]}).get_json()
    ok = with_app.post(box["submit-url"], json={"csrf_token": box["csrf"],
                                                "credential": _soft().create(opts, origin=app_origin)})
    assert ok.status_code == 200, ok.get_json()
