"""Issue 18 §3: a citizen who keeps the ID number gets a page, not JSON; browsers get error pages.

The wallet's page routes answer an error as a page in Chinese and English
when the browser prefers ``text/html``; the API, the back-channel logout
receiver and any client that does not ask for HTML keep
``application/problem+json``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from certstore.wallet import StaticResolver, WalletService

from .conftest import ISSUER_URL, PERSON_ID
from .test_wallet import _FakeOAuth
from .test_wallet_logout import continue_url

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def wallet(app: Any, services: Any) -> WalletService:
    svc = WalletService(services.certificates, StaticResolver())
    app.extensions["certstore.wallet"] = svc
    services.settings = services.settings.with_(client_id="certstore")
    return svc


class _RecordingIdp:
    """Authlib's client as the wallet uses it: records how the sign-in was started."""

    def __init__(self, userinfo: dict[str, str]) -> None:
        self.info = userinfo
        self.started: list[dict[str, Any]] = []

    def authorize_redirect(self, redirect_uri: str, **kw: Any) -> Any:
        from flask import redirect

        self.started.append({"redirect_uri": redirect_uri, **kw})
        return redirect(f"{ISSUER_URL}/authorize")

    def authorize_access_token(self) -> dict[str, Any]:
        return {"access_token": "at", "id_token": "e30.eyJzaWQiOiJzLTEifQ.c2ln", "userinfo": {"sub": "pw", "sid": "s-1"}}

    def userinfo(self, token: Any) -> dict[str, str]:
        return dict(self.info)

    def load_server_metadata(self) -> dict[str, str]:
        return {"end_session_endpoint": f"{ISSUER_URL}/logout"}


def _declined(app: Any) -> _RecordingIdp:
    idp = _RecordingIdp({"sub": "pw", "name": "张三丰"})  # signed in, number not released
    app.extensions["certstore.oauth"] = type("O", (), {"idp": idp})()
    return idp


def test_declining_the_id_number_explains_and_offers_a_way_on(app: Any, client: Any, wallet: WalletService) -> None:
    idp = _declined(app)
    resp = client.get("/wallet/callback?code=c&state=s", headers=BROWSER)
    assert resp.status_code == 403 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "电子证照需要您的身份证号" in html and "The wallet needs your ID number" not in html  # one language a page
    assert '"code"' not in html and "http_error" not in html
    assert 'id="ask-again"' in html and 'href="/wallet/login?again=1"' in html
    assert 'action="/wallet/logout"' in html and 'id="back"' in html
    assert resp.headers["Cache-Control"] == "no-store"

    # the session holds no holder: it opens nothing, and the wallet sends the citizen to sign in
    value = client.get_cookie("yw_wallet", path="/wallet").value
    record = app.extensions["certstore.wallet_sessions"].get(value)
    assert record is not None and "hi" not in record and record["sub"] == "pw"
    home = client.get("/wallet")
    assert home.status_code == 302 and home.headers["Location"].endswith("/wallet/login")

    # "ask me again": a new sign-in at the idp that shows the consent page again
    again = client.get("/wallet/login?again=1")
    assert again.status_code == 302 and idp.started[-1]["prompt"] == "consent"
    client.get("/wallet/login")
    assert "prompt" not in idp.started[-1]

    # the way out: sign out (with the page's form token) ends the idp session too
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    target = continue_url(client.post("/wallet/logout", data={"csrf": csrf}))
    assert target.startswith(f"{ISSUER_URL}/logout?") and "id_token_hint=e30.eyJzaWQiOiJzLTEifQ.c2ln" in target
    assert app.extensions["certstore.wallet_sessions"].get(value) is None


def test_releasing_it_on_the_second_try_replaces_the_pending_session(app: Any, client: Any, wallet: WalletService) -> None:
    idp = _declined(app)
    client.get("/wallet/callback?code=c&state=s")
    pending = client.get_cookie("yw_wallet", path="/wallet").value
    idp.info = {"sub": "pw", "name": "张三丰", "id_number": PERSON_ID}
    resp = client.get("/wallet/callback?code=c2&state=s2")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet")
    assert app.extensions["certstore.wallet_sessions"].get(pending) is None
    assert client.get("/wallet").status_code == 200


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/wallet/certificates/1.2.156.3005.2.x/pdf", 401),
        ("GET", "/wallet/certificates/1.2.156.3005.2.x/qr.svg", 401),
        ("GET", "/wallet/login", 503),
        ("GET", "/wallet/no-such-page", 404),
        ("GET", "/wallet/callback", 400),
    ],
)
def test_wallet_pages_answer_browsers_with_a_page(
    app: Any, client: Any, wallet: WalletService, method: str, path: str, status: int
) -> None:
    if path == "/wallet/callback":
        app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pw"})
        app.extensions["certstore.oauth"].idp.authorize_access_token = _fails
    page = client.open(path, method=method, headers=BROWSER)
    assert page.status_code == status and page.mimetype == "text/html", page.get_data(as_text=True)[:300]
    html = page.get_data(as_text=True)
    assert 'id="error-title"' in html and 'lang="zh-CN"' in html and 'href="/verify"' in html
    assert "{" not in html.split("<body>", 1)[1]  # no JSON in the body
    assert "WWW-Authenticate" not in page.headers
    for headers in (JSON, {"Accept": "*/*"}, {}):
        api = client.open(path, method=method, headers=headers)
        assert api.status_code == status and api.mimetype == "application/problem+json"
        assert api.get_json()["status"] == status


def _fails() -> Any:
    raise RuntimeError("the code was spent")


def test_a_stale_form_on_a_wallet_page_gets_a_page(app: Any, client: Any, wallet: WalletService) -> None:
    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pw", "id_number": PERSON_ID, "name": "x"})
    client.get("/wallet/callback?code=c&state=s")
    page = client.post("/wallet/logout", data={"csrf": "stale"}, headers=BROWSER)
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "请返回后重试" in page.get_data(as_text=True)  # in the page's language, not the English detail
    api = client.post("/wallet/logout", data={"csrf": "stale"}, headers=JSON)
    assert api.status_code == 400 and api.mimetype == "application/problem+json"


def test_a_bug_on_a_wallet_page_shows_nothing_of_itself(
    app: Any, client: Any, wallet: WalletService, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pw", "id_number": PERSON_ID, "name": "x"})
    client.get("/wallet/callback?code=c&state=s")
    monkeypatch.setattr(WalletService, "own_certificates", lambda *_a: 1 / 0)
    page = client.get("/wallet", headers=BROWSER)
    assert page.status_code == 500 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "ZeroDivisionError" not in html and "Traceback" not in html and "出错了" in html
    assert client.get("/wallet", headers=JSON).mimetype == "application/problem+json"


def test_the_api_and_machine_endpoints_keep_problem_json(client: Any, wallet: WalletService) -> None:
    for path in ("/api/v1/me/certificates", "/api/v1/certificates/nope", "/api/v1/nope"):
        resp = client.get(path, headers=BROWSER)
        assert resp.mimetype == "application/problem+json", path
    resp = client.post("/wallet/backchannel-logout", data={"logout_token": "x"}, headers=BROWSER)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    resp = client.get("/wallet/backchannel-logout", headers=BROWSER)
    assert resp.status_code == 405 and resp.mimetype == "application/problem+json"


def test_the_pending_session_keeps_no_id_token_that_carries_the_number(
    app: Any, client: Any, wallet: WalletService
) -> None:
    import base64
    import json

    payload = base64.urlsafe_b64encode(json.dumps({"sid": "s-1", "id_number": PERSON_ID}).encode()).rstrip(b"=").decode()
    idp = _declined(app)
    idp.authorize_access_token = lambda: {  # type: ignore[method-assign]
        "access_token": "at", "id_token": f"e30.{payload}.c2ln", "userinfo": {"sub": "pw", "sid": "s-1"},
    }
    assert client.get("/wallet/callback?code=c&state=s").status_code == 403
    record = app.extensions["certstore.wallet_sessions"].get(client.get_cookie("yw_wallet", path="/wallet").value)
    assert record["id_token"] == "" and record["sid"] == "s-1"
