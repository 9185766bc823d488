"""The account page: sessions, sign out everywhere, revoking consent."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, authorize_code, csrf_of, exchange, pkce_pair, query_of


def _introspect(web, rp, token):
    return web.post("/introspect", data={"token": token}, headers=rp.basic()).get_json()["active"]


def test_account_requires_login(web):
    resp = web.get("/account")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/login")


def test_revoking_consent_revokes_tokens_and_asks_again(web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile offline_access")
    tokens = exchange(web, rp, q["code"], v).get_json()
    page = web.get("/account")
    html = page.get_data(as_text=True)
    assert "办事大厅" in html
    assert ID_NUMBER not in html
    resp = web.post(f"/account/consents/{rp.client_id}/revoke", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 303
    assert not _introspect(web, rp, tokens["refresh_token"])
    assert not _introspect(web, rp, tokens["access_token"])
    _v, ch = pkce_pair()
    again = web.get("/authorize", query_string={"response_type": "code", "client_id": rp.client_id,
                                                "redirect_uri": rp.redirect_uri, "scope": "openid profile",
                                                "prompt": "none", "code_challenge": ch,
                                                "code_challenge_method": "S256"})
    assert query_of(again.headers["Location"])["error"] == "consent_required"


def test_sign_out_everywhere_revokes_offline_tokens_and_ends_sessions(app, web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid offline_access")
    tokens = exchange(web, rp, q["code"], v).get_json()
    html = web.get("/account").get_data(as_text=True)
    resp = web.post("/account/sign-out-everywhere", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 303
    assert not _introspect(web, rp, tokens["refresh_token"])
    assert app.extensions["yiwang"].sessions.list_for_citizen(str(citizen.id)) == []
    assert web.get("/account").status_code == 303  # signed out here too


def test_account_forms_need_csrf(web, citizen, rp):
    authorize_code(web, rp)
    assert web.post("/account/sign-out-everywhere", data={"csrf_token": "bad"}).status_code == 400


def test_https_issuer_sets_secure_cookies(idp_settings, idp_services):
    from idp.web import create_app

    app = create_app(idp_settings.with_(common=idp_settings.common.__class__(
        **{**idp_settings.common.__dict__, "issuer": "https://idp.example.gov.cn"})), services=idp_services)
    try:
        resp = app.test_client().get("/login")
        assert "Secure" in resp.headers["Set-Cookie"]
    finally:
        if app.extensions["yiwang"].logout is not None:
            app.extensions["yiwang"].logout.close()
