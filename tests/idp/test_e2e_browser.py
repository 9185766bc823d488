"""End to end: `idp serve` for real, Authlib's own RP client, real Chromium through the pages.

Issue 3, must show: a relying-party library nobody here wrote (Authlib's
``OAuth2Session``) builds the authorization URL with PKCE S256, Chromium
signs in on the login page and consents, the RP exchanges the code,
validates the ID token against the JWKS it found through discovery, and
gets userinfo whose ``sub`` matches. The login page is photographed in
both languages for docs/screenshots.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.support.browser import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
IDP_BIN = str(Path(sys.executable).with_name("idp"))  # the console script next to this interpreter
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _idp(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([IDP_BIN, *args],  # noqa: S603 - our own CLI
                         env=env, input=stdin, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@contextlib.contextmanager
def serving(env: dict[str, str], port: int, log_path: Path) -> Iterator[None]:
    """``idp serve`` on ``port`` with ``env``, until it answers /healthz; stopped on exit."""
    issuer = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([IDP_BIN, "serve", "--port", str(port), "--threads", "4"],  # noqa: S603
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    if requests.get(issuer + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None, log_path.read_text()
                assert time.time() < deadline, "idp serve did not come up"
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def served_idp(yiwang_env, tmp_path):
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, **yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "1024"}
    env = {k: v for k, v in env.items() if not k.startswith("YIWANG_TEST_")}
    _idp(env, "db", "upgrade")
    _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD + "\n")
    cb_port = _free_port()
    redirect_uri = f"http://127.0.0.1:{cb_port}/cb"
    client = json.loads(_idp(env, "clients", "add", "--name", "测试门户 Test portal", "--redirect-uri", redirect_uri,
                             "--scope", "openid", "--scope", "profile", "--json"))
    with serving(env, port, tmp_path / "idp.log"):
        yield {"issuer": issuer, "client": client, "redirect_uri": redirect_uri}


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_authlib_rp_signs_in_through_chromium(served_idp, browser, monkeypatch):
    from authlib.integrations.requests_client import OAuth2Session
    from joserfc import jwt
    from joserfc.jwk import KeySet

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test idp listens on plain http
    issuer = served_idp["issuer"]
    client = served_idp["client"]
    meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == issuer

    rp = OAuth2Session(client["client_id"], client["client_secret"], scope="openid profile",
                       redirect_uri=served_idp["redirect_uri"], code_challenge_method="S256")
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    page = browser.new_page(locale="zh-CN")
    captured: list[str] = []

    def capture(route):
        captured.append(route.request.url)
        route.fulfill(status=200, body="signed in", content_type="text/plain")

    page.route(served_idp["redirect_uri"] + "*", capture)
    page.goto(url)
    assert page.locator("input[name=id_number]").is_visible()
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#allow")  # the consent page
    page.click("#allow")
    page.wait_for_load_state()
    for _ in range(50):
        if captured:
            break
        page.wait_for_timeout(100)
    assert captured, page.content()[:500]
    callback = captured[0]
    assert "iss=" in callback and f"state={state}" in callback

    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    jwks = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    decoded = jwt.decode(token["id_token"], jwks, algorithms=meta["id_token_signing_alg_values_supported"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client["client_id"]},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
    ).validate(decoded.claims)
    claims = decoded.claims
    assert claims["name"] == "张三" and claims["sid"]
    info = rp.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["name"] == "张三"


def test_login_page_in_both_languages(served_idp, browser):
    issuer = served_idp["issuer"]
    shots = os.environ.get("DOCS_SCREENSHOTS") == "1"  # only `make screenshots` rewrites docs/screenshots
    if shots:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    zh = browser.new_page(viewport={"width": 900, "height": 640}, locale="en-US")  # default is Chinese regardless
    zh.goto(issuer + "/login?lang=zh-CN")
    assert zh.locator("html").get_attribute("lang") == "zh-CN"
    assert "居民身份证号码" in zh.content()
    if shots:
        zh.screenshot(path=str(SCREENSHOTS / "login-zh.png"))

    en = browser.new_page(viewport={"width": 900, "height": 640}, locale="zh-CN")
    en.goto(issuer + "/login?lang=en")
    assert en.locator("html").get_attribute("lang") == "en"
    # the page's own script checks the check character before anything is sent
    wrong = ID_NUMBER[:17] + ("1" if ID_NUMBER[17] != "1" else "2")
    en.fill("input[name=id_number]", wrong)
    en.fill("input[name=password]", "whatever")
    en.click("button[type=submit]")
    message = en.locator("#id_number_msg")
    assert "check character does not match" in message.inner_text()
    assert en.url.endswith("/login?lang=en")  # not submitted
    if shots:
        en.screenshot(path=str(SCREENSHOTS / "login-en.png"))
