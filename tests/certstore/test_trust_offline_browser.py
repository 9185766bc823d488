"""Verify a QR entirely in the browser, with the network cut (real Chromium)."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

import signing.qr
from certstore.service import IssueRequest
from certstore.tokens import StaticJwksSource
from tests.support.browser import CHROMIUM_ARGS

from .conftest import DEMO_REQUESTS, make_settings, populate

pytestmark = [pytest.mark.browser, pytest.mark.slow]



class _Late:
    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture
def served(tmp_path: Path, database_url: str, jwks_source: StaticJwksSource) -> Iterator[tuple[str, Any]]:
    from certstore.web import create_app
    from certstore.wiring import build_services

    late = _Late()
    srv = make_server("127.0.0.1", 0, late, threaded=True)
    base = f"http://127.0.0.1:{srv.server_port}"
    svc = build_services(make_settings(tmp_path, database_url, public_url=base), jwks_source=jwks_source)
    populate(svc)
    late.app = create_app(services=svc)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, svc
    finally:
        srv.shutdown()
        thread.join(timeout=10)
        svc.close()


def _issue(svc: Any, code: str) -> Any:
    req = DEMO_REQUESTS[code]
    return svc.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate


def test_offline_verification_in_chromium(served: tuple[str, Any]) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    base, svc = served
    good = _issue(svc, "JZZM")
    revoked = _issue(svc, "BYZS")
    svc.certificates.lifecycle.change(revoked.identifier, "revoke", reason="issued in error", actor="test", agency_uscc=None)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/verify/offline/")
            page.wait_for_selector("#state[data-ready=yes]", timeout=20_000)
            assert "Ready to use offline" in page.inner_text("#state")  # Accept-Language en: the English page

            # Cut the network, reload: the service worker serves the page, the trust list and the lists.
            requests: list[str] = []
            context.on("request", lambda r: requests.append(r.url + " " + (r.post_data or "")))
            context.set_offline(True)
            page.reload()
            page.wait_for_selector("#state[data-ready=yes]", timeout=20_000)

            def verify(text: str) -> tuple[str, dict[str, str]]:
                page.fill("#text", text)
                page.click("#verify")
                page.wait_for_selector("#result:not([hidden])")
                page.wait_for_function("document.querySelectorAll('#checks li').length > 0")
                checks = {
                    li.get_attribute("data-check") or "": li.inner_text()
                    for li in page.query_selector_all("#checks li")
                }
                verdict = page.inner_text("#verdict")
                page.evaluate("document.getElementById('result').hidden = true; document.getElementById('checks').textContent = ''")
                return verdict, checks

            verdict, checks = verify(good.qr_text)
            assert verdict == "Valid certificate", checks
            assert set(checks) == {"format", "signature", "issuer_trusted", "type_allowed", "validity", "status"}
            assert "Valid according to the issuer's status list" in checks["status"]
            assert page.inner_text("#holder") == "张*丰"

            verdict, checks = verify(revoked.qr_text)
            assert verdict == "Genuine, but no longer valid"
            assert "revoked" in checks["status"].lower() and checks["signature"].startswith("✓")

            text = good.qr_text
            flipped = text[:-5] + ("0" if text[-5] != "0" else "1") + text[-4:]
            verdict, checks = verify(flipped)
            assert verdict == "Not a genuine certificate"

            # A QR image (a photo or screenshot), read in the page by jsQR, still offline.
            png = Path(tempfile.mkdtemp()) / "qr.png"
            png.write_bytes(signing.qr.qr_png(good.qr_text, box_size=6))
            page.set_input_files("#image", str(png))
            page.wait_for_selector("#result:not([hidden])")
            page.wait_for_function("document.querySelectorAll('#checks li').length > 0")
            assert page.input_value("#text") == good.qr_text
            assert page.inner_text("#verdict") == "Valid certificate"
            page.evaluate("document.getElementById('result').hidden = true; document.getElementById('checks').textContent = ''")

            verdict, checks = verify("HC1:NCFOXN%TS3DH")
            assert verdict == "Not a certificate QR code, or it could not be read" and "YW1:" in checks["format"]

            # Nothing left the device: no request carried a payload.
            for r in requests:
                assert good.qr_text[4:40] not in r and revoked.qr_text[4:40] not in r
            assert not [m for m in problems if "Content Security Policy" in m], problems
        finally:
            browser.close()
