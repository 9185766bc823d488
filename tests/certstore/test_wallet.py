"""Consented sharing (certs:read), lookups by ID number (certs:lookup), and the access log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from certstore.service import IssueRequest
from certstore.wallet import StaticResolver, WalletService, readable_types

from .conftest import DEMO_REQUESTS, PERSON_ID


@pytest.fixture
def issued(services: Any) -> dict[str, Any]:
    out = {}
    for code in ("JZZM", "BYZS", "YYZZ"):
        req = DEMO_REQUESTS[code]
        out[code] = services.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate
    return out


@pytest.fixture
def wallet(app: Any, services: Any) -> WalletService:
    svc = WalletService(services.certificates, StaticResolver())
    app.extensions["certstore.wallet"] = svc
    return svc


def _get(client: Any, token: str, query: str = "") -> Any:
    return client.get(f"/api/v1/me/certificates{query}", headers={"Authorization": f"Bearer {token}"})


def test_readable_types() -> None:
    assert readable_types(["openid", "certs:read"]) is None
    assert readable_types(["certs:read:JZZM", "certs:read:BYZS"]) == {"JZZM", "BYZS"}
    assert readable_types(["openid"]) == frozenset()


def test_portal_reads_what_the_citizen_consented_to(client: Any, mint: Any, wallet: WalletService, issued: dict[str, Any]) -> None:
    full = mint("portal-housing", scope="openid certs:read", sub="pairwise-abc")
    wallet.resolver.table[full] = PERSON_ID  # type: ignore[union-attr]
    resp = _get(client, full, "?purpose=rental+application")
    assert resp.status_code == 200, resp.get_json()
    got = {c["identifier"] for c in resp.get_json()["certificates"]}
    assert got == {issued["JZZM"].identifier, issued["BYZS"].identifier}  # not the company's licence
    body = resp.get_data(as_text=True)
    assert PERSON_ID not in body

    assert {c["identifier"] for c in _get(client, full, "?type=BYZS").get_json()["certificates"]} == {issued["BYZS"].identifier}

    limited = mint("portal-school", scope="certs:read:BYZS", sub="pairwise-def")
    wallet.resolver.table[limited] = PERSON_ID  # type: ignore[union-attr]
    only = _get(client, limited).get_json()["certificates"]
    assert [c["identifier"] for c in only] == [issued["BYZS"].identifier]
    assert _get(client, limited, "?type=JZZM").get_json()["certificates"] == []

    # the wallet shows who read what, when and why
    index = wallet.holder_index(PERSON_ID)
    log = wallet.access_log(index)
    assert [(r.client_id, r.via) for r in log] == [
        ("portal-school", "consent"), ("portal-school", "consent"), ("portal-housing", "consent"), ("portal-housing", "consent")
    ]
    assert log[-1].purpose == "rental application"
    assert set(log[-1].identifiers) == {issued["JZZM"].identifier, issued["BYZS"].identifier}


def test_refusals(client: Any, mint: Any, wallet: WalletService, issued: dict[str, Any]) -> None:
    no_scope = mint("portal-x", scope="openid profile", sub="p1")
    wallet.resolver.table[no_scope] = PERSON_ID  # type: ignore[union-attr]
    resp = _get(client, no_scope)
    assert resp.status_code == 403 and resp.get_json()["code"] == "insufficient_scope"
    unknown = mint("portal-x", scope="certs:read", sub="p2")
    resp = _get(client, unknown)
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert client.get("/api/v1/me/certificates").status_code == 401
    wallet.resolver = None
    assert _get(client, unknown).status_code == 503


def test_lookup_requires_scope_and_purpose(client: Any, mint: Any, wallet: WalletService, issued: dict[str, Any]) -> None:
    token = mint("demo-amr", scope="certs:lookup")
    auth = {"Authorization": f"Bearer {token}"}
    # the scope alone opens nothing: certstore's own allow-list decides (issue 11)
    resp = client.post("/api/v1/lookup", json={"id_number": PERSON_ID, "purpose": "x"}, headers=auth)
    assert resp.status_code == 403 and resp.get_json()["code"] == "not_allowed"
    services = client.application.extensions["certstore"]
    services.settings = services.settings.with_(lookup_clients={"demo-amr": None})
    resp = client.post("/api/v1/lookup", json={"id_number": PERSON_ID}, headers=auth)
    assert resp.status_code == 422 and resp.get_json()["field"] == "purpose"
    resp = client.post("/api/v1/lookup", json={"id_number": "110101199001010010", "purpose": "x"}, headers=auth)
    assert resp.status_code == 422 and "110101199001010010" not in resp.get_data(as_text=True)
    resp = client.post("/api/v1/lookup", json={"id_number": PERSON_ID, "purpose": "business licence check", "type": "JZZM"}, headers=auth)
    assert resp.status_code == 200
    assert [c["identifier"] for c in resp.get_json()["certificates"]] == [issued["JZZM"].identifier]
    wrong_scope = mint("demo-amr", scope="certs:read")
    resp = client.post("/api/v1/lookup", json={"id_number": PERSON_ID, "purpose": "x"}, headers={"Authorization": f"Bearer {wrong_scope}"})
    assert resp.status_code == 403
    log = wallet.access_log(wallet.holder_index(PERSON_ID))
    assert [(r.client_id, r.client_name, r.via, r.purpose) for r in log] == [
        ("demo-amr", "北京市朝阳区市场监督管理局", "lookup", "business licence check")
    ]


class _FakeIdp:
    """Stands in for Authlib's registered client: the callback's token exchange."""

    def __init__(self, userinfo: dict[str, str]) -> None:
        self.info = userinfo

    def authorize_access_token(self) -> dict[str, Any]:
        return {"access_token": "x", "userinfo": dict(self.info)}

    def userinfo(self, token: Any) -> dict[str, str]:
        return dict(self.info)


class _FakeOAuth:
    def __init__(self, userinfo: dict[str, str]) -> None:
        self.idp = _FakeIdp(userinfo)


def test_wallet_pages(app: Any, client: Any, mint: Any, wallet: WalletService, issued: dict[str, Any]) -> None:
    resp = client.get("/wallet")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet/login")
    assert client.get("/wallet/login").status_code == 503  # no client credentials configured
    assert client.get(f"/wallet/certificates/{issued['JZZM'].identifier}/pdf").status_code == 401

    # someone read two certificates with the citizen's consent: it shows in the wallet
    token = mint("portal-housing", scope="certs:read", sub="pw")
    wallet.resolver.table[token] = PERSON_ID  # type: ignore[union-attr]
    assert _get(client, token, "?purpose=tenancy").status_code == 200

    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pairwise-wallet", "id_number": PERSON_ID, "name": "张三丰"})
    resp = client.get("/wallet/callback?code=c&state=s")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet")
    cookie = resp.headers["Set-Cookie"]
    assert PERSON_ID not in cookie and "张三丰" not in cookie
    value = client.get_cookie("yw_wallet", path="/wallet").value
    assert app.extensions["certstore.wallet_sessions"].get(value)["hi"] == wallet.holder_index(PERSON_ID)

    page = client.get("/wallet")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    assert issued["JZZM"].identifier in html and issued["BYZS"].identifier in html
    assert issued["YYZZ"].identifier not in html  # the company's licence is not this person's
    assert "portal-housing" in html and "tenancy" in html
    assert "<script" not in html

    pdf = client.get(f"/wallet/certificates/{issued['JZZM'].identifier}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert client.get(f"/wallet/certificates/{issued['YYZZ'].identifier}/pdf").status_code == 404
    qr = client.get(f"/wallet/certificates/{issued['BYZS'].identifier}/qr")
    assert qr.status_code == 200 and "qr.svg" in qr.get_data(as_text=True)
    svg = client.get(f"/wallet/certificates/{issued['BYZS'].identifier}/qr.svg")
    assert svg.mimetype == "image/svg+xml" and svg.data.startswith(b"<svg")

    # sign out needs the form's CSRF token
    assert client.post("/wallet/logout", data={"csrf": "wrong"}).status_code == 400
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/wallet/logout", data={"csrf": csrf}).status_code == 302
    assert client.get("/wallet").status_code == 302


def test_wallet_refuses_a_sign_in_without_the_id_number(app: Any, client: Any, wallet: WalletService) -> None:
    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pairwise-wallet"})
    assert client.get("/wallet/callback?code=c&state=s").status_code == 403
    assert client.get("/wallet").status_code == 302
