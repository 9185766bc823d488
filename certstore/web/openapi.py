"""The OpenAPI 3.1 document of certstore's HTTP interface, maintained by hand.

A test compares it with the app's routes, so an endpoint cannot be added
without being documented here; Schemathesis (tests/certstore/test_schemathesis.py)
fuzzes every operation against it, so a status code, content type or body the
server answers and this document does not describe fails the suite.

Every error is RFC 9457 problem JSON. The status codes are the same everywhere:
400 an unreadable request, 401 no valid token or session, 403 a token or
session that may not do this, 404 no such thing (or not yours), 409 a conflict
with what exists, 413 too large, 415 a media type the operation does not read,
422 well formed but refused by a rule (a check character, an unknown type, a
missing per-type field: rules no JSON Schema can state), 503 a dependency (the
signing keys, the identity provider) is not there.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["openapi_document", "NOT_IN_DOCUMENT", "is_page_path"]

NOT_IN_DOCUMENT = frozenset({"metrics.metrics", "apidocs.page", "apidocs.init_js", "apidocs.asset"})
"""Routes that are not part of the HTTP interface: the operators' scrape and the reference page itself."""


def is_page_path(path: str) -> bool:
    """HTML pages and their internals (the verify page, the offline verifier, the wallet's sign-in and files).

    They stay in the full document Schemathesis fuzzes (``pages=True``), and
    out of the one certstore serves to integrators at ``/openapi.json``.
    """
    return path == "/verify" or path.startswith(("/verify/offline/", "/wallet", "/vp/counter", "/vp/results/"))

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ID_PARAM = {
    "name": "identifier",
    "in": "path",
    "required": True,
    "description": "Certificate identifier, 1.2.156.3005.2.<type>.<issuer USCC>.<serial>.<version>.<check>",
    "schema": {"type": "string"},
    "example": "1.2.156.3005.2.JZZM.111101050000000017.000001.1.7",
}
_SECURED = [{"bearer": ["certs:issue"]}, {"dpop": ["certs:issue"]}]  # dpop: a DPoP-bound token (RFC 9449 §7)
# What every bearer-protected operation may answer besides its own codes.
_BEARER_ERRORS = (401, 403, 503)
_MAX_QUERY_INT = 2**31 - 1  # certstore/web/inputs.py MAX_QUERY_INT
_MAX_QR_TEXT = 8192  # certstore/web/api.py _MAX_QR_TEXT
_TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


def openapi_document(server_url: str, *, token_url: str | None = None, pages: bool = True) -> dict[str, Any]:
    """The document; with ``token_url`` (the idp's token endpoint) also its OAuth 2.0 client-credentials scheme.

    ``pages=False`` leaves out the HTML pages and the wallet's internals
    (:func:`is_page_path`): what integrators read at ``/openapi.json``.
    """
    doc = _document(server_url)
    from . import (  # routes documented beside their views
        health,
        holder_issue,
        lifecycle,
        offline,
        vci,
        wallet,
    )
    from . import vp as vp_routes  # issue 15 §2

    for paths in (lifecycle.OPENAPI_PATHS, wallet.OPENAPI_PATHS, offline.OPENAPI_PATHS, health.OPENAPI_PATHS,
                  vci.OPENAPI_PATHS, vp_routes.OPENAPI_PATHS, holder_issue.OPENAPI_PATHS):
        doc["paths"].update(copy.deepcopy(paths))  # _complete amends them: never the modules' own dicts
    _complete(doc["paths"])
    from .openapi_extras import add_client_credentials, add_examples

    add_examples(doc["paths"], identifier=_ID_PARAM["example"])
    if token_url:
        add_client_credentials(doc, token_url)
    if not pages:
        doc["paths"] = {path: ops for path, ops in doc["paths"].items() if not is_page_path(path)}
    return doc



# What the views documented beside their code (wallet.py, lifecycle.py) also answer:
# kept here, in one place, so that the whole status-code policy above reads as one table.
_EXTRA_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/v1/me/certificates", "get"): _problems(401, 403, 422, 503),
    ("/api/v1/lookup", "post"): _problems(400, 401, 403, 413, 422, 503),
    ("/api/v1/certificates/{identifier}/status", "post"): _problems(400, 401, 403, 404, 409, 413, 422, 503),
    ("/api/v1/certificates/{identifier}/versions", "post"): _problems(400, 401, 403, 404, 409, 413, 422, 503),
    ("/wallet/login", "get"): {
        "302": {"description": "To the identity provider's sign-in"},
        "503": {
            "description": "The wallet is not registered at the identity provider "
            "(YIWANG_CERTSTORE_CLIENT_ID and YIWANG_CERTSTORE_CLIENT_SECRET unset)",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
    # 400: the sign-in did not complete (RFC 6749 §10.12: state is not this browser's, or the code is refused)
    ("/wallet/callback", "get"): _problems(400, 403, 503),
    ("/wallet/logout", "post"): {
        "302": {"description": "Signed out: to the identity provider's end-session endpoint or the verify page"},
        "400": _PROBLEM,  # the form's CSRF token does not match the session
    },
    ("/wallet/backchannel-logout", "post"): {
        # OIDC Back-Channel Logout 1.0 §2.8: 200 on success, 400 with an OAuth error otherwise.
        "200": {"description": "Session ended (or none)", "content": {"application/json": {}}},
        "400": {
            "description": "Invalid logout token",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}},
        },
    },
    **{
        (f"/wallet/certificates/{{identifier}}/{leaf}", "get"): {
            "401": _PROBLEM,  # not signed in to the wallet
            "404": _PROBLEM,  # no such certificate, or not the signed-in citizen's
        }
        for leaf in ("pdf", "qr", "qr.svg")
    },
}

# Form bodies of the HTML pages (documented so that a fuzzer sends what a browser sends).
_EXTRA_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/wallet/logout", "post"): {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"csrf": {"type": "string"}}}
            }
        },
    },
    ("/wallet/backchannel-logout", "post"): {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["logout_token"],
                    "properties": {"logout_token": {"type": "string", "description": "OIDC Back-Channel Logout 1.0 §2.4"}},
                }
            }
        },
    },
}


# Members whose documented schema said less than the server checks (JSON pointer-ish: path, method, property).
_TIGHTER: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/certificates/{identifier}/status", "post", "reason"): {**_TEXT, "maxLength": 500},
    ("/api/v1/lookup", "post", "id_number"): {"type": "string", "pattern": "^[0-9]{17}[0-9Xx]$"},
    ("/api/v1/lookup", "post", "purpose"): {**_TEXT, "maxLength": 500},
    ("/api/v1/lookup", "post", "type"): {"type": "string", "maxLength": 200},
}
# JSON bodies that may carry no other member (the view reads them with json_object(allowed=…)).
_CLOSED_BODIES = {("/api/v1/certificates/{identifier}/status", "post"), ("/api/v1/lookup", "post")}
_TIGHTER_QUERY: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/me/certificates", "get", "type"): {"type": "string", "maxLength": 200},
    ("/api/v1/me/certificates", "get", "purpose"): {"type": "string", "maxLength": 500},
}


def _complete(paths: dict[str, Any]) -> None:
    for (path, method, name), schema in _TIGHTER.items():
        op = paths.get(path, {}).get(method)
        props = (op or {}).get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("properties")
        if props is not None and name in props:
            props[name] = {**props[name], **schema}
    for path, method in _CLOSED_BODIES:
        body = paths.get(path, {}).get(method, {}).get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            body["schema"]["additionalProperties"] = False
    for (path, method, name), schema in _TIGHTER_QUERY.items():
        for param in paths.get(path, {}).get(method, {}).get("parameters", []):
            if param["in"] == "query" and param["name"] == name:
                param["schema"] = {**param["schema"], **schema}
    for (path, method), extra in _EXTRA_RESPONSES.items():
        op = paths.get(path, {}).get(method)
        if op is not None:
            op["responses"] = {**op["responses"], **extra}
    for (path, method), body in _EXTRA_BODIES.items():
        op = paths.get(path, {}).get(method)
        if op is not None and "requestBody" not in op:
            op["requestBody"] = body


def _document(server_url: str) -> dict[str, Any]:
    cert_ref = {"$ref": "#/components/schemas/Certificate"}
    result_ref = {"$ref": "#/components/schemas/VerificationResult"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Yiwang certificate store",
            "version": "1",
            "description": "Issue PAdES-signed electronic certificates with signed QR codes, and verify them.",
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/api/v1/certificates": {
                "post": {
                    "operationId": "issueCertificate",
                    "summary": "Issue a certificate (the caller's agency is the issuer)",
                    "security": _SECURED,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Same key and same body: the same certificate is returned (200); "
                            "same key and a different body: 409.",
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IssueRequest"}}},
                    },
                    "responses": {
                        "201": {"description": "Issued", "content": {"application/json": {"schema": cert_ref}}},
                        "200": {"description": "Replayed (same Idempotency-Key and body)", "content": {"application/json": {"schema": cert_ref}}},
                        **_problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listCertificates",
                    "summary": "The caller's agency's certificates, newest first",
                    "security": _SECURED,
                    "parameters": [
                        {"name": "type", "in": "query", "schema": {"type": "string", "maxLength": 32}},
                        # empty (?limit=) means the default, as absent does
                        {"name": "limit", "in": "query", "allowEmptyValue": True, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "offset", "in": "query", "allowEmptyValue": True, "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_QUERY_INT}},
                    ],
                    "responses": {
                        "200": {
                            "description": "Certificates",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"certificates": {"type": "array", "items": cert_ref}},
                                    }
                                }
                            },
                        },
                        **_problems(*_BEARER_ERRORS, 422),
                    },
                },
            },
            "/api/v1/certificates/{identifier}": {
                "get": {
                    "operationId": "getCertificate",
                    "security": _SECURED,
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {"description": "The certificate", "content": {"application/json": {"schema": cert_ref}}},
                        **_problems(*_BEARER_ERRORS, 404),
                    },
                }
            },
            "/api/v1/certificates/{identifier}/pdf": {
                "get": {
                    "operationId": "getCertificatePdf",
                    "security": _SECURED,
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {"description": "The signed PDF", "content": {"application/pdf": {}}},
                        **_problems(*_BEARER_ERRORS, 404),
                    },
                }
            },
            "/api/v1/certificates/{identifier}/qr.png": {
                "get": {
                    "operationId": "getCertificateQrPng",
                    "security": _SECURED,
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {"description": "The QR code (level M)", "content": {"image/png": {}}},
                        **_problems(*_BEARER_ERRORS, 404),
                    },
                }
            },
            "/api/v1/certificates/{identifier}/qr.svg": {
                "get": {
                    "operationId": "getCertificateQrSvg",
                    "security": _SECURED,
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {"description": "The QR code (level M)", "content": {"image/svg+xml": {}}},
                        **_problems(*_BEARER_ERRORS, 404),
                    },
                }
            },
            "/api/v1/verify": {
                "post": {
                    "operationId": "verify",
                    "summary": "Verify a QR payload, a QR image or a certificate PDF (no login)",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["text"],
                                    "additionalProperties": False,
                                    "properties": {"text": {**_TEXT, "maxLength": _MAX_QR_TEXT}},
                                }
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary", "description": "PDF or PNG/JPEG/GIF/WebP image"},
                                        "text": {**_TEXT, "maxLength": _MAX_QR_TEXT},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {"description": "The result, valid or not", "content": {"application/json": {"schema": result_ref}}},
                        **_problems(400, 413, 415, 422, 503),
                    },
                }
            },
            "/verify": {
                "get": {
                    "operationId": "verifyPage",
                    "summary": "The public verify page (HTML; ?lang=zh|en)",
                    "security": [],
                    "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}},
                },
                "post": {
                    "operationId": "verifyPageSubmit",
                    "summary": "The verify page's form (CSRF token required)",
                    "security": [],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "csrf": {"type": "string", "description": "The page's form token (double-submit cookie cs_csrf)"},
                                        "text": {"type": "string"},
                                        "file": {"type": "string", "format": "binary"},
                                        "camera": {"type": "string", "format": "binary"},
                                    },
                                }
                            },
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"csrf": {"type": "string"}, "text": {"type": "string"}},
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {"description": "HTML page with the result", "content": {"text/html": {}}},
                        **{
                            str(c): {"description": desc, "content": {"text/html": {}}}
                            for c, desc in (
                                (400, "The form expired (CSRF token missing or wrong), or nothing to verify"),
                                (413, "The upload is too large"),
                                (422, "The upload could not be read"),
                                (503, "Too many verifications at once; try again"),
                            )
                        },
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "This document", "content": {"application/json": {}}}},
                }
            },
            "/pki/crl/issuing.crl": {
                "get": {
                    "operationId": "issuingCrl",
                    "summary": "The region issuing CA's certificate revocation list (DER)",
                    "security": [],
                    "responses": {"200": {"description": "CRL", "content": {"application/pkix-crl": {}}}},
                }
            },
            "/trust-list": {
                "get": {
                    "operationId": "trustList",
                    "summary": "This region's issuers, their signer certificates and QR key ids",
                    "security": [],
                    "responses": {"200": {"description": "Trust list", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT (RFC 9068) from the Yiwang identity provider, client credentials",
                },
                "dpop": {
                    "type": "http",
                    "scheme": "DPoP",
                    "description": ("RFC 9449 §7: a DPoP-bound access token (cnf.jkt) as Authorization: DPoP, with a "
                                    "proof in the DPoP header (htu from certstore's public URL, ath the token's hash); "
                                    "such a token sent as Bearer is refused"),
                },
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
                "OAuthError": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "error_description": {"type": ["string", "null"]}},
                },
                "IssueRequest": {
                    "type": "object",
                    "required": ["type", "holder_code", "holder_name"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {**_TEXT, "description": "Certificate type code, e.g. JZZM"},
                        "issuer": {"type": "string", "description": "Optional; must be the caller's own USCC"},
                        "holder_code": {**_TEXT, "description": "Resident ID number (111) or USCC (001)"},
                        "holder_name": {**_TEXT},
                        "fields": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
                        "paper_serial": {"type": "string", "maxLength": 64},
                        "valid_from": {"type": "string", "format": "date"},
                        "valid_until": {"type": "string", "format": "date"},
                    },
                },
                "Certificate": {
                    "type": "object",
                    "properties": {
                        "identifier": {"type": "string"},
                        "type": {"type": "object"},
                        "issuer": {"type": "object"},
                        "holder": {"type": "object", "description": "name, code_type, code_masked"},
                        "fields": {"type": "object"},
                        "issued_at": {"type": "string", "format": "date-time"},
                        "valid_from": {"type": "string", "format": "date"},
                        "valid_until": {"type": ["string", "null"], "format": "date"},
                        "status": {"type": "object", "description": "code (01-07), zh, en"},
                        "version": {"type": "integer"},
                        "serial": {"type": "string"},
                        "paper_serial": {"type": ["string", "null"]},
                        "pdf_sha256": {"type": "string"},
                        "qr_text": {"type": "string"},
                        "links": {"type": "object"},
                    },
                },
                "VerificationResult": {
                    "type": "object",
                    "properties": {
                        "kind": {"enum": ["qr", "pdf"]},
                        "valid": {"type": "boolean"},
                        "checks": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"}, "reason": {"type": "string"}},
                            },
                        },
                        "certificate": {"type": ["object", "null"]},
                        "claims": {"type": "object"},
                    },
                },
            },
        },
    }
