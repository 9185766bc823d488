"""Issue 4, must show: two idp instances on one PostgreSQL and one Redis.

Sign in through the first instance (portal A), single sign-on through the
second (a code for portal B's client, no login form), sign out through the
second: both relying parties get a valid logout token, and the first instance
sees no session any more.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.demo.processes import free_port, idp_cli, register_portal, started
from tests.idp.logout_helpers import verify_logout_token, wait_until
from tests.support.browser import CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not (TEST_DATABASE_URL and TEST_REDIS_URL), reason="needs a shared PostgreSQL and Redis"),
]

ID_NUMBER = "11010519491231002X"
PASSWORD = "two-instances-test"  # noqa: S105 - a test account


@pytest.fixture
def stack(yiwang_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    first, second = free_port(), free_port()
    issuer = f"http://127.0.0.1:{first}"  # one issuer: the instances are interchangeable
    env = {**yiwang_env, "YIWANG_ISSUER": issuer}
    idp_cli(env, "init")
    idp_cli(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD)
    a = register_portal(env, "A")
    b = register_portal(env, "B")
    idp = str(Path(sys.executable).parent / "idp")
    specs = [
        ("idp-1", [idp, "serve", "--port", str(first)], env, f"http://127.0.0.1:{first}/healthz"),
        ("idp-2", [idp, "serve", "--port", str(second)], env, f"http://127.0.0.1:{second}/healthz"),
        ("worker", [idp, "worker", "--threads", "4"], env, None),
    ]
    for p in (a, b):
        specs.append((f"portal-{p.name}", p.argv(issuer), {"PORTAL_CLIENT_SECRET": p.client_secret}, f"{p.url}/"))
    with started(specs, tmp_path) as procs:
        yield {"issuer": issuer, "first": issuer, "second": f"http://127.0.0.1:{second}", "a": a, "b": b,
               "procs": procs}


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def _authorize(page: Any, base: str, portal: Any, *, prompt: str | None = None) -> tuple[dict[str, list[str]], str]:
    """Send the browser to ``base``/authorize for ``portal``; catch the redirect back; return (query, verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    caught: list[str] = []
    # The portal itself refuses this callback (it did not start the request: no
    # state of its own), so it never redeems the code; the test reads it here.
    page.on("request", lambda r: caught.append(r.url) if r.url.startswith(f"{portal.url}/callback") else None)
    params = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": f"{portal.url}/callback",
              "scope": "openid profile", "state": "st", "nonce": "n", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    if prompt:
        params["prompt"] = prompt
    page.goto(f"{base}/authorize?{urlencode(params)}")
    for _ in range(100):  # route handlers run while Playwright waits, not while we sleep
        if caught:
            break
        page.wait_for_timeout(100)
    assert caught, page.url
    return parse_qs(urlsplit(caught[-1]).query), verifier


def test_sign_in_on_one_instance_sso_and_sign_out_on_the_other(stack: dict[str, Any], page: Any) -> None:
    issuer, first, second, a, b = (stack[k] for k in ("issuer", "first", "second", "a", "b"))

    # 1. Sign in at portal A, through the first instance (the issuer's address).
    page.goto(f"{a.url}/login")
    page.wait_for_url(f"{first}/authorize*")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{a.url}/")
    sid = a.state()["sids"][0]

    # 2. Single sign-on through the second instance: a code at once, no login form.
    query, verifier = _authorize(page, second, b, prompt="none")
    assert "code" in query, query
    tokens = requests.post(f"{second}/token", data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": f"{b.url}/callback",
        "code_verifier": verifier,
    }, auth=(b.client_id, b.client_secret), timeout=10).json()
    id_token = tokens["id_token"]
    jwks = requests.get(f"{second}/jwks.json", timeout=5).json()
    from joserfc import jwt
    from joserfc.jwk import KeySet

    claims = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"]).claims
    assert claims["iss"] == issuer and claims["sid"] == sid

    # 3. Sign out through the second instance.
    page.goto(f"{second}/logout?" + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": f"{b.url}/"}))
    page.wait_for_url(f"{b.url}/*")

    # Every relying party of the session got its logout token.
    for portal in (a, b):
        state = wait_until(lambda p=portal: (s := p.state())["logout_tokens"] and s, timeout=30)
        logout = verify_logout_token(state["logout_tokens"][0]["token"], jwks, issuer=issuer, client_id=portal.client_id)
        assert logout["sid"] == sid
    assert a.state()["signed_in"] == 0

    # 4. The first instance sees no session.
    query, _ = _authorize(page, first, a, prompt="none")
    assert query.get("error") == ["login_required"]


def _sign_in_with_requests(http: requests.Session, base: str, portal: Any) -> None:
    """Password sign-in through the HTML form, as a browser would (cookies kept in ``http``)."""
    import re

    resp = http.get(f"{base}/authorize", params={
        "response_type": "code", "client_id": portal.client_id, "redirect_uri": f"{portal.url}/callback",
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }, allow_redirects=False, timeout=10)
    page = resp.text  # the login form answers /authorize
    login_url = base + html.unescape(re.search(r'action="([^"]+)" id="login-form"', page).group(1))
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)
    done = http.post(login_url, data={"csrf_token": csrf, "id_number": ID_NUMBER, "password": PASSWORD},
                     allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.status_code


def _sso_round_trip(http: requests.Session, base: str, portal: Any) -> bool:
    """Session cookie → code (prompt=none) → tokens, all at ``base``."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    try:
        resp = http.get(f"{base}/authorize", params={
            "response_type": "code", "client_id": portal.client_id, "redirect_uri": f"{portal.url}/callback",
            "scope": "openid", "prompt": "none", "code_challenge": challenge, "code_challenge_method": "S256",
        }, allow_redirects=False, timeout=10)
        code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
        tokens = requests.post(f"{base}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": f"{portal.url}/callback",
            "code_verifier": verifier,
        }, auth=(portal.client_id, portal.client_secret), timeout=10)
        return tokens.status_code == 200 and "id_token" in tokens.json()
    except (requests.RequestException, KeyError):
        return False


def test_the_other_instance_keeps_serving_when_one_stops(stack: dict[str, Any]) -> None:
    first, second, a = stack["first"], stack["second"], stack["a"]
    http = requests.Session()
    _sign_in_with_requests(http, first, a)
    results: dict[str, list[bool]] = {"first": [], "second": []}
    for i in range(40):
        if i == 20:  # the first instance dies (no goodbye); the balancer stops sending to it
            stack["procs"]["idp-1"].signal_group(signal.SIGKILL)  # supervisor and worker
            stack["procs"]["idp-1"].popen.wait(timeout=10)
        if i < 20 and i % 2 == 0:
            results["first"].append(_sso_round_trip(http, first, a))
        else:
            results["second"].append(_sso_round_trip(http, second, a))
    assert all(results["first"]) and len(results["first"]) == 10
    assert all(results["second"]) and len(results["second"]) == 30
