"""Must show (issue 6): the citizen's wallet after SSO, in real Chromium.

The idp runs for real (``idp serve``) and so does certstore (``certstore
serve``), registered at the idp as a relying party allowed to receive the ID
number. Chromium opens the wallet, signs in at the idp, allows the ID number
on the consent page, and lands on the wallet listing the citizen's
certificate; the PDF downloads and the QR shows full screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.demo.processes import free_port, idp_cli, started

from .conftest import PERSON_ID, issue_args

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]
PASSWORD = "demo-password-for-tests"  # noqa: S105 - a test account


def _certstore(env: dict[str, str], *args: str) -> str:
    res = subprocess.run(  # noqa: S603 - our own command
        [str(Path(sys.executable).parent / "certstore"), *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert res.returncode == 0, f"certstore {args[0]} failed: {res.stderr[-2000:]}"
    return res.stdout


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
    )
    secret = json.loads(out)["client_secret"]
    cs_env = {
        **env, "YIWANG_CERTSTORE_PUBLIC_URL": cs_url,
        "YIWANG_CERTSTORE_CLIENT_ID": "certstore", "YIWANG_CERTSTORE_CLIENT_SECRET": secret,
    }
    _certstore(cs_env, "init", "--demo")
    issued = _certstore(cs_env, *issue_args("JZZM", tmp_path / "c.pdf"))
    identifier = next(w for w in issued.split() if w.startswith("1.2.156.3005.2."))
    bin_dir = Path(sys.executable).parent
    specs = [
        ("idp", [str(bin_dir / "idp"), "serve", "--port", str(idp_port)], env, f"{issuer}/healthz"),
        ("certstore", [str(bin_dir / "certstore"), "serve", "--port", str(cs_port)], cs_env, f"{cs_url}/verify"),
    ]
    with started(specs, tmp_path) as procs:
        yield {"issuer": issuer, "certstore": cs_url, "identifier": identifier, "procs": procs}


def test_wallet_after_sso(stack: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    issuer, cs = stack["issuer"], stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.goto(f"{cs}/wallet")
            page.wait_for_url(f"{issuer}/login*")
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
        finally:
            browser.close()
