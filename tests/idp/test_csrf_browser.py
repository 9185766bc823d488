"""Issue 19 §1 in Chromium: a page on another port of the idp's host plants a CSRF pair and approves a device.

``idp serve`` listens on 127.0.0.1:<p1>; the attacker's page is served from
127.0.0.1:<p2>. The two are different origins but the same site, and cookies
ignore ports: ``document.cookie`` on the attacker's page sets the idp's CSRF
cookie in the victim's browser, and the ``SameSite=Lax`` session cookie goes
along with the form the page submits to the idp. The attacker's own visit
gave them a (cookie, token) pair and a device code; on f807b44 the victim's
browser approved that device and the attacker's poll got the citizen's
tokens. Now the token is bound to the session, so the approval is refused.
"""

from __future__ import annotations

import html
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, csrf_of, make_id
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import browser_fixture, local_server, prepared_idp, sign_in  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ATTACKER_ID = make_id("11010519800101001")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def idp_server(yiwang_env, tmp_path):
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三", ATTACKER_ID: "李四"}, password=PASSWORD)
    kiosk = json.loads(_idp(env, "clients", "add", "--name", "政务自助终端", "--grant-type", DEVICE_GRANT,
                            "--scope", "openid", "--scope", "profile", "--first-party", "--json"))
    with serving(env, port, tmp_path / "idp.log"):
        yield {"issuer": issuer, "kiosk": kiosk}


@pytest.fixture
def attacker_site():
    """A web server on another port of the same host; ``pages[path]`` is (HTML, extra headers) it answers."""
    pages: dict[str, tuple[str, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            text, headers = pages.get(self.path, ("not found", {}))
            body = text.encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for header, value in headers.items():
                self.send_header(header, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with local_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages


def _start_device(issuer: str, kiosk: dict[str, str]) -> dict[str, Any]:
    resp = requests.post(issuer + "/device/authorize", data={"scope": "openid profile"},
                         auth=(kiosk["client_id"], kiosk["client_secret"]), timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _poll(issuer: str, kiosk: dict[str, str], device_code: str) -> dict[str, Any]:
    resp = requests.post(issuer + "/token", data={"grant_type": DEVICE_GRANT, "device_code": device_code},
                         auth=(kiosk["client_id"], kiosk["client_secret"]), timeout=5)
    return resp.json()  # type: ignore[no-any-return]


def _attacker_pair(issuer: str, user_code: str) -> tuple[str, str, str]:
    """The attacker's own visit: the CSRF cookie's name and value, and a token from the approval page."""
    own = requests.Session()
    page = own.get(issuer + "/login", timeout=5).text
    done = own.post(issuer + "/login", data={"csrf_token": csrf_of(page), "id_number": ATTACKER_ID,
                                             "password": PASSWORD}, allow_redirects=False, timeout=5)
    assert done.status_code == 303, done.text[:300]
    confirm = own.get(issuer + "/device", params={"user_code": user_code}, timeout=5)
    assert confirm.status_code == 200 and user_code in confirm.text
    name = next(c.name for c in own.cookies if c.name.endswith("yw_csrf"))
    return name, own.cookies[name], csrf_of(confirm.text)


def _forging_page(issuer: str, cookie: tuple[str, str], token: str, user_code: str,
                  how: str) -> tuple[str, dict[str, str]]:
    """The attacker's page: it plants the cookie and submits the idp's device form at once.

    ``set-cookie``: the attacker's server answers with ``Set-Cookie`` for the
    host (it may: same host, other port), which replaces the citizen's cookie.
    ``shadow``: a script cannot overwrite an HttpOnly cookie, but it can add one
    with a longer path, which the browser sends first.
    """
    name, value = cookie
    fields = {"csrf_token": token, "user_code": user_code, "decision": "approve"}
    inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
    plant = f'document.cookie = "{name}={value}; path=/device";' if how == "shadow" else ""
    headers = {"Set-Cookie": f"{name}={value}; Path=/; SameSite=Lax"} if how == "set-cookie" else {}
    return f"""<!doctype html><html><body>
<form id="f" method="post" action="{issuer}/device">{inputs}</form>
<script>
{plant}
document.getElementById("f").submit();
</script></body></html>""", headers


@pytest.mark.parametrize("how", ["set-cookie", "shadow"])
def test_a_page_on_another_port_cannot_approve_a_device_with_the_citizens_session(idp_server, attacker_site, browser,
                                                                                   how):
    issuer, kiosk = idp_server["issuer"], idp_server["kiosk"]
    site, pages = attacker_site

    # The citizen signs in at the idp in Chromium.
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(issuer + "/login")
    sign_in(page, ID_NUMBER, PASSWORD)
    page.wait_for_url(issuer + "/account")

    # The attacker starts a device sign-in and takes a (cookie, token) pair from their own visit.
    device = _start_device(issuer, kiosk)
    name, value, token = _attacker_pair(issuer, device["user_code"])
    pages["/win-a-prize"] = _forging_page(issuer, (name, value), token, device["user_code"], how)

    # The citizen opens the attacker's page: it plants the cookie and posts the form to the idp.
    page.goto(site + "/win-a-prize")
    page.wait_for_url(issuer + "/device")
    planted = context.cookies(issuer + "/device")
    assert (name, value) in [(c["name"], c["value"]) for c in planted]  # the plant worked
    assert "yw_sso" in [c["name"] for c in planted]  # and the citizen's session went along
    assert page.locator("#device-error").is_visible()
    assert _poll(issuer, kiosk, device["device_code"]).get("error") == "authorization_pending"

    # The same browser still approves a device through the idp's own page (the check is not vacuous).
    mine = _start_device(issuer, kiosk)
    page.goto(issuer + f"/device?user_code={mine['user_code']}")
    page.click("#approve")
    page.wait_for_load_state()
    assert "access_token" in _poll(issuer, kiosk, mine["device_code"])
    # The attacker's device still got nothing.
    assert "access_token" not in _poll(issuer, kiosk, device["device_code"])
    context.close()
