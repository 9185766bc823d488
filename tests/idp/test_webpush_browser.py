"""The account page's Web Push part in Chromium (issue 13 §1): the service worker registers for the
whole idp, and a push delivered to it (DevTools ``ServiceWorker.deliverPushMessage``) shows the
notice in the device's language, linking only to a local page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.idp.test_e2e_browser import serving
from tests.support.browser import browser_fixture, prepared_idp, sign_in  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def idp_server(yiwang_env: Any, tmp_path: Any) -> Any:
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    with serving(env, port, tmp_path / "idp.log"):
        yield issuer


def _notices(page: Any) -> list[Any]:
    for _ in range(100):  # waiting for the worker to show it, not timing it
        shown = page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications())"
                              ".then(ns => ns.map(n => [n.title, n.body, n.data]))")
        if shown:
            return list(shown)
        page.wait_for_timeout(100)
    return []


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_service_worker_shows_a_waiting_request(idp_server: str, browser: Any, locale: str) -> None:
    issuer = idp_server
    context = browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
    context.grant_permissions(["notifications"], origin=issuer)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    registrations: dict[str, str] = {}
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda e: registrations.update({r["scopeURL"]: r["registrationId"] for r in e["registrations"]}))
    cdp.send("ServiceWorker.enable")
    page.goto(issuer + "/account")
    sign_in(page, ID_NUMBER, PASSWORD)
    page.wait_for_url(issuer + "/account*")
    page.wait_for_selector("#push-on", state="visible")  # supported, not yet subscribed
    assert page.locator("#push-status").inner_text() != ""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    scope = issuer + "/"
    for _ in range(50):
        if scope in registrations:
            break
        page.wait_for_timeout(100)
    assert scope in registrations, registrations  # the whole idp, not only /static/
    push = {"v": 1, "kind": "hotline", "url": "/ciba/d-9"}
    cdp.send("ServiceWorker.deliverPushMessage",
             {"origin": issuer, "registrationId": registrations[scope], "data": json.dumps(push)})
    [(title, body, data)] = _notices(page)
    if locale == "zh-CN":
        assert (title, body) == ("一网通办", "服务热线有一项请求等待您确认。")
    else:
        assert (title, body) == ("Yiwang", "A hotline request is waiting for your approval.")
    assert data == {"url": "/ciba/d-9"}
    page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.forEach(n => n.close()))")
    cdp.send("ServiceWorker.deliverPushMessage",  # a link elsewhere is never followed
             {"origin": issuer, "registrationId": registrations[scope],
              "data": json.dumps({"v": 1, "kind": "x", "url": "//evil.example/p"})})
    [(_, body, data)] = _notices(page)
    assert data == {"url": "/account"} and ("request" in body or "请求" in body)
    context.close()
