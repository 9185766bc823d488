"""The API reference at /api/docs (issue 18): served, its assets local, its own strict CSP, and a
document with the OAuth 2.0 client-credentials scheme, an example per operation and the public URL."""

from __future__ import annotations

import re
from typing import Any

from certstore.web.apidocs import ASSETS


def test_the_reference_page_is_served_with_local_assets_only(client: Any) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"https?://", html), "the page must load nothing from another origin"
    assert "<script>" not in html and "style=" not in html  # nothing inline: the CSP allows 'self' only
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert referenced and all(ref.startswith("/api/docs/") for ref in referenced)
    for ref in referenced:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe-inline" not in csp
    assert "connect-src 'self' http://idp.test" in csp  # the idp: where "Authorize" asks for a token
    init = client.get("/api/docs/init.js").get_data(as_text=True)
    assert '"url": "/openapi.json"' in init and '"validatorUrl": null' in init


def test_only_the_bundle_files_the_page_uses_are_served(client: Any) -> None:
    assert "swagger-ui-bundle.js" in ASSETS
    for name in ("index.html", "swagger-initializer.js", "..%2Fsettings.py", "oauth2-redirect.html"):
        assert client.get(f"/api/docs/assets/{name}").status_code == 404


def test_the_document_has_the_client_credentials_scheme_examples_and_the_public_url(client: Any, cs_settings: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["servers"] == [{"url": cs_settings.public_url}]
    scheme = doc["components"]["securitySchemes"]["agencyClientCredentials"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "http://idp.test/token"
    assert "certs:issue" in scheme["flows"]["clientCredentials"]["scopes"]
    issue = doc["paths"]["/api/v1/certificates"]["post"]
    assert {"agencyClientCredentials": ["certs:issue"]} in issue["security"]
    assert issue["requestBody"]["content"]["application/json"]["example"]["type"] == "JZZM"
    # every operation that takes input shows an example of it
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert "example" in body, (method, path)
            for param in op.get("parameters", []):
                if param["in"] in ("path", "query"):
                    assert "example" in param, (method, path, param["name"])
    # the operators' scrape, the reference page, the HTML pages and the wallet are not API operations
    assert "/metrics" not in doc["paths"] and "/api/docs" not in doc["paths"]
    assert not [p for p in doc["paths"] if p == "/verify" or p.startswith(("/wallet", "/verify/offline/"))]
    assert "/api/v1/verify" in doc["paths"] and "/status-lists/{list_id}" in doc["paths"]
