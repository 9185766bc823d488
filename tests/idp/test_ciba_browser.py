"""The citizen's CIBA pages in Chromium: the account page's live list, the approval page, the result.

In both languages at 390 px and 1280 px (the page tour's checks: no sideways
scroll, axe-core without serious or critical violations, no words of the
other language); the request appears on the already open account page
without a reload, and the approval page shows the client, the binding message
and the scopes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

import tests.test_page_tour as tour_module
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import browser_fixture as browser  # noqa: F401 - the fixture
from tests.support.browser import prepared_idp, sign_in
from tests.test_page_tour import PHONE, Tour

pytestmark = [pytest.mark.slow]

CIBA = "urn:openid:params:grant-type:ciba"
CLIENT_NAME = "市民服务中心"
MESSAGE = "窗口 A7"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_ciba_pages_in_both_languages(yiwang_env: dict[str, str], tmp_path: Path, browser: Any,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    import json

    # the client's name and the clerk's message are data, in whatever language the agency wrote them
    monkeypatch.setattr(tour_module, "DATA", [*tour_module.DATA, CLIENT_NAME, MESSAGE])
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三丰"}, password=PASSWORD)
    client = json.loads(_idp(env, "clients", "add", "--name", CLIENT_NAME, "--grant-type", CIBA, "--scope", "openid",
                             "--scope", "profile", "--json"))
    with serving(env, port, tmp_path / "idp.log"):
        ctx = browser.new_context(locale="zh-CN" if lang == "zh-CN" else "en-US", viewport=PHONE)
        page = ctx.new_page()
        page.goto(issuer + "/account" + ("?lang=en" if lang == "en" else ""))
        sign_in(page, ID_NUMBER, PASSWORD)
        page.wait_for_url("**/account**")
        assert page.locator("#ciba-pending").is_hidden()
        started = requests.post(issuer + "/bc-authorize", auth=(client["client_id"], client["client_secret"]),
                                data={"scope": "openid profile", "login_hint": ID_NUMBER, "binding_message": MESSAGE},
                                timeout=10)
        assert started.status_code == 200, started.text
        item = page.locator("#ciba-pending-list li").first
        item.wait_for(timeout=15_000)  # no reload: the page's script picks it up
        assert CLIENT_NAME in item.inner_text() and MESSAGE in item.inner_text()
        tour = Tour(lang)
        tour.check(page, "account-ciba")
        item.locator("a").click()
        page.wait_for_selector("#ciba-binding-message")
        assert page.inner_text("#ciba-binding-message") == MESSAGE
        assert CLIENT_NAME in page.inner_text("#ciba-client")
        assert page.locator("ul.scopes li").count() == 2  # openid and profile, in words
        tour.check(page, "ciba-approve")
        page.click("#approve")
        page.wait_for_selector('#ciba-result[data-outcome="approved"]')
        tour.check(page, "ciba-done")
        assert not tour.problems, "\n".join(tour.problems)
