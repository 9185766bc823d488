"""A single-page app on ``oidc-client-ts`` against a real ``idp serve``, in Chromium (issue 21 §1).

The app (tests/interop/spa: index.html, app.js, oidc-client-ts's browser
bundle from npm) is served from its own loopback origin. It signs in with
code + PKCE, reads userinfo cross-origin, renews with the rotated refresh
token and signs out through end_session with ``id_token_hint`` back to
itself. The same app on an origin no client registered gets its code (the
loopback redirect matches on any port) but the browser refuses it the
token answer: the idp sent no ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import browser_fixture, local_server, prepared_idp, sign_in  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPA = Path(__file__).resolve().parents[1] / "interop" / "spa"


def _npm_install() -> None:
    """oidc-client-ts into tests/interop/spa/node_modules, once (kept between runs)."""
    if (SPA / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js").exists():
        return
    command = ["npm", "ci" if (SPA / "package-lock.json").exists() else "install",
               "--no-audit", "--no-fund", "--silent"]
    out = subprocess.run(command, cwd=SPA, capture_output=True, text=True, timeout=300)  # noqa: S603
    assert out.returncode == 0, out.stderr[-2000:]


@contextlib.contextmanager
def spa_server(config: dict[str, str]) -> Iterator[str]:
    """tests/interop/spa and its config.json on an ephemeral loopback port; yields the origin."""
    body = json.dumps(config).encode()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(SPA), **kwargs)

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] == "/config.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    with local_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def spa_world(yiwang_env, tmp_path):
    _npm_install()
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    with serving(env, port, tmp_path / "idp.log"):
        # The client's id is needed in config.json before the app's port is known: a fixed id.
        config = {"authority": issuer, "client_id": "spa-example"}
        with spa_server(config) as app_origin, spa_server(config) as other_origin:
            page_uri = app_origin + "/index.html"
            client = json.loads(_idp(
                env, "clients", "add", "--name", "单页应用 SPA", "--client-id", "spa-example", "--public",
                "--redirect-uri", page_uri, "--post-logout-redirect-uri", page_uri,
                "--web-origin", app_origin, "--scope", "openid", "--scope", "profile",
                "--first-party", "--json"))
            assert client["attributes"]["web_origins"] == [app_origin]
            yield {"issuer": issuer, "app": app_origin, "other": other_origin, "client": client}


def _status(page, *wanted: str) -> str:
    page.wait_for_function(
        "ws => ws.includes(document.getElementById('status').textContent)", arg=list(wanted), timeout=15000)
    return page.locator("#status").text_content() or ""


def _out(page) -> dict:
    return json.loads(page.locator("#out").text_content() or "{}")


def _sign_in(page, origin: str) -> None:
    page.goto(origin + "/index.html")
    _status(page, "anonymous")
    page.click("#signin")
    page.wait_for_selector("input[name=id_number]")
    sign_in(page, ID_NUMBER, PASSWORD)


def test_oidc_client_ts_signs_in_renews_and_signs_out_and_another_origin_is_refused(spa_world, browser):
    issuer, app = spa_world["issuer"], spa_world["app"]
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    token_answers: list[dict[str, str]] = []
    page.on("response", lambda r: token_answers.append(r.headers) if r.url == issuer + "/token" else None)

    _sign_in(page, app)
    assert _status(page, "signed-in", "signin-failed") == "signed-in", _out(page)
    signed_in = _out(page)
    assert signed_in["sub"] and signed_in["has_refresh_token"]
    assert token_answers and token_answers[-1].get("access-control-allow-origin") == app
    assert "access-control-allow-credentials" not in token_answers[-1]

    page.click("#userinfo")  # a fetch with Authorization: a preflight, then GET /userinfo
    assert _status(page, "userinfo", "userinfo-failed") == "userinfo", _out(page)
    info = _out(page)
    assert info["sub"] == signed_in["sub"] and info["name"] == "张三"

    page.click("#renew")
    assert _status(page, "renewed", "renew-failed") == "renewed", _out(page)
    renewed = _out(page)
    assert renewed == {"sub": signed_in["sub"], "new_access_token": True, "new_refresh_token": True}

    page.click("#signout")
    assert _status(page, "signed-out", "error") == "signed-out"
    assert page.url.startswith(app + "/index.html")
    page.goto(issuer + "/account")  # the SSO session ended: the account page sends to the login form
    assert "/login" in page.url and page.locator("input[name=id_number]").count() == 1

    # The same app from an origin no client registered: the code comes (loopback
    # redirect, any port), the token answer does not reach the app.
    other = spa_world["other"]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: errors.append("failed " + r.url) if r.url == issuer + "/token" else None)
    token_answers.clear()
    page.on("response", lambda r: token_answers.append(r.headers) if r.url == issuer + "/token" else None)
    _sign_in(page, other)
    assert _status(page, "signed-in", "signin-failed") == "signin-failed"
    assert any("CORS" in e and "/token" in e for e in errors), errors
    for headers in token_answers:  # when Chromium reports the blocked answer at all
        assert "access-control-allow-origin" not in headers
    direct = requests.post(issuer + "/token", data={"grant_type": "authorization_code", "code": "x",
                                                     "client_id": "spa-example"},
                           headers={"Origin": other}, timeout=5)
    assert direct.status_code == 400 and "Access-Control-Allow-Origin" not in direct.headers
    context.close()
