"""Issue 18 "The citizen": no dead ends, verdicts that say what happened, revoked certificates shown as such.

Request-level checks of certstore's citizen pages (the browser tour is
tests/test_page_tour.py): a signed-out deep link returns after sign-in (to
a wallet path only), signing out ends on a page that says so, the verify
page tells "not a certificate QR" from "forged" from "revoked" and says
what an empty form lacks, and the wallet greys out a revoked certificate's
QR with the reason and date.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from certstore.service import IssueRequest
from certstore.wallet import StaticResolver, WalletService
from certstore.web.wallet_pages import _safe_next

from .conftest import DEMO_REQUESTS, PERSON_ID
from .test_wallet_pages_errors import _RecordingIdp

BROWSER = {"Accept": "text/html"}


@pytest.fixture
def wallet(app: Any, services: Any) -> WalletService:
    svc = WalletService(services.certificates, StaticResolver())
    app.extensions["certstore.wallet"] = svc
    services.settings = services.settings.with_(client_id="certstore")
    return svc


@pytest.fixture
def cert(services: Any) -> Any:
    req = DEMO_REQUESTS["JZZM"]
    return services.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate


def _idp(app: Any) -> _RecordingIdp:
    idp = _RecordingIdp({"sub": "pw", "name": "张三丰", "id_number": PERSON_ID})
    app.extensions["certstore.oauth"] = type("O", (), {"idp": idp})()
    return idp


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


@pytest.mark.parametrize(
    "value,safe",
    [
        ("/wallet/certificates/1.2.156.3005.2.x/qr", "/wallet/certificates/1.2.156.3005.2.x/qr"),
        ("//evil.example/wallet/", None),
        ("https://evil.example/wallet/x", None),
        ("/verify", None),
        ("/wallet/../api/v1/x", None),
        ("/wallet/x?y=1", None),
        ("/wallet/\\evil", None),
        ("/wallet/x\r\nSet-Cookie: a=b", None),
        ("", None),
    ],
)
def test_only_a_wallet_path_is_a_return_address(value: str, safe: str | None) -> None:
    assert _safe_next(value) == safe


def test_a_signed_out_deep_link_comes_back_after_sign_in(app: Any, client: Any, wallet: WalletService, cert: Any) -> None:
    idp = _idp(app)
    deep = f"/wallet/certificates/{cert.identifier}/qr"
    resp = client.get(deep, headers=BROWSER)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/wallet/login?next={deep}")
    assert client.get(resp.headers["Location"]).status_code == 302
    assert idp.started  # the sign-in started at the idp
    back = client.get("/wallet/callback?code=c&state=s")
    assert back.status_code == 302 and back.headers["Location"] == deep
    page = client.get(deep)
    assert page.status_code == 200 and 'id="qr"' in page.get_data(as_text=True)


def test_a_foreign_return_address_is_ignored(app: Any, client: Any, wallet: WalletService) -> None:
    _idp(app)
    client.get("/wallet/login?next=//evil.example/")
    back = client.get("/wallet/callback?code=c&state=s")
    assert back.status_code == 302 and back.headers["Location"] == "/wallet"


def test_signing_out_sends_state_and_the_verify_page_says_signed_out(app: Any, client: Any, wallet: WalletService) -> None:
    _idp(app)
    client.get("/wallet/callback?code=c&state=s")
    html = client.get("/wallet").get_data(as_text=True)
    out = client.post("/wallet/logout", data={"csrf": _csrf(html)}).get_data(as_text=True)
    assert 'name="state" value="signed-out"' in out
    zh = client.get("/verify?state=signed-out").get_data(as_text=True)
    assert 'id="signed-out"' in zh and "您已退出所有政务服务网站" in zh
    en = client.get("/verify?state=signed-out&lang=en").get_data(as_text=True)
    assert "You are signed out of every service" in en
    assert 'id="signed-out"' not in client.get("/verify").get_data(as_text=True)


def _submit(client: Any, lang: str = "zh", **data: Any) -> tuple[int, str]:
    token = _csrf(client.get(f"/verify?lang={lang}").get_data(as_text=True))
    resp = client.post("/verify", data={"csrf": token, "lang": lang, **data}, content_type="multipart/form-data")
    return resp.status_code, resp.get_data(as_text=True)


def _verdict(html: str) -> tuple[str, str]:
    cls = re.search(r'<section id="result" class="verdict (\w+)', html)
    head = re.search(r'<h2 id="verdict">([^<]*)</h2>', html)
    assert cls and head, html[:2000]
    return cls.group(1), head.group(1)


def test_the_verify_page_tells_the_four_outcomes_apart(client: Any, services: Any, cert: Any) -> None:
    import io

    status, html = _submit(client)
    assert status == 400 and "请选择二维码图片或证照 PDF" in html and 'id="result"' not in html

    assert _verdict(_submit(client, text=cert.qr_text)[1]) == ("valid", "有效证照")
    assert _verdict(_submit(client, text="hello, not a QR")[1]) == ("unreadable", "不是电子证照二维码，或无法识别")
    tampered = cert.qr_text[:-5] + ("A" if cert.qr_text[-5] != "A" else "B") + cert.qr_text[-4:]
    assert _verdict(_submit(client, lang="en", text=tampered)[1]) == ("forged", "Not a genuine certificate")
    status, html = _submit(client, file=(io.BytesIO(b"GIF89a not really"), "x.gif"))
    assert status == 422 and _verdict(html)[0] == "unreadable"

    services.certificates.lifecycle.change(cert.identifier, "revoke", reason="补发新证", actor="test", agency_uscc=None)
    status, html = _submit(client, text=cert.qr_text)
    assert _verdict(html) == ("revoked", "证照真实，但已不再有效")
    assert re.search(r'<p id="cause"><strong>原因：</strong>已撤销</p>', html), html


def test_a_revoked_certificate_is_greyed_out_in_the_wallet(app: Any, client: Any, wallet: WalletService, services: Any, cert: Any) -> None:
    _idp(app)
    client.get("/wallet/callback?code=c&state=s")
    services.certificates.lifecycle.change(cert.identifier, "revoke", reason="补发新证", actor="test", agency_uscc=None)
    html = client.get("/wallet").get_data(as_text=True)
    item = html.split(f'data-identifier="{cert.identifier}"', 1)[1].split("</li>", 1)[0]
    assert "cert-inactive" in html and "补发新证" in item and re.search(r"已于 \d{4}-\d{2}-\d{2} \d{2}:\d{2}（北京时间）撤销", item)
    assert 'class="qr"' not in item and 'aria-disabled="true"' in item  # no QR offered
    assert "已撤销，仅供存档" in item  # the PDF is labelled
    qr = client.get(f"/wallet/certificates/{cert.identifier}/qr").get_data(as_text=True)
    assert 'id="qr-inactive"' in qr and 'id="qr"' not in qr
