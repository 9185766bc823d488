"""The staff sign-in page in Chromium (issue 13 §1): a served idp (migrated 0001 → 0007 by ``idp db
upgrade``), a staff account and a staff portal registered with the CLI, the page at 390 px in both
languages (no sideways scroll, axe-clean, one language), a wrong code refused, then the code at the
portal's redirect URI."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from tests import test_page_tour
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import browser_fixture, local_server, prepared_idp  # noqa: F401 - a fixture
from tests.test_page_tour import Tour

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STAFF_PASSWORD = "counter-clerk password 1"  # noqa: S105 - test account


class _Callback(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>counter</title>ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def staff_world(yiwang_env: Any, tmp_path: Any) -> Any:
    port, issuer, env = prepared_idp(yiwang_env, {}, password=STAFF_PASSWORD)
    out = _idp(env, "staff", "add", "--username", "clerk.wang", "--name", "王芳", "--kind", "clerk",
               "--office", "朝阳区政务服务中心 3 号窗口", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert secret
    _Callback.hits = []
    with local_server(_Callback) as rp:
        redirect = f"http://127.0.0.1:{rp.server_address[1]}/cb"
        client = json.loads(_idp(env, "clients", "add", "--name", "窗口受理系统", "--redirect-uri", redirect,
                                 "--grant-type", "authorization_code", "--scope", "openid", "--scope", "profile",
                                 "--first-party", "--audience", "staff", "--json"))
        with serving(env, port, tmp_path / "idp.log"):
            yield {"issuer": issuer, "client": client, "redirect": redirect, "totp": pyotp.TOTP(secret.group(1))}


def _authorize_url(world: dict[str, Any], **extra: str) -> str:
    params = {"response_type": "code", "client_id": world["client"]["client_id"], "redirect_uri": world["redirect"],
              "scope": "openid profile", "state": "st-9", "nonce": "n-9",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
              **extra}
    return world["issuer"] + "/authorize?" + urlencode(params)


def test_the_staff_sign_in_page_in_chromium(staff_world: dict[str, Any], browser: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    world = staff_world
    monkeypatch.setattr(test_page_tour, "DATA", [*test_page_tour.DATA, "窗口受理系统"])  # a name is data
    for lang, title in (("zh-CN", "工作人员登录"), ("en", "Staff sign-in")):
        context = browser.new_context(locale="zh-CN" if lang == "zh-CN" else "en-US",
                                      viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.goto(_authorize_url(world, ui_locales=lang))
        page.wait_for_url(f"{world['issuer']}/staff/login*")
        assert page.locator("h1").inner_text() == title
        tour = Tour(lang)
        tour.check(page, "staff-login")
        assert tour.problems == [], tour.problems
        context.close()

    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(_authorize_url(world))
    page.wait_for_url(f"{world['issuer']}/staff/login*")
    totp = world["totp"]
    wrong = "000000" if totp.now() != "000000" else "111111"
    page.fill("#username", "clerk.wang")
    page.fill("#password", STAFF_PASSWORD)
    page.fill("#code", wrong)
    page.click("button[type=submit]")
    page.wait_for_selector("#server-error")
    assert page.locator("#server-error").get_attribute("role") == "alert"
    assert page.locator("#username").input_value() == "clerk.wang"  # kept; the secrets are not
    assert page.locator("#password").input_value() == ""
    page.fill("#password", STAFF_PASSWORD)
    page.fill("#code", totp.now())
    page.click("button[type=submit]")
    page.wait_for_url(world["redirect"] + "*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == ["st-9"] and query["code"] and query["iss"] == [world["issuer"]]
    cookies = {c["name"] for c in context.cookies()}
    assert "yw_staff" in cookies and "yw_sso" not in cookies  # the staff session, never a citizen's
    # the staff session answers the next request of a staff portal without the page
    page.goto(_authorize_url(world))
    page.wait_for_url(world["redirect"] + "*")
    assert parse_qs(urlsplit(page.url).query)["code"]
    context.close()
