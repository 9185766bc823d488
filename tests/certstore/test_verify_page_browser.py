"""The public verify page in real Chromium: upload a QR image, read the verdict."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

import signing.qr
from certstore.service import IssueRequest
from tests.support.browser import CHROMIUM_ARGS

from .conftest import DEMO_REQUESTS, PSB

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture
def server(app: Any) -> Iterator[str]:
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[Any]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN")  # the page follows Accept-Language (issue 18)
            pg = context.new_page()
            errors: list[str] = []
            pg.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
            pg.csp_errors = errors  # type: ignore[attr-defined]
            yield pg
        finally:
            browser.close()


@pytest.fixture
def cert(services: Any) -> Any:
    """Issued before the browser starts: Playwright's sync API runs an event loop in
    this thread, and pyHanko's synchronous calls start one of their own."""
    body = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    return services.certificates.issue(IssueRequest.from_json(body), agency_uscc=PSB).certificate


def test_upload_a_qr_png_and_see_valid(cert: Any, server: str, page: Any, tmp_path: Path) -> None:
    png = tmp_path / "qr.png"
    png.write_bytes(signing.qr.qr_png(cert.qr_text))

    page.goto(f"{server}/verify")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    camera = page.locator("#camera")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
    page.set_input_files("#file", str(png))
    page.click("#submit")
    verdict = page.locator("#verdict")
    verdict.wait_for()
    assert verdict.inner_text() == "有效证照"
    assert "valid" in (page.locator("#result").get_attribute("class") or "").split()
    assert page.locator("#holder").inner_text() == "张*丰"
    assert page.locator("#issuer").inner_text() == "北京市公安局朝阳分局"
    assert page.locator("#status").inner_text() == "有效"
    assert "张三丰" not in page.content()
    assert page.locator(".checks li.failed").count() == 0
    assert page.locator(".checks li.ok").count() >= 5
    assert not page.csp_errors


def test_english_and_a_tampered_text(cert: Any, server: str, page: Any) -> None:
    text = cert.qr_text
    tampered = text[:-5] + ("A" if text[-5] != "A" else "B") + text[-4:]
    page.goto(f"{server}/verify")
    page.click("a.lang")
    assert page.locator("h1").inner_text() == "Verify an electronic certificate"
    page.fill("#text", tampered)
    page.click("#submit")
    page.locator("#verdict").wait_for()
    # a changed payload is forged: its own verdict and colour, not "unreadable" and not "revoked"
    assert page.locator("#verdict").inner_text() == "Not a genuine certificate"
    assert "forged" in (page.locator("#result").get_attribute("class") or "").split()
    assert page.locator(".checks li.failed").count() >= 1
    assert "Checks" in page.content()
