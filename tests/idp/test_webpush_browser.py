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
from tests.test_page_tour import Tour

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def idp_server(yiwang_env: Any, tmp_path: Any) -> Any:
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    with serving(env, port, tmp_path / "idp.log"):
        yield issuer


def _push(page: Any, cdp: Any, origin: str, registration: str, data: dict[str, Any]) -> list[Any]:
    """Deliver ``data`` to the service worker and return the notices it shows.

    Delivered again if none shows within two seconds: a worker that was still
    starting may miss the first delivery (the notice's tag makes a repeat replace it).
    """
    for _ in range(5):
        cdp.send("ServiceWorker.deliverPushMessage",
                 {"origin": origin, "registrationId": registration, "data": json.dumps(data)})
        for _ in range(20):  # waiting for the worker to show it, not timing it
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
    tour = Tour("zh-CN" if locale == "zh-CN" else "en")  # 390 px, axe, one language, with the push part
    tour.check(page, "account-push")
    assert tour.problems == [], tour.problems
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    scope = issuer + "/"
    for _ in range(50):
        if scope in registrations:
            break
        page.wait_for_timeout(100)
    assert scope in registrations, registrations  # the whole idp, not only /static/
    push = {"v": 1, "kind": "hotline", "url": "/ciba/d-9"}
    [(title, body, data)] = _push(page, cdp, issuer, registrations[scope], push)
    if locale == "zh-CN":
        assert (title, body) == ("一网通办", "服务热线有一项请求等待您确认。")
    else:
        assert (title, body) == ("Yiwang", "A hotline request is waiting for your approval.")
    assert data == {"url": "/ciba/d-9"}
    page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.forEach(n => n.close()))")
    # a link elsewhere is never followed
    [(_, body, data)] = _push(page, cdp, issuer, registrations[scope], {"v": 1, "kind": "x", "url": "//evil.example/p"})
    assert data == {"url": "/account"} and ("request" in body or "请求" in body)
    context.close()
