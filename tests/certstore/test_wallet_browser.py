"""Must show (issue 6): the wallet after SSO and sharing consent from a second portal, in real Chromium.

The idp runs for real (``idp serve``) and so does certstore (``certstore
serve``), registered at the idp as a relying party allowed to receive the ID
number. Chromium opens the wallet, signs in at the idp, allows the ID number
on the consent page, and lands on the wallet listing the citizen's
certificate; the PDF downloads and the QR shows full screen. Then a second
portal asks for ``certs:read`` through the idp's consent screen (single sign-on:
no login form), reads the certificate from ``/api/v1/me/certificates`` with
the citizen's token — certstore learns whose it is by introspection, the token
itself carries no ID number — and the read appears in the wallet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.demo.processes import certstore_cli, free_port, idp_cli, started
from tests.support.browser import CHROMIUM_ARGS

from .conftest import PERSON_ID, issue_args

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "demo-password-for-tests"  # noqa: S105 - a test account


@pytest.fixture
def stack(yiwang_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    idp_port, cs_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    cs_url = f"http://127.0.0.1:{cs_port}"
    env = {**yiwang_env, "YIWANG_ISSUER": issuer}
    idp_cli(env, "init")
    idp_cli(env, "users", "add", "--id-number", PERSON_ID, "--name", "张三丰", "--password-stdin", stdin=PASSWORD)
    out = idp_cli(
        env, "clients", "add", "--name", "电子证照 certstore", "--client-id", "certstore",
        "--redirect-uri", f"{cs_url}/wallet/callback", "--scope", "openid", "--scope", "profile",
        "--scope", "id_number", "--may-receive-id-number", "--json",
        "--backchannel-logout-uri", f"{cs_url}/wallet/backchannel-logout",
        "--post-logout-redirect-uri", f"{cs_url}/verify",
    )
    secret = json.loads(out)["client_secret"]
    cs_env = {
        **env, "YIWANG_CERTSTORE_PUBLIC_URL": cs_url,
        "YIWANG_CERTSTORE_CLIENT_ID": "certstore", "YIWANG_CERTSTORE_CLIENT_SECRET": secret,
    }
    portal_cb = f"http://127.0.0.1:{free_port()}/cb"  # nothing listens: the test reads the code off the redirect
    portal = json.loads(idp_cli(
        env, "clients", "add", "--name", "住房保障门户 Housing portal", "--redirect-uri", portal_cb,
        "--scope", "openid", "--scope", "certs:read", "--json",
    ))
    certstore_cli(cs_env, "init", "--demo")
    issued = certstore_cli(cs_env, *issue_args("JZZM", tmp_path / "c.pdf"))
    identifier = next(w for w in issued.split() if w.startswith("1.2.156.3005.2."))
    bin_dir = Path(sys.executable).parent
    specs = [
        ("idp", [str(bin_dir / "idp"), "serve", "--port", str(idp_port)], env, f"{issuer}/healthz"),
        ("certstore", [str(bin_dir / "certstore"), "serve", "--port", str(cs_port)], cs_env, f"{cs_url}/verify"),
    ]
    with started(specs, tmp_path) as procs:
        yield {
            "issuer": issuer, "certstore": cs_url, "identifier": identifier, "procs": procs,
            "portal": portal, "portal_cb": portal_cb,
        }


def test_wallet_after_sso(stack: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    issuer, cs = stack["issuer"], stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, locale="zh-CN")
            page = context.new_page()
            page.goto(f"{cs}/wallet")
            page.wait_for_url(f"{issuer}/authorize*")  # the login form answers /authorize
            page.fill("input[name=id_number]", PERSON_ID)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{issuer}/consent*")
            page.check("#share_id_number")
            page.click("#allow")
            page.wait_for_url(f"{cs}/wallet")
            html = page.content()
            assert stack["identifier"] in html, stack["procs"]["certstore"].output()
            assert PERSON_ID not in html
            assert page.inner_text("#no-reads")  # nobody has read anything yet
            item = page.locator(f"li.cert[data-identifier='{stack['identifier']}']")
            assert "有效" in item.inner_text()
            with page.expect_download() as dl:
                item.locator("a.pdf").click()
            assert Path(dl.value.path()).read_bytes().startswith(b"%PDF-")
            item.locator("a.qr").click()
            page.wait_for_selector("img#qr")
            assert page.evaluate("document.getElementById('qr').naturalWidth") > 100
            for cookie in context.cookies():
                assert PERSON_ID not in cookie["value"]

            # A second portal asks, through the idp's consent screen, to read the certificates.
            portal, cb = stack["portal"], stack["portal_cb"]
            verifier = secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            redirects: list[str] = []
            page.on("request", lambda r: redirects.append(r.url) if r.url.startswith(cb) else None)
            params = {
                "response_type": "code", "client_id": portal["client_id"], "redirect_uri": cb,
                "scope": "openid certs:read", "state": "s1", "nonce": "n1",
                "code_challenge": challenge, "code_challenge_method": "S256",
            }
            page.goto(f"{issuer}/authorize?{urlencode(params)}")
            page.wait_for_url(f"{issuer}/consent*")  # SSO: no login form, only this portal's consent
            body = page.inner_text("body")
            assert "certs:read" in page.content() or "证照" in body or "certificates" in body
            page.click("#allow")
            deadline = time.monotonic() + 20
            while not redirects and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            code = parse_qs(urlsplit(redirects[0]).query)["code"][0]
            tokens = requests.post(
                f"{issuer}/token",
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": cb, "code_verifier": verifier},
                auth=(portal["client_id"], portal["client_secret"]), timeout=10,
            ).json()
            access = tokens["access_token"]
            assert PERSON_ID not in base64.urlsafe_b64decode(access.split(".")[1] + "==").decode()
            shared = requests.get(
                f"{cs}/api/v1/me/certificates", params={"purpose": "住房保障申请"},
                headers={"Authorization": f"Bearer {access}"}, timeout=10,
            )
            assert shared.status_code == 200, shared.text
            assert [c["identifier"] for c in shared.json()["certificates"]] == [stack["identifier"]]

            # ... and the citizen sees it in the wallet. In a fresh tab of the same browser: the
            # old one is still failing to load the portal's callback (nothing listens there), and
            # that error page could interrupt a navigation started now.
            page.close()
            page = context.new_page()
            page.goto(f"{cs}/wallet")
            reads = page.inner_text("#reads")
            assert "住房保障门户 Housing portal" in reads and "住房保障申请" in reads

            # Single sign-out: signing out at the idp ends the wallet session (back-channel logout).
            page.goto(f"{issuer}/logout")
            page.click("#confirm-logout")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                resp = requests.get(f"{cs}/wallet", cookies={c["name"]: c["value"] for c in context.cookies(cs)},
                                    allow_redirects=False, timeout=10)
                if resp.status_code == 302:
                    break
                time.sleep(0.2)
            assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet/login"), stack["procs"]["idp"].output()
        finally:
            browser.close()
