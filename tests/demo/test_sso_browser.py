"""Issue 4, must show: SSO and single sign-out across two portals, in real Chromium.

The idp runs for real (``idp serve``, plus ``idp worker`` when a Redis server
is configured), and so do two demo portals built only on Authlib's client.
Chromium signs in at portal A; portal B then signs in without a login form;
signing out at B ends both: each portal received a logout token that validates
with the idp's JWKS and has every claim, and ``prompt=none`` for either client
now answers ``login_required``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.demo.processes import Portal, free_port, idp_cli, register_portal, started, wait_http
from tests.idp.logout_helpers import verify_logout_token, wait_until
from tests.support.browser import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ID_NUMBER = "11010519491231002X"
PASSWORD = "demo-password-for-tests"  # noqa: S105 - a test account


@pytest.fixture
def stack(yiwang_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_LOGOUT_MIN_BACKOFF_MS": "200"}
    idp_cli(env, "init")
    idp_cli(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD)
    a = register_portal(env, "A", frontchannel=True)  # A also registers front-channel logout
    b = register_portal(env, "B")
    bin_dir = Path(sys.executable).parent
    specs = [("idp", [str(bin_dir / "idp"), "serve", "--port", str(port)], env, f"{issuer}/healthz")]
    if env.get("YIWANG_REDIS_URL"):
        specs.append(("worker", [str(bin_dir / "idp"), "worker", "--threads", "4"], env, None))
    for p in (a, b):
        specs.append((f"portal-{p.name}", p.argv(issuer), {"PORTAL_CLIENT_SECRET": p.client_secret}, f"{p.url}/"))
    with started(specs, tmp_path) as procs:
        yield {"issuer": issuer, "a": a, "b": b, "procs": procs, "env": env}


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def _prompt_none(page: Any, issuer: str, portal: Portal) -> dict[str, list[str]]:
    """Ask the idp for a silent sign-in for ``portal``; return the query it sends back."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if r.url.startswith(f"{portal.url}/callback") else None)
    params = {
        "response_type": "code", "client_id": portal.client_id, "redirect_uri": f"{portal.url}/callback",
        "scope": "openid", "state": "probe", "prompt": "none",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
    }
    page.goto(f"{issuer}/authorize?{urlencode(params)}")
    wait_until(lambda: seen)
    return parse_qs(urlsplit(seen[-1]).query)


def test_sso_across_portals_and_single_sign_out(stack: dict[str, Any], page: Any) -> None:
    issuer, a, b = stack["issuer"], stack["a"], stack["b"]
    login_pages: list[str] = []
    # A login form is a page shown by the idp: /authorize answers with it (a silent SSO
    # only passes through /authorize as a redirect, which commits no page there).
    page.on("framenavigated", lambda f: login_pages.append(f.url)
            if f.url.startswith(issuer) and urlsplit(f.url).path in ("/authorize", "/login") else None)

    # Portal A: the idp's login form.
    page.goto(f"{a.url}/")
    page.click("#login")
    page.wait_for_url(f"{issuer}/authorize*")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{a.url}/")
    assert "signed in" in page.inner_text("#state")
    assert len(login_pages) == 1

    # Portal B: single sign-on, no login form.
    page.goto(f"{b.url}/")
    page.click("#login")
    page.wait_for_url(f"{b.url}/")
    assert "signed in" in page.inner_text("#state")
    assert len(login_pages) == 1, login_pages
    sid_a, sid_b = a.state()["sids"], b.state()["sids"]
    assert sid_a == sid_b and sid_a[0]

    # Sign out at B: RP-initiated logout with id_token_hint. The idp's page
    # loads A's front-channel URI in an iframe, then its script continues to B.
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.click("#logout")
    page.wait_for_url(f"{b.url}/*")
    assert page.inner_text("#state") == "signed out"
    assert [f["sid"] for f in a.state()["frontchannel"]] == [sid_a[0]]
    assert csp_errors == []

    # Both portals got a valid logout token through the back channel.
    jwks = requests.get(f"{issuer}/jwks.json", timeout=5).json()
    for portal in (a, b):
        state = wait_until(lambda p=portal: (s := p.state())["logout_tokens"] and s, timeout=30)
        assert state["signed_in"] == 0 and state["rejected"] == 0
        received = state["logout_tokens"]
        assert len(received) == 1
        claims = verify_logout_token(received[0]["token"], jwks, issuer=issuer, client_id=portal.client_id)
        assert claims["sid"] == sid_a[0]
        assert {"iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"} <= set(claims)

    out = idp_cli(stack["env"], "logout", "deliveries", "--status", "delivered", "--json")
    assert '"delivered": 2' in out

    # The SSO session is gone for every client.
    for portal in (a, b):
        assert _prompt_none(page, issuer, portal)["error"] == ["login_required"]


def test_rp_down_during_sign_out_gets_its_token_when_back(stack: dict[str, Any], page: Any, tmp_path: Path) -> None:
    """A relying party that is down at sign-out gets its logout token after it comes back."""
    issuer, a, b = stack["issuer"], stack["a"], stack["b"]
    page.goto(f"{a.url}/login")
    page.wait_for_url(f"{issuer}/authorize*")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{a.url}/")
    page.goto(f"{b.url}/login")
    page.wait_for_url(f"{b.url}/")

    portal_a = stack["procs"]["portal-A"]
    portal_a.popen.terminate()
    portal_a.popen.wait(timeout=10)
    page.goto(f"{b.url}/")
    page.click("#logout")  # a POST form with the portal's CSRF token
    page.wait_for_url(f"{b.url}/*")
    wait_until(lambda: b.state()["logout_tokens"], timeout=30)
    pending = idp_cli(stack["env"], "logout", "deliveries", "--status", "pending", "--json")
    assert '"pending": 1' in pending

    # Portal A comes back (a fresh process: its local sessions are gone, the token still counts).
    from tests.demo.processes import Proc

    log = tmp_path / "portal-A-again.log"
    import os
    import subprocess

    popen = subprocess.Popen(  # noqa: S603
        a.argv(issuer), env={**os.environ, "PORTAL_CLIENT_SECRET": a.client_secret}, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    again = Proc("portal-A-again", popen, log)
    try:
        wait_http(f"{a.url}/", again)
        state = wait_until(lambda: a.state()["logout_tokens"] and a.state(), timeout=60)
        jwks = requests.get(f"{issuer}/jwks.json", timeout=5).json()
        verify_logout_token(state["logout_tokens"][0]["token"], jwks, issuer=issuer, client_id=a.client_id)
    finally:
        popen.terminate()
        popen.wait(timeout=10)
