"""Issue 13 §2 in Chromium with its virtual authenticator (DevTools ``WebAuthn.addVirtualAuthenticator``).

A CTAP2 platform authenticator (transport ``internal``, resident keys, user
verification). The citizen signs in with the password, adds a passkey on the
account page, steps up to the passkey level when a portal asks for it with
``acr_values``, and later signs in with the passkey alone (nothing typed). With
the authenticator's user verification failing, nobody is signed in.

The idp is served at ``http://localhost:<port>``: WebAuthn refuses IP
addresses as relying-party ids, and localhost is a secure context.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from idp.oauth.discovery import ACR_PASSKEY, ACR_PASSWORD
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, pkce_pair
from tests.idp.test_e2e_browser import _free_port, _idp, serving
from tests.support.browser import browser_fixture, idp_env, local_server, sign_in  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _callback(seen: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/cb"):
                seen.append(self.path)
            body = b"portal"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def portal(yiwang_env, tmp_path):
    port = _free_port()
    issuer = f"http://localhost:{port}"
    env = idp_env(yiwang_env, issuer)
    _idp(env, "db", "upgrade")
    _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD + "\n")
    seen: list[str] = []
    with local_server(_callback(seen)) as server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/cb"
        client = json.loads(_idp(env, "clients", "add", "--name", "办事大厅 Portal", "--redirect-uri", redirect_uri,
                                 "--first-party", "--scope", "openid", "--scope", "profile", "--json"))
        with serving(env, port, tmp_path / "idp.log"):
            yield {"issuer": issuer, "client": client, "redirect_uri": redirect_uri, "seen": seen}


def _authorize(portal: dict[str, Any], **extra: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    url = portal["issuer"] + "/authorize?" + urlencode({
        "response_type": "code", "client_id": portal["client"]["client_id"], "redirect_uri": portal["redirect_uri"],
        "scope": "openid profile", "state": secrets.token_urlsafe(8), "nonce": "n", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra})
    return url, verifier


def _code(page: Any, portal: dict[str, Any]) -> str:
    for _ in range(100):
        if portal["seen"]:
            return parse_qs(urlsplit(portal["seen"].pop()).query)["code"][0]
        page.wait_for_timeout(100)
    raise AssertionError(page.content()[:1500])


def _id_token(portal: dict[str, Any], code: str, verifier: str) -> dict[str, Any]:
    c = portal["client"]
    resp = requests.post(portal["issuer"] + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": portal["redirect_uri"],
        "code_verifier": verifier}, auth=(c["client_id"], c["client_secret"]), timeout=10)
    assert resp.status_code == 200, resp.text
    part = resp.json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _clean(page: Any) -> None:
    """axe-core finds nothing serious, and nothing scrolls sideways (the page tour's rules)."""
    from axe_playwright_python.sync_playwright import Axe

    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, (page.url, width, inner)
    bad = [(v["id"], [n.get("target") for n in v["nodes"]][:3]) for v in Axe().run(page).response["violations"]
           if v.get("impact") in ("serious", "critical")]
    assert not bad, (page.url, bad)


def _authenticator(context: Any, page: Any, *, verified: bool = True) -> tuple[Any, str]:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "ctap2Version": "ctap2_1", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": verified, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def _sign_in_and_add_a_passkey(page: Any, portal: dict[str, Any], cdp: Any, aid: str) -> None:
    url, verifier = _authorize(portal)
    page.goto(url)
    sign_in(page, ID_NUMBER, PASSWORD)
    assert _id_token(portal, _code(page, portal), verifier)["acr"] == ACR_PASSWORD
    page.goto(portal["issuer"] + "/account?lang=en")
    page.fill("#passkey_name", "My phone")
    page.click("#passkey-add-button")
    page.wait_for_selector("#passkey-notice")
    assert "My phone" in page.inner_text("#passkey-list")
    if page.viewport_size and page.viewport_size["width"] == 390:  # mobile first: nothing wider than the screen
        for sel in ("#passkey-list", "#passkey-add", "#passkey-list form"):
            box = page.locator(sel).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (sel, box)
        if os.environ.get("YW_PASSKEY_SHOT"):  # for a look by eye
            page.screenshot(path=os.environ["YW_PASSKEY_SHOT"], full_page=True)
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": aid})["credentials"]
    assert len(creds) == 1 and creds[0]["isResidentCredential"] and creds[0]["rpId"] == "localhost"


def test_register_step_up_and_sign_in_without_typing_the_id_number(browser, portal):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    cdp, aid = _authenticator(context, page)
    _sign_in_and_add_a_passkey(page, portal, cdp, aid)

    # Step-up: the portal asks for the passkey level; the session has the password's.
    url, verifier = _authorize(portal, acr_values=ACR_PASSKEY)
    page.goto(url)
    page.wait_for_url("**/login/passkey**")
    page.wait_for_selector("#passkey-button", state="visible")
    _clean(page)
    page.click("#passkey-button")
    claims = _id_token(portal, _code(page, portal), verifier)
    assert claims["acr"] == ACR_PASSKEY and "user" in claims["amr"] and claims["amr"][0] in ("hwk", "swk")

    # Signed out (cookies gone); the passkey alone signs in again: no ID number, no password.
    context.clear_cookies()
    url, verifier = _authorize(portal)
    page.goto(url)
    # Chromium offers the passkey in the ID number field's autofill (conditional mediation); its
    # virtual authenticator, with presence simulated, picks it at once: the citizen is signed in
    # from the login page without touching a field or a button.
    claims = _id_token(portal, _code(page, portal), verifier)
    assert claims["acr"] == ACR_PASSKEY
    # The button, on a browser without the autofill: the same sign-in.
    context.clear_cookies()
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);")
    url, verifier = _authorize(portal)
    page.goto(url)
    page.wait_for_selector("#passkey-button", state="visible")
    assert page.input_value("#id_number") == ""
    _clean(page)
    box = page.locator("#passkey-sign-in").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    if os.environ.get("YW_PASSKEY_LOGIN_SHOT"):
        page.screenshot(path=os.environ["YW_PASSKEY_LOGIN_SHOT"], full_page=True)
    page.click("#passkey-button")
    assert _id_token(portal, _code(page, portal), verifier)["acr"] == ACR_PASSKEY
    sign_count = cdp.send("WebAuthn.getCredentials", {"authenticatorId": aid})["credentials"][0]["signCount"]
    assert sign_count >= 3

    # The account page's forms: rename, then remove (the password is still a way in).
    page.goto(portal["issuer"] + "/account?lang=en")
    assert "last used" in page.inner_text("#passkey-list")
    _clean(page)
    page.fill("#passkey-list input[name=name]", "Office phone")
    page.click("#passkey-list form.passkey-rename button")
    page.wait_for_url("**/account#passkeys")
    assert "Office phone" in page.inner_text("#passkey-list")
    page.click("#passkey-list form:not(.passkey-rename) button")
    page.wait_for_url("**/account#passkeys")
    assert "No passkeys yet." in page.inner_text("#passkey-list")
    context.close()


def test_a_passkey_without_user_verification_signs_nobody_in(browser, portal):
    context = browser.new_context()
    page = context.new_page()
    cdp, aid = _authenticator(context, page)
    _sign_in_and_add_a_passkey(page, portal, cdp, aid)
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": aid, "isUserVerified": False})

    # The step-up that needs the passkey level is refused: Chromium itself will not answer
    # options that require user verification when the authenticator cannot verify…
    url, _ = _authorize(portal, acr_values=ACR_PASSKEY, ui_locales="en")
    page.goto(url)
    page.wait_for_url("**/login/passkey**")
    page.click("#passkey-button")
    page.wait_for_selector("#passkey-error", state="visible")
    assert "cancelled" in page.inner_text("#passkey-error")
    assert not portal["seen"]

    # …and with the options rewritten on the way (userVerification "discouraged": a tampered
    # page), Chromium answers without the UV flag and the idp refuses the assertion itself.
    def discourage(route: Any) -> None:
        fetched = route.fetch()
        body = fetched.json()
        body["userVerification"] = "discouraged"
        route.fulfill(response=fetched, json=body)

    page.route("**/passkey/options**", discourage)
    page.click("#passkey-button")
    page.locator("#passkey-error", has_text="did not verify you").wait_for()
    assert not portal["seen"]
    page.unroute("**/passkey/options**")

    # …and so is a sign-in with it (the button; no autofill).
    context.clear_cookies()
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);")
    url, _ = _authorize(portal)
    page.goto(url + "&ui_locales=en")
    page.click("#passkey-button")
    page.wait_for_selector("#passkey-error", state="visible")
    assert "cancelled" in page.inner_text("#passkey-error")
    assert not portal["seen"]
    assert "/login" in page.url or "/authorize" in page.url
    resp = page.request.get(portal["issuer"] + "/account", max_redirects=0)
    assert resp.status == 303  # not signed in
    context.close()
