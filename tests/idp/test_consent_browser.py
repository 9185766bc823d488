"""Issue 18 §2 in Chromium: approving a kiosk sign-in never narrows a client's stored consent.

Portal B signs citizens in in the browser (``openid profile certs:read``) and on
its kiosks (device flow, ``openid profile``). The citizen consents in the
browser, then approves the portal's kiosk on their phone for the narrower set.
Before, the approval replaced the stored consent: the account page listed only
``openid profile`` and the next browser sign-in asked for ``certs:read`` again.
Now a grant adds to what the client holds.
"""

from __future__ import annotations

import json
import secrets
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from idp.web.i18n import translate
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, pkce_pair
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import browser_fixture, local_server, prepared_idp, sign_in  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
WIDE = "openid profile certs:read"
NARROW = "openid profile"


@pytest.fixture
def portal_b(yiwang_env, tmp_path):
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    callbacks: list[str] = []
    with local_server(_portal_callback(callbacks)) as portal_server:
        redirect_uri = f"http://127.0.0.1:{portal_server.server_address[1]}/cb"
        client = json.loads(_idp(env, "clients", "add", "--name", "门户 B Portal B", "--redirect-uri", redirect_uri,
                                 "--grant-type", "authorization_code", "--grant-type", DEVICE_GRANT,
                                 "--scope", "openid", "--scope", "profile", "--scope", "certs:read", "--json"))
        with serving(env, port, tmp_path / "idp.log"):
            yield {"issuer": issuer, "client": client, "redirect_uri": redirect_uri, "callbacks": callbacks}


def _portal_callback(seen: list[str]) -> type[BaseHTTPRequestHandler]:
    """Portal B's redirect URI: a real listener (a route would not see a navigation's redirect)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/cb"):
                seen.append(self.path)
            body = b"signed in"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _authorize_url(portal: dict[str, Any], scope: str) -> str:
    _verifier, challenge = pkce_pair()
    return portal["issuer"] + "/authorize?" + urlencode({
        "response_type": "code", "client_id": portal["client"]["client_id"], "redirect_uri": portal["redirect_uri"],
        "scope": scope, "state": secrets.token_urlsafe(8), "nonce": "n", "code_challenge": challenge,
        "code_challenge_method": "S256"})


def _wait_for(page: Any, captured: list[str]) -> str:
    for _ in range(50):
        if captured:
            return captured.pop()
        page.wait_for_timeout(100)
    raise AssertionError(page.content()[:500])


def _account_scopes(page: Any, portal: dict[str, Any]) -> str:
    page.goto(portal["issuer"] + "/account")
    return page.locator("body").inner_text()


def test_a_kiosk_approval_keeps_the_wider_browser_consent(portal_b, browser):
    portal = portal_b
    page = browser.new_page(locale="en")
    captured = portal["callbacks"]

    # 1. The browser sign-in: log in, consent to openid profile certs:read.
    page.goto(_authorize_url(portal, WIDE))
    sign_in(page, ID_NUMBER, PASSWORD)
    page.wait_for_selector("#allow")
    page.click("#allow")
    assert "code" in parse_qs(urlsplit(_wait_for(page, captured)).query)
    certs = translate("en", "scope_certs:read")
    assert certs in _account_scopes(page, portal)

    # 2. The portal's kiosk asks for the narrower set; the citizen approves it on this (signed-in) browser.
    client = portal["client"]
    started = requests.post(portal["issuer"] + "/device/authorize", data={"scope": NARROW},
                            auth=(client["client_id"], client["client_secret"]), timeout=5)
    assert started.status_code == 200, started.text
    device = started.json()
    page.goto(portal["issuer"] + "/device?" + urlencode({"user_code": device["user_code"]}))
    page.wait_for_selector("#approve")
    page.click("#approve")
    page.wait_for_load_state()
    polled = requests.post(portal["issuer"] + "/token",
                           data={"grant_type": DEVICE_GRANT, "device_code": device["device_code"]},
                           auth=(client["client_id"], client["client_secret"]), timeout=5).json()
    assert polled.get("access_token"), polled
    assert set(polled["scope"].split()) == set(NARROW.split())  # the kiosk gets what it asked for, no more

    # 3. The account page still lists the wider set ...
    assert certs in _account_scopes(page, portal)
    # ... and a new browser sign-in for it is answered at once, without the consent page.
    page.goto(_authorize_url(portal, WIDE))
    query = parse_qs(urlsplit(_wait_for(page, captured)).query)
    assert "code" in query and "error" not in query
