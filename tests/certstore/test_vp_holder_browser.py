"""Our wallet as a holder in real Chromium (issue 15 §2): a credential received through OpenID4VCI (H4's issuer,
pre-authorized code with its tx_code) under a non-extractable WebCrypto key kept in IndexedDB; a counter's
request opened on the same device shows who asks and for what; "Share" sends exactly those items (an encrypted
direct_post.jwt answer made in the browser), and the verifier finds them valid; "Decline" sends nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from werkzeug.serving import make_server

from certstore.service import IssueRequest
from tests.support.browser import CHROMIUM_ARGS

from .conftest import DEMO_REQUESTS, PSB, make_settings, populate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASKED = ["address", "residence_since"]


@pytest.fixture
def live(tmp_path: Path, database_url: str, jwks_source: Any, mint: Any) -> Iterator[dict[str, Any]]:
    from certstore.web import create_app
    from certstore.wiring import build_services

    srv = make_server("127.0.0.1", 0, lambda e, s: app(e, s), threaded=True)
    url = f"http://127.0.0.1:{srv.server_port}"
    svc = build_services(make_settings(tmp_path, database_url, public_url=url), jwks_source=jwks_source)
    populate(svc)
    view = svc.certificates.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
    app = create_app(services=svc)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    auth = {"Authorization": f"Bearer {mint('demo-psb')}"}
    offer = requests.post(f"{url}/api/v1/certificates/{view.identifier}/credential-offer", headers=auth, timeout=10)
    assert offer.status_code == 201, offer.text
    try:
        yield {"url": url, "auth": auth, "offer": offer.json()}
    finally:
        srv.shutdown()
        thread.join(timeout=10)
        svc.close()


def _request(live: dict[str, Any], mode: str) -> dict[str, Any]:
    resp = requests.post(f"{live['url']}/api/v1/vp/requests", headers=live["auth"], timeout=10,
                         json={"type": "JZZM", "claims": ASKED, "response_mode": mode, "purpose": "租房"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _result(live: dict[str, Any], created: dict[str, Any]) -> dict[str, Any]:
    return dict(requests.get(f"{live['url']}/vp/results/{created['request_id']}", timeout=10,
                             headers={"X-VP-View": created["view_key"]}).json())


def test_receive_then_present_only_the_asked_items(live: dict[str, Any]) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    base = live["url"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}).new_page()
            csp: list[str] = []
            page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{base}/wallet/holder")
            page.fill("#holder-offer", live["offer"]["offer_link"])
            page.fill("#holder-tx", live["offer"]["tx_code"])
            page.click("#holder-add")
            page.wait_for_selector("#holder-list li.holder-credential", timeout=15_000)
            assert page.get_attribute("#holder-list li.holder-credential", "data-type") == "JZZM"
            extractable = page.evaluate("""() => new Promise((ok, ko) => {
                const r = indexedDB.open("yiwang-holder");
                r.onsuccess = () => { const g = r.result.transaction("keys").objectStore("keys").get("holder");
                  g.onsuccess = () => ok([g.result.privateKey.extractable, g.result.privateKey.type]); };
                r.onerror = ko; })""")
            assert extractable == [False, "private"]

            for mode in ("direct_post.jwt", "direct_post"):
                created = _request(live, mode)
                link = f"{base}/wallet/present?" + urlencode({"client_id": created["client_id"],
                                                              "request_uri": created["request_uri"]})
                page.goto(link)
                page.wait_for_selector("#present-actions:not(.yw-hidden)", timeout=10_000)
                assert page.inner_text("#present-verifier") == "北京市公安局朝阳分局"
                shown = page.eval_on_selector_all("#present-claims dd", "els => els.map(e => e.dataset.claim)")
                assert shown == ASKED
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
                page.click("#present-share")
                page.wait_for_selector("#present-status.notice", timeout=10_000)
                result = _result(live, created)
                assert result["outcome"] == "verified" and result["status"] == "valid", result
                assert sorted(result["claims"]) == ASKED

            declined = _request(live, "direct_post.jwt")
            page.goto(f"{base}/wallet/present?" + urlencode({"client_id": declined["client_id"],
                                                            "request_uri": declined["request_uri"]}))
            page.wait_for_selector("#present-actions:not(.yw-hidden)", timeout=10_000)
            page.click("#present-decline")
            assert _result(live, declined)["outcome"] == "pending"

            # a link whose client id is not the one that signed the request: refused before anything is shown
            other = _request(live, "direct_post")
            page.goto(f"{base}/wallet/present?" + urlencode({"client_id": "x509_hash:forged",
                                                            "request_uri": other["request_uri"]}))
            page.wait_for_selector("#present-status.error", timeout=10_000)
            assert page.is_hidden("#present-actions")
            assert csp == []
        finally:
            browser.close()
