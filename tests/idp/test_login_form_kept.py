"""The empty login form is rendered once per language and client name and filled in per flow (issue 16).

The kept form must be the very page Jinja renders for the flow: same bytes,
its own flow id in every address, its own CSRF token, and the pre-session
CSRF cookie still set for a browser that has none.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from idp.oauth.flow import Flow
from idp.web import responses
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP, csrf_of, is_login_page, login, pkce_pair, query_of


def _flow(name: str | None = "办事大厅", ui_locales: str | None = None) -> Flow:
    params = {"response_type": "code", "client_id": "c1", "redirect_uri": "https://rp.example/cb", "scope": "openid"}
    if ui_locales:
        params["ui_locales"] = ui_locales
    flow = Flow.authorization(params, client_id="c1", client_name=name, scopes=["openid"],
                              redirect_uri="https://rp.example/cb", pushed=False)
    flow.id = secrets.token_urlsafe(18)
    return flow


def _kept(app: Any) -> dict[Any, str]:
    return app.extensions.setdefault("yiwang_login_forms", {})


@pytest.mark.parametrize("ui_locales", [None, "en"])
def test_the_kept_form_is_byte_for_byte_the_rendered_page(app: Any, ui_locales: str | None) -> None:
    for _ in range(2):  # the first call renders and keeps the form, the second fills the kept one
        flow = _flow(ui_locales=ui_locales)
        with app.test_request_context("/authorize"):
            fast, status = responses.login_page(flow, bound=True)
            slow, _ = responses._render_login_page(flow.id, flow.client_name, responses.flow_lang(flow), "")
        assert status == 200
        assert fast == slow
        assert responses._FLOW_SLOT not in fast and responses._CSRF_SLOT not in fast
        assert f"/login?flow={flow.id}" in fast
        # the passkey section too (the suite's issuer is a host name): its addresses and token
        assert 'id="passkey-sign-in"' in fast and f"flow={flow.id}" in fast.split('id="passkey-sign-in"')[1]
        assert fast.count(csrf_of(fast)) == 2
    assert len(_kept(app)) == 1


def test_each_flow_gets_its_own_id_and_token_and_a_new_browser_its_csrf_cookie(app: Any) -> None:
    first, second = _flow(), _flow()
    with app.test_request_context("/authorize"):
        page1, _ = responses.login_page(first, bound=True)
        token1 = csrf_of(page1)
        assert app.extensions["yiwang_login_forms"]
        from flask import g

        assert g.get("_yw_new_csrf")  # the pre-session cookie is still started by the kept form
    with app.test_request_context("/authorize"):
        page2, _ = responses.login_page(second, bound=True)
    assert first.id not in page2 and second.id in page2
    assert csrf_of(page2) != token1


def test_a_renamed_client_or_another_language_is_another_form(app: Any) -> None:
    with app.test_request_context("/authorize"):
        old, _ = responses.login_page(_flow("旧名称"), bound=True)
        new, _ = responses.login_page(_flow("新名称"), bound=True)
        english, _ = responses.login_page(_flow("新名称", ui_locales="en"), bound=True)
    assert "旧名称" in old and "新名称" in new and "旧名称" not in new
    assert english != new and 'lang="en"' in english
    assert len(_kept(app)) == 3


def test_what_the_kept_form_cannot_show_is_rendered_as_before(app: Any) -> None:
    odd = _flow(name=f"x{responses._FLOW_SLOT}y")
    with app.test_request_context("/authorize"):
        page, _ = responses.login_page(odd, bound=True)
    assert responses._FLOW_SLOT in page and odd.id in page  # the name shown as it is, escaped by Jinja
    assert not _kept(app)
    pushed = _flow()
    pushed.pushed, pushed.login_hint = True, "11010519491231002X"
    with app.test_request_context("/authorize"):
        page, _ = responses.login_page(pushed, bound=True)
    assert 'value="11010519491231002X"' in page  # a prefilled ID number: rendered, not kept
    assert not _kept(app)


def test_the_kept_forms_are_bounded(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responses, "LOGIN_FORMS_KEPT", 2)
    with app.test_request_context("/authorize"):
        for i in range(5):
            responses.login_page(_flow(f"client {i}"), bound=True)
    assert 1 <= len(_kept(app)) <= 2


def test_a_password_login_through_the_kept_form_signs_in(app: Any, citizen: Any, rp: RP) -> None:
    for _ in range(2):
        web = app.test_client()
        verifier, challenge = pkce_pair()
        page = web.get("/authorize", query_string={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid", "state": "s", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256"})
        assert is_login_page(page)
        done = login(web, page)
        assert done.status_code == 303, done.data[:300]
        location = done.headers["Location"]
        if location.startswith(rp.redirect_uri):
            assert query_of(location)["code"]
        tampered = app.test_client()
        page = tampered.get("/authorize", query_string={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid", "state": "s", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256"})
        html = page.get_data(as_text=True).replace(csrf_of(page.get_data(as_text=True)), "0" * 64)
        action = html.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        refused = tampered.post(action, data={"csrf_token": "0" * 64, "id_number": "x", "password": "y"})
        assert refused.status_code == 400
