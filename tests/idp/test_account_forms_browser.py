"""Issue 18 §4 in Chromium: the account page's forms, in Chinese and in English.

Against ``idp serve`` for real, a citizen signed in on the idp itself:

* password change: a wrong current password, two new passwords that differ,
  then a change that works (the notice, and the new password signs in);
* TOTP self-enrolment: the current password is asked first, a wrong code is
  refused on the set-up page, the right one turns it on and shows ten
  recovery codes once;
* a recovery code then passes the second-factor step in place of the app's
  code, once.

Each page is in the browser's language only (the page tour's checks: no
text of the other language, none of the catalog's), nothing scrolls sideways at
390 or 1280 px, and axe-core finds no serious or critical violation on the
set-up and recovery-code pages.
"""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.idp.test_e2e_browser import served_idp  # noqa: F401 - the fixture: idp serve with a citizen
from tests.support.browser import browser_fixture as browser  # noqa: F401 - the fixture
from tests.test_page_tour import DESKTOP, PHONE, catalog_leftovers, foreign_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_PASSWORD = "a-new-password-for-tests"  # noqa: S105 - a test account

TEXT = {
    "zh-CN": {
        "wrong_current": "当前密码不正确。", "mismatch": "两次输入的新密码不一致。",
        "changed": "密码已修改，其他设备上的登录已退出。", "setup": "设置两步验证",
        "code_wrong": "动态码不正确或已使用。", "codes": "恢复码", "on": "两步验证已开启。",
        "second_factor": "两步验证", "account": "我的账号",
    },
    "en": {
        "wrong_current": "The current password is wrong.", "mismatch": "The two new passwords are not the same.",
        "changed": "Your password was changed; you were signed out on other devices.",
        "setup": "Set up two-step verification", "code_wrong": "The code is wrong or has already been used.",
        "codes": "Recovery codes", "on": "Two-step verification is on.", "second_factor": "Two-step verification",
        "account": "My account",
    },
}


def _one_language(page: Any, lang: str) -> None:
    assert page.locator("html").get_attribute("lang") == lang
    assert foreign_text(page) == [], page.url
    assert catalog_leftovers(page) == [], page.url
    for size in (PHONE, DESKTOP):  # and nothing scrolls sideways, on a phone or a desktop
        page.set_viewport_size(size)
        wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide[0] <= wide[1], (page.url, size, wide)
    page.set_viewport_size(PHONE)


def _axe_clean(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    bad = [v["id"] for v in Axe().run(page).response["violations"] if v.get("impact") in ("serious", "critical")]
    assert bad == [], (page.url, bad)


def _sign_in(page: Any, issuer: str, password: str) -> None:
    page.goto(f"{issuer}/account")
    page.wait_for_selector("input[name=id_number]")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _change_password(page: Any, current: str, new: str, again: str) -> None:
    page.fill("#current_password", current)
    page.fill("#new_password", new)
    page.fill("#new_password_again", again)
    page.click("#password-form button[type=submit]")
    page.wait_for_load_state("load")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_account_forms_in_both_languages(served_idp: dict[str, Any], browser: Any, lang: str) -> None:  # noqa: F811
    issuer = served_idp["issuer"]
    t = TEXT[lang]
    ctx = browser.new_context(locale="zh-CN" if lang == "zh-CN" else "en-US", viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    try:
        _sign_in(page, issuer, PASSWORD)
        page.wait_for_url(f"{issuer}/account*")
        assert page.locator("h1").inner_text() == t["account"]
        _one_language(page, lang)

        # password change: refused twice, with the reason in the page's language, then done
        _change_password(page, "not-the-password", NEW_PASSWORD, NEW_PASSWORD)
        assert page.locator("#password-error").inner_text() == t["wrong_current"]
        _change_password(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")
        assert page.locator("#password-error").inner_text() == t["mismatch"]
        _one_language(page, lang)
        _change_password(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        assert page.locator("#account-notice").inner_text() == t["changed"]

        # TOTP: the current (new) password first; a wrong code is refused; the right one shows the codes
        page.fill("#totp_current_password", NEW_PASSWORD)
        page.click("#totp-start button[type=submit]")
        page.wait_for_selector("#totp-secret")
        assert page.locator("h1").inner_text() == t["setup"]
        _one_language(page, lang)
        _axe_clean(page)
        secret = page.locator("#totp-secret").inner_text()
        totp = pyotp.TOTP(secret)
        page.fill("#code", "000000" if totp.now() != "000000" else "111111")
        page.click("#totp-form button[type=submit]")
        assert page.locator("#totp-error").inner_text() == t["code_wrong"]
        page.fill("#code", totp.now())
        page.click("#totp-form button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        assert page.locator("h1").inner_text() == t["codes"]
        codes = page.locator("#recovery-codes code").all_inner_texts()
        assert len(codes) == 10 and len(set(codes)) == 10
        _one_language(page, lang)
        _axe_clean(page)
        page.goto(f"{issuer}/account")
        assert t["on"] in page.locator("#second-factor + p").inner_text()
        assert not any(code in page.content() for code in codes)  # shown once
    finally:
        ctx.close()

    # a fresh browser: the new password, then a recovery code in place of the app's code, once
    ctx = browser.new_context(locale="zh-CN" if lang == "zh-CN" else "en-US")
    page = ctx.new_page()
    try:
        _sign_in(page, issuer, NEW_PASSWORD)
        page.wait_for_selector("input[name=code]")
        assert page.locator("h1").inner_text() == t["second_factor"]
        _one_language(page, lang)
        page.fill("input[name=code]", codes[0])
        page.click("button[type=submit]")
        page.wait_for_url(f"{issuer}/account*")
        assert page.locator("h1").inner_text() == t["account"]
    finally:
        ctx.close()
