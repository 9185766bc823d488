"""The HTTP API: tokens, problem JSON, issue/get/download, verify uploads, OpenAPI coverage."""

from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
from cryptography import x509

import signing.qr
from certstore.web.openapi import NOT_IN_DOCUMENT, is_page_path, openapi_document

from .conftest import DEMO_REQUESTS, PSB


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issue(client: Any, mint: Any, code: str = "JZZM", client_id: str = "demo-psb", **headers: str) -> Any:
    body = copy.deepcopy(DEMO_REQUESTS[code]["body"])
    return client.post("/api/v1/certificates", json=body, headers={**_auth(mint(client_id)), **headers})


def _is_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json(force=True)
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status
    return body


def test_issue_get_pdf_and_qr(client: Any, mint: Any) -> None:
    resp = _issue(client, mint)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    cert = resp.get_json()
    ident = cert["identifier"]
    assert resp.headers["Location"].endswith(ident)
    assert cert["holder"]["code_masked"] == "110105********002X"
    token = mint("demo-psb")
    got = client.get(f"/api/v1/certificates/{ident}", headers=_auth(token)).get_json()
    assert got["qr_text"] == cert["qr_text"]
    pdf = client.get(cert["links"]["pdf"], headers=_auth(token))
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    png = client.get(cert["links"]["qr_png"], headers=_auth(token))
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    svg = client.get(cert["links"]["qr_svg"], headers=_auth(token))
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    listed = client.get("/api/v1/certificates", headers=_auth(token)).get_json()
    assert [c["identifier"] for c in listed["certificates"]] == [ident]


def test_no_token_is_401_with_www_authenticate(client: Any) -> None:
    resp = client.post("/api/v1/certificates", json={})
    body = _is_problem(resp, 401)
    assert body["code"] == "invalid_token"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_without_scope_is_403_problem(client: Any, mint: Any) -> None:
    body = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    resp = client.post("/api/v1/certificates", json=body, headers=_auth(mint("demo-psb", scope="openid")))
    problem = _is_problem(resp, 403)
    assert problem["code"] == "insufficient_scope"
    assert 'scope="certs:issue"' in resp.headers["WWW-Authenticate"]


def test_client_not_linked_to_an_issuer_is_403(client: Any, mint: Any) -> None:
    problem = _is_problem(_issue(client, mint, client_id="some-portal"), 403)
    assert problem["code"] == "not_an_issuer"


def test_client_of_another_issuer_may_not_issue_this_type(client: Any, mint: Any) -> None:
    problem = _is_problem(_issue(client, mint, code="JZZM", client_id="demo-university"), 403)
    assert problem["field"] == "type"


def test_other_agencies_cannot_read_a_certificate(client: Any, mint: Any) -> None:
    ident = _issue(client, mint).get_json()["identifier"]
    _is_problem(client.get(f"/api/v1/certificates/{ident}", headers=_auth(mint("demo-amr"))), 404)


def test_schema_error_is_422_naming_the_field(client: Any, mint: Any) -> None:
    body = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    body["fields"]["residence_since"] = "yesterday"
    resp = client.post("/api/v1/certificates", json=body, headers=_auth(mint()))
    problem = _is_problem(resp, 422)
    assert problem["field"] == "fields.residence_since"
    assert problem["code"] == "invalid_input"


def test_bad_holder_id_is_422(client: Any, mint: Any) -> None:
    body = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    body["holder_code"] = "110105194912310021"
    problem = _is_problem(client.post("/api/v1/certificates", json=body, headers=_auth(mint())), 422)
    assert problem["field"] == "holder_code"
    assert "110105194912310021" not in problem["detail"]


def test_idempotency_over_http(client: Any, mint: Any) -> None:
    a = _issue(client, mint, **{"Idempotency-Key": "order-7"})
    b = _issue(client, mint, **{"Idempotency-Key": "order-7"})
    assert (a.status_code, b.status_code) == (201, 200)
    assert b.headers["Idempotent-Replayed"] == "true"
    assert a.get_json()["identifier"] == b.get_json()["identifier"]
    body = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    body["holder_name"] = "王五"
    c = client.post("/api/v1/certificates", json=body, headers={**_auth(mint()), "Idempotency-Key": "order-7"})
    assert _is_problem(c, 409)["code"] == "idempotency_conflict"


def test_verify_text_json(client: Any, mint: Any) -> None:
    cert = _issue(client, mint).get_json()
    res = client.post("/api/v1/verify", json={"text": cert["qr_text"]}).get_json()
    assert res["valid"] is True
    assert res["certificate"]["holder"]["name"] == "张*丰"
    assert "fields" not in res["certificate"]


def test_verify_pdf_and_png_uploads(client: Any, mint: Any) -> None:
    cert = _issue(client, mint).get_json()
    pdf = client.get(cert["links"]["pdf"], headers=_auth(mint())).data
    res = client.post("/api/v1/verify", data={"file": (io.BytesIO(pdf), "c.pdf")}).get_json()
    assert res["valid"] is True and res["kind"] == "pdf"
    png = signing.qr.qr_png(cert["qr_text"])
    res = client.post("/api/v1/verify", data={"file": (io.BytesIO(png), "qr.png")}).get_json()
    assert res["valid"] is True and res["kind"] == "qr"


def test_upload_that_is_neither_pdf_nor_image(client: Any) -> None:
    resp = client.post("/api/v1/verify", data={"file": (io.BytesIO(b"MZ\x90\x00 not a pdf"), "c.pdf")})
    problem = _is_problem(resp, 422)
    assert problem["field"] == "file"


def test_broken_pdf_is_422(client: Any) -> None:
    resp = client.post("/api/v1/verify", data={"file": (io.BytesIO(b"%PDF-1.7\n garbage"), "c.pdf")})
    problem = _is_problem(resp, 422)
    assert problem["code"] == "not_a_pdf" and problem["field"] == "file"


def test_image_without_qr_is_422(client: Any) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, format="PNG")
    problem = _is_problem(client.post("/api/v1/verify", data={"file": (io.BytesIO(buf.getvalue()), "x.png")}), 422)
    assert problem["code"] == "no_qr_code"


def test_qr_image_of_another_format_fails_the_format_check(client: Any) -> None:
    import qrcode

    img = qrcode.make("https://example.com/not-a-certificate")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    res = client.post("/api/v1/verify", data={"file": (io.BytesIO(buf.getvalue()), "x.png")}).get_json()
    assert res["valid"] is False
    assert res["checks"][0] == {"name": "format", "ok": False, "reason": res["checks"][0]["reason"]}


def test_oversized_upload_is_413_problem(services: Any) -> None:
    from certstore.web import create_app

    services.settings = services.settings.with_(max_upload_bytes=1000)
    app = create_app(services=services)
    resp = app.test_client().post("/api/v1/verify", data={"file": (io.BytesIO(b"%PDF-" + b"0" * 5000), "c.pdf")})
    problem = _is_problem(resp, 413)
    assert problem["field"] == "file"


def test_unknown_route_is_problem_json(client: Any) -> None:
    _is_problem(client.get("/api/v1/nothing-here"), 404)


def test_crl_and_trust_list(client: Any) -> None:
    crl = client.get("/pki/crl/issuing.crl")
    assert crl.mimetype == "application/pkix-crl"
    x509.load_der_x509_crl(crl.data)
    tl = client.get("/trust-list").get_json()
    assert tl["region"] == "110000"
    by_uscc = {i["uscc"]: i for i in tl["issuers"]}
    assert by_uscc[PSB]["allowed_types"] == ["JZZM"]
    cert = x509.load_pem_x509_certificate(by_uscc[PSB]["signer_certificate"].encode())
    assert by_uscc[PSB]["kid"] == signing.qr.qr_kid(cert).hex()


def test_every_route_is_in_the_openapi_document(app: Any, client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    full = openapi_document("http://127.0.0.1:5100")
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if rule.endpoint.endswith("static") or rule.endpoint in NOT_IN_DOCUMENT:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if is_page_path(path):  # a page: in the full document Schemathesis fuzzes, not in the served one
                assert method.lower() in full["paths"].get(path, {}), f"{method} {path} is in neither document"
                assert path not in doc["paths"], f"the page {path} is in the integrators' openapi.json"
                continue
            assert (path, method.lower()) in documented, f"{method} {path} is not in openapi.json"
    # and nothing documented that does not exist
    routes = {re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()}
    assert set(doc["paths"]) <= routes


def test_security_headers(client: Any) -> None:
    resp = client.get("/verify")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_verify_page_needs_its_csrf_token(client: Any, mint: Any) -> None:
    cert = _issue(client, mint).get_json()
    page = client.get("/verify")
    token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    bad = client.post("/verify", data={"text": cert["qr_text"], "csrf": "forged"})
    assert bad.status_code == 400
    ok = client.post("/verify", data={"text": cert["qr_text"], "csrf": token, "lang": "en"})
    html = ok.get_data(as_text=True)
    assert ok.status_code == 200
    assert "valid" in html and "张*丰" in html and "张三丰" not in html


@pytest.mark.parametrize("lang,word", [("zh", "发证机关"), ("en", "Issuer")])
def test_verify_page_languages(client: Any, mint: Any, lang: str, word: str) -> None:
    cert = _issue(client, mint).get_json()
    page = client.get(f"/verify?lang={lang}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    html = client.post("/verify", data={"text": cert["qr_text"], "csrf": token, "lang": lang}).get_data(as_text=True)
    assert word in html


def test_an_image_bomb_header_is_refused_before_decoding(client: Any) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A tiny file whose header claims 8000 x 8000 pixels (64 megapixels).
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 1, 0, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\x00" * 100)
    ) + chunk(b"IEND", b"")
    problem = _is_problem(client.post("/api/v1/verify", data={"file": (io.BytesIO(png), "bomb.png")}), 422)
    assert problem["field"] == "file"
    assert problem["code"] == "image_too_large"


def test_personal_answers_are_never_cached(client: Any, mint: Any) -> None:
    cert = _issue(client, mint).get_json()
    auth = {"Authorization": f"Bearer {mint()}"}
    for path in (f"/api/v1/certificates/{cert['identifier']}", f"/api/v1/certificates/{cert['identifier']}/pdf",
                 f"/api/v1/certificates/{cert['identifier']}/qr.svg", "/api/v1/certificates", "/api/v1/nowhere"):
        resp = client.get(path, headers=auth)
        assert resp.headers.get("Cache-Control") == "no-store", path
    assert client.get("/api/v1/me/certificates").headers.get("Cache-Control") == "no-store"  # 401 too
    assert client.post("/api/v1/verify", json={"text": cert["qr_text"]}).headers.get("Cache-Control") == "no-store"
    assert client.get("/wallet").headers.get("Cache-Control") == "no-store"
    # public, cacheable files keep their own policy
    assert "public" in client.get("/pki/crl/issuing.crl").headers["Cache-Control"]


def test_verify_csrf_cookie_is_secure_behind_a_tls_proxy(services: Any) -> None:
    from certstore.web import create_app

    services.settings = services.settings.with_(public_url="https://certs.example.cn")
    proxied = create_app(services=services).test_client()  # the proxy speaks plain HTTP to us
    cookie = proxied.get("/verify").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    plain = services.settings.with_(public_url="http://127.0.0.1:5100")
    services.settings = plain
    assert "Secure" not in create_app(services=services).test_client().get("/verify").headers["Set-Cookie"]
