"""The counter page in real Chromium (issue 15 §2): ask for two items, show the QR, a wallet answers,
the page shows only those items, the issuer and the status — at 390 px, with the strict CSP."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from certstore.models import Certificate
from certstore.service import IssueRequest
from keys import pki
from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc
from tests.support.browser import CHROMIUM_ARGS

from .conftest import DEMO_REQUESTS, PSB, make_settings, populate
from .vp_holder import Holder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def counter(tmp_path: Path, database_url: str, jwks_source: Any) -> Iterator[dict[str, Any]]:
    from certstore.web import create_app
    from certstore.wiring import build_services

    svc = build_services(make_settings(tmp_path, database_url, vp_counter_agency=PSB), jwks_source=jwks_source)
    populate(svc)
    certs = svc.certificates
    req = DEMO_REQUESTS["JZZM"]
    view = certs.issue(IssueRequest.from_json(req["body"]), agency_uscc=PSB).certificate
    with certs.sessions() as s:
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == view.identifier))
        uri, idx = certs.status_lists.uri(row.status_list), row.status_index
    holder = Holder()
    public = svc.settings.public_url
    credential = issue_sd_jwt_vc(
        CredentialClaims(issuer=public, vct=f"{public}/vct/JZZM", holder_jwk=holder.jwk, status_uri=uri,
                         status_index=idx, issued_at=int(time.time()),
                         disclosable={"holder_name": req["body"]["holder_name"], **req["body"]["fields"]}),
        pki.agency_signer(svc.keyring, PSB),
    ).credential
    app = create_app(services=svc)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{srv.server_port}", "holder": holder, "credential": credential}
    finally:
        srv.shutdown()
        thread.join(timeout=10)
        svc.close()


def _wallet_answers(base: str, request_id: str, holder: Holder, credential: str, names: list[str]) -> int:
    jar = requests.get(f"{base}/vp/requests/{request_id}", timeout=10).text
    part = jar.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    presentation = holder.present(credential, names, aud=claims["client_id"], nonce=claims["nonce"])
    from joserfc import jwe
    from joserfc.jwk import ECKey

    key = ECKey.import_key(claims["client_metadata"]["jwks"]["keys"][0])
    body = json.dumps({"vp_token": {"certificate": [presentation]}, "state": claims["state"]})
    token = jwe.encrypt_compact({"alg": "ECDH-ES", "enc": "A256GCM", "kid": key.kid}, body, key)
    return requests.post(f"{base}/vp/responses/{request_id}", data={"response": token}, timeout=10).status_code


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_counter_page_shows_the_result_of_a_presentation(counter: dict[str, Any], locale: str) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    base = counter["url"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale=locale, viewport={"width": 390, "height": 844}).new_page()
            csp: list[str] = []
            page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{base}/vp/counter?type=JZZM")
            page.check("input[name=claim][value=address]")
            page.check("input[name=claim][value=residence_since]")
            page.fill("#purpose", "租房" if locale == "zh-CN" else "tenancy")
            page.click("#create")
            page.wait_for_selector("#vp-qr svg")
            assert page.get_attribute("#same-device", "href").startswith(f"{'http://127.0.0.1:5100'}/wallet/present?")
            result_url = page.get_attribute("#vp-request", "data-result")
            request_id = result_url.rsplit("/", 1)[1]
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert _wallet_answers(base, request_id, counter["holder"], counter["credential"],
                                   ["address", "residence_since"]) == 200
            page.wait_for_selector("#vp-result:not(.yw-hidden)", timeout=10_000)
            assert page.get_attribute("#vp-result", "data-status") == "valid"
            shown = page.eval_on_selector_all("#vp-claims dd", "els => els.map(e => e.dataset.claim)")
            assert sorted(shown) == ["address", "residence_since"]
            text = page.inner_text("#vp-result")
            assert DEMO_REQUESTS["JZZM"]["body"]["fields"]["address"] in text
            assert DEMO_REQUESTS["JZZM"]["body"]["holder_name"] not in text
            assert ("有效" in text) == (locale == "zh-CN")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert csp == []
        finally:
            browser.close()
