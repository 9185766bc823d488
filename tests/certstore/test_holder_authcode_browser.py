"""Our wallet as a holder receiving by signing in (OpenID4VCI authorization code flow), in real Chromium.

The idp and certstore run for real (``idp serve``, ``certstore serve``). The
wallet's idp client is public (PKCE S256), as ``idp init --demo`` registers
``demo-wallet``. Chromium opens the holder page, follows "sign in to receive"
for JZZM, signs in at the idp and comes back: certstore's holder backend has
checked state and nonce and kept the idp's token; the page signs a key proof
with its non-extractable WebCrypto key, and the credential it stores is bound
to that key (``cnf.jwk``) and is the citizen's own certificate. The issuer's
log names the flow and the wallet client. The credential is then presented
to the verifier, which finds it valid with only the asked items. A replayed
callback (the same state) and a second use of the spent handle are refused.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.demo.processes import certstore_cli, free_port, idp_cli, started
from tests.support.browser import CHROMIUM_ARGS

from .conftest import PERSON_ID, issue_args

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "demo-password-for-tests"  # noqa: S105 - a test account
ASKED = ["address", "residence_since"]


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
    # the wallet's client as idp init --demo registers demo-wallet: public (PKCE), first party
    idp_cli(
        env, "clients", "add", "--name", "电子证照钱包 · 领取凭证", "--client-id", "demo-wallet", "--public",
        "--first-party", "--redirect-uri", f"{cs_url}/wallet/vci/callback", "--scope", "openid",
        "--scope", "certs:read:JZZM", "--json",
    )
    agency = json.loads(idp_cli(
        env, "clients", "add", "--name", "PSB", "--client-id", "demo-psb", "--grant-type", "client_credentials",
        "--scope", "certs:issue", "--json",
    ))
    cs_env = {
        **env, "YIWANG_CERTSTORE_PUBLIC_URL": cs_url,
        "YIWANG_CERTSTORE_CLIENT_ID": "certstore", "YIWANG_CERTSTORE_CLIENT_SECRET": secret,
        "YIWANG_CERTSTORE_VCI_WALLET_CLIENTS": "demo-wallet", "YIWANG_CERTSTORE_HOLDER_CLIENT_ID": "demo-wallet",
    }
    certstore_cli(cs_env, "init", "--demo")
    issued = certstore_cli(cs_env, *issue_args("JZZM", tmp_path / "c.pdf"))
    identifier = next(w for w in issued.split() if w.startswith("1.2.156.3005.2."))
    bin_dir = Path(sys.executable).parent
    specs = [
        ("idp", [str(bin_dir / "idp"), "serve", "--port", str(idp_port)], env, f"{issuer}/healthz"),
        ("certstore", [str(bin_dir / "certstore"), "serve", "--port", str(cs_port)], cs_env, f"{cs_url}/verify"),
    ]
    with started(specs, tmp_path) as procs:
        tok = requests.post(f"{issuer}/token", data={"grant_type": "client_credentials", "scope": "certs:issue"},
                            auth=("demo-psb", agency["client_secret"]), timeout=10)
        assert tok.status_code == 200, tok.text
        yield {"issuer": issuer, "certstore": cs_url, "identifier": identifier, "procs": procs,
               "auth": {"Authorization": f"Bearer {tok.json()['access_token']}"}}


def _part(text: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


def test_sign_in_receive_bound_to_the_browser_key_then_present(stack: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    issuer, cs = stack["issuer"], stack["certstore"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
            page = context.new_page()
            csp: list[str] = []
            page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
            authorize: list[str] = []
            page.on("request", lambda r: authorize.append(r.url) if r.url.startswith(f"{issuer}/authorize") else None)
            page.goto(f"{cs}/wallet/holder")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.click("#holder-signin a[data-type=JZZM]")
            page.wait_for_url(f"{issuer}/authorize*")
            page.fill("input[name=id_number]", PERSON_ID)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#holder-list li.holder-credential", timeout=20_000)
            assert page.url == f"{cs}/wallet/holder", page.url  # the spent ?vci=signed-in is gone
            assert "notice" in (page.get_attribute("#holder-receive-status", "class") or "")

            # the authorization request: public client, PKCE S256, state, nonce, the configuration's scope
            from urllib.parse import parse_qs, urlsplit

            first = {k: v[0] for k, v in parse_qs(urlsplit(authorize[0]).query).items()}
            assert first["client_id"] == "demo-wallet"
            assert first["code_challenge_method"] == "S256" and first["code_challenge"]
            assert first["state"] and first["nonce"]
            assert set(first["scope"].split()) == {"openid", "certs:read:JZZM"}
            assert first["redirect_uri"] == f"{cs}/wallet/vci/callback"

            # bound to the browser's key: cnf.jwk is the public half of the non-extractable key in IndexedDB
            held = page.evaluate("""() => new Promise((ok, ko) => {
                const r = indexedDB.open("yiwang-holder");
                r.onsuccess = () => {
                  const t = r.result.transaction(["keys", "credentials"]);
                  const k = t.objectStore("keys").get("holder"), c = t.objectStore("credentials").getAll();
                  t.oncomplete = () => crypto.subtle.exportKey("jwk", k.result.publicKey).then(j => ok({
                    extractable: k.result.privateKey.extractable, x: j.x, y: j.y,
                    credentials: c.result.map(i => i.credential)}));
                };
                r.onerror = ko; })""")
            assert held["extractable"] is False
            assert len(held["credentials"]) == 1
            payload = _part(held["credentials"][0].split("~")[0].split(".")[1])
            assert payload["cnf"]["jwk"]["x"] == held["x"] and payload["cnf"]["jwk"]["y"] == held["y"]
            assert payload["vct"] == f"{cs}/vct/JZZM" and payload["iss"] == cs
            for cookie in context.cookies():
                assert PERSON_ID not in cookie["value"]
            from axe_playwright_python.sync_playwright import Axe

            # the holder page with its sign-in links and the received credential: axe-clean, nothing sideways
            bad = [v["id"] for v in Axe().run(page).response["violations"] if v.get("impact") in ("serious", "critical")]
            assert bad == [], bad
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            log = requests.get(f"{cs}/api/v1/certificates/{stack['identifier']}/credentials",
                               headers=stack["auth"], timeout=10).json()["credentials"]
            assert [(e["flow"], e["client_id"]) for e in log] == [("authorization_code", "demo-wallet")]

            # the handle is spent: the same cookie with another proof is refused (no second credential)
            again = page.evaluate("""() => fetch("/wallet/vci/credential", {method: "POST",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify({proof: "x.y.z"})})
                .then(r => r.status)""")
            assert again == 401
            # a replayed callback (its state is spent) gives no token
            replay = page.goto(f"{cs}/wallet/vci/callback?code=abc&state={first['state']}")
            assert replay is not None and replay.status == 400

            # presented to the verifier: only the asked items, valid
            created = requests.post(f"{cs}/api/v1/vp/requests", headers=stack["auth"], timeout=10, json={
                "type": "JZZM", "claims": ASKED, "response_mode": "direct_post.jwt", "purpose": "租房"}).json()
            page.goto(f"{cs}/wallet/present?" + urlencode({"client_id": created["client_id"],
                                                          "request_uri": created["request_uri"]}))
            page.wait_for_selector("#present-actions:not(.yw-hidden)", timeout=10_000)
            shown = page.eval_on_selector_all("#present-claims dd", "els => els.map(e => e.dataset.claim)")
            assert shown == ASKED
            page.click("#present-share")
            page.wait_for_selector("#present-status.notice", timeout=10_000)
            result = requests.get(f"{cs}/vp/results/{created['request_id']}", timeout=10,
                                  headers={"X-VP-View": created["view_key"]}).json()
            assert result["outcome"] == "verified" and result["status"] == "valid", result
            assert sorted(result["claims"]) == ASKED
            assert csp == []
        finally:
            browser.close()
