"""The OpenAPI 3.1 document of certstore's HTTP interface, maintained by hand.

A test compares it with the app's routes, so an endpoint cannot be added
without being documented here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ID_PARAM = {
    "name": "identifier",
    "in": "path",
    "required": True,
    "description": "Certificate identifier, 1.2.156.3005.2.<type>.<issuer USCC>.<serial>.<version>.<check>",
    "schema": {"type": "string"},
}
_SECURED = [{"bearer": ["certs:issue"]}]


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


def openapi_document(server_url: str) -> dict[str, Any]:
    doc = _document(server_url)
    from . import lifecycle, offline, wallet  # issue 6 routes, documented beside their views

    doc["paths"].update(lifecycle.OPENAPI_PATHS)
    doc["paths"].update(wallet.OPENAPI_PATHS)
    doc["paths"].update(offline.OPENAPI_PATHS)
    return doc


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
                        **_problems(401, 403, 409, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listCertificates",
                    "summary": "The caller's agency's certificates, newest first",
                    "security": _SECURED,
                    "parameters": [
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
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
                        **_problems(401, 403),
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
                        **_problems(401, 403, 404),
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
                        **_problems(401, 403, 404),
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
                        **_problems(401, 403, 404),
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
                        **_problems(401, 403, 404),
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
                                "schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary", "description": "PDF or PNG/JPEG/GIF/WebP image"},
                                        "text": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {"description": "The result, valid or not", "content": {"application/json": {"schema": result_ref}}},
                        **_problems(413, 422),
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
                    "responses": {"200": {"description": "HTML page with the result", "content": {"text/html": {}}}},
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
                }
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
                "IssueRequest": {
                    "type": "object",
                    "required": ["type", "holder_code", "holder_name"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"type": "string", "description": "Certificate type code, e.g. JZZM"},
                        "issuer": {"type": "string", "description": "Optional; must be the caller's own USCC"},
                        "holder_code": {"type": "string", "description": "Resident ID number (111) or USCC (001)"},
                        "holder_name": {"type": "string"},
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
