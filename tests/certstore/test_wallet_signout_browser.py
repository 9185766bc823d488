"""Issue 18 §1 and §3 in real Chromium: the wallet's sign-out ends the SSO session; declining the ID number.

The idp and certstore run for real on loopback (the ``stack`` of
:mod:`tests.certstore.test_wallet_browser`). Chromium applies a page's
``form-action`` to the redirects that follow a form submission, which a
request-level test cannot see: only a browser shows that the wallet's
sign-out reaches the idp.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.support.browser import CHROMIUM_ARGS

from .conftest import PERSON_ID
from .test_wallet_browser import PASSWORD, stack  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _sign_in(page: Any, issuer: str, *, share: bool) -> None:
    page.wait_for_url(f"{issuer}/authorize*")
    page.fill("input[name=id_number]", PERSON_ID)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{issuer}/consent*")
    if share:
        page.check("#share_id_number")
    page.click("#allow")


def _csp_violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "violates" in m]


def test_signing_out_of_the_wallet_ends_the_sso_session(stack: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    issuer, cs = stack["issuer"], stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"{cs}/wallet")
            _sign_in(page, issuer, share=True)
            page.wait_for_url(f"{cs}/wallet")
            assert stack["identifier"] in page.content()
            wallet_cookie = {c["name"]: c["value"] for c in context.cookies(cs)}

            page.click("#logout")
            # through the idp's end-session endpoint (no confirmation: the ID token names the session)
            # back to the registered post-logout page
            page.wait_for_url(f"{cs}/verify*", timeout=15_000)
            assert not _csp_violations(console), console
            assert "yw_wallet" not in {c["name"] for c in context.cookies(cs)}
            # the old cookie opens nothing any more
            old = requests.get(f"{cs}/wallet", cookies=wallet_cookie, allow_redirects=False, timeout=10)
            assert old.status_code == 302 and old.headers["Location"].endswith("/wallet/login")

            # single sign-on is over: the wallet (or any portal) asks for the password again
            page.goto(f"{cs}/wallet")
            page.wait_for_url(f"{issuer}/authorize*")
            assert page.locator("input[name=password]").count() == 1, stack["procs"]["idp"].output()
        finally:
            browser.close()


def test_declining_the_id_number_explains_and_asks_again(stack: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    issuer, cs = stack["issuer"], stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN")
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"{cs}/wallet")
            _sign_in(page, issuer, share=False)
            page.wait_for_url(f"{cs}/wallet/callback*")
            heading = page.inner_text("#needs-id-number")
            assert heading == "电子证照需要您的身份证号"  # one language a page
            body = page.inner_text("body")
            assert "http_error" not in body and not body.lstrip().startswith("{")
            assert page.locator("#logout").count() == 1 and page.locator("#back").count() == 1

            # ask again: the idp shows its consent page once more (single sign-on: no password)
            page.click("#ask-again")
            page.wait_for_url(f"{issuer}/consent*")
            page.check("#share_id_number")
            page.click("#allow")
            page.wait_for_url(f"{cs}/wallet")
            assert stack["identifier"] in page.content()
            assert not _csp_violations(console), console
        finally:
            browser.close()


def test_a_wallet_error_is_a_page_in_the_browser(stack: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    cs = stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="zh-CN").new_page()
            resp = page.goto(f"{cs}/wallet/certificates/{stack['identifier']}/pdf")
            assert resp is not None and resp.status == 401
            assert resp.headers["content-type"].startswith("text/html")
            assert "请先登录" in page.inner_text("#error-title")
            page.click("#back")
            page.wait_for_url(f"{stack['issuer']}/authorize*")  # back to the wallet: it starts the sign-in
        finally:
            browser.close()
