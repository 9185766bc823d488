"""An OpenAPI 3.1 document of the idp's machine-facing endpoints, served at ``/openapi.json``.

The OAuth and OpenID Connect endpoints (token, introspection, revocation, PAR,
device authorization, userinfo, discovery, JWKS) are specified by their RFCs;
this document restates what Yiwang answers, so that a client generator or a
fuzzer (tests/idp/test_schemathesis.py) can hold the server to it: every status
code, content type and body shape the server sends is listed here. The HTML
pages (authorize, login, consent, account, device verification, logout) are
for browsers and are not described.

Request bodies are ``application/x-www-form-urlencoded`` (RFC 6749 §3.2,
RFC 7662 §2.1, RFC 7009 §2.1, RFC 9126 §2.1, RFC 8628 §3.1). Errors of these
endpoints are OAuth error JSON (RFC 6749 §5.2); 401 carries
``WWW-Authenticate`` (RFC 6750 §3 at userinfo); a backing service that is down
is 503 problem JSON (RFC 9457) with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from .common import rt
from .security import MAX_PARAM

__all__ = ["bp", "openapi_document"]

bp = Blueprint("openapi", __name__)

_FORM = "application/x-www-form-urlencoded"
_OAUTH_ERROR = {"$ref": "#/components/responses/OAuthError"}
_UNAVAILABLE = {"$ref": "#/components/responses/Unavailable"}
_PARAM = {"type": "string", "maxLength": MAX_PARAM, "pattern": "^[^\\x00]*$"}  # U+0000 is refused at the door
_CLIENT_AUTH = {
    # RFC 6749 §2.3.1 (client_secret_post) and RFC 7523 §2.2 (private_key_jwt); Basic goes in the header,
    # and then these are not read.
    "client_id": _PARAM,
    "client_secret": _PARAM,
    "client_assertion_type": {**_PARAM, "description": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
    "client_assertion": _PARAM,
}
# idp/web/security.py: every parameter name at most 128 characters, every value at most MAX_PARAM
# (2048), the whole body at most MAX_BODY (64 KiB, else 413); other parameters are ignored.
_FORM_LIMITS = {"propertyNames": {"maxLength": 128, "pattern": "^[^\\x00]*$"}, "additionalProperties": _PARAM}
_CLIENT_SECURITY: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {**properties, **_CLIENT_AUTH}, **_FORM_LIMITS}
    if required:
        schema["required"] = required
    return {"required": True, "content": {_FORM: {"schema": schema}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(c): _OAUTH_ERROR for c in codes}
    out["503"] = _UNAVAILABLE
    return out


def _device_authorization(operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": "RFC 8628 §3.1: start a device sign-in (the same endpoint at both paths)",
        "security": _CLIENT_SECURITY,
        "requestBody": _form({"scope": _PARAM}),
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["device_code", "user_code", "verification_uri", "expires_in"],
                    "properties": {
                        "device_code": {"type": "string"},
                        "user_code": {"type": "string"},
                        "verification_uri": {"type": "string"},
                        "verification_uri_complete": {"type": "string"},
                        "expires_in": {"type": "integer"},
                        "interval": {"type": "integer"},
                    },
                },
                "RFC 8628 §3.2",
            ),
            **_errors(400, 401, 413),
        },
    }


_DPOP_HEADER = {"name": "DPoP", "in": "header", "required": False,
                "description": ("RFC 9449 §4: a DPoP proof (compact JWS, typ dpop+jwt); binds the tokens to its key. "
                                "Ignored with an unbound Bearer token (no DPoP work on that path)"),
                "schema": {"type": "string"}}


def openapi_document(issuer: str) -> dict[str, Any]:
    token_response = {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"enum": ["Bearer", "bearer", "DPoP"]},  # DPoP: RFC 9449 §5
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "refresh_token": {"type": "string"},
            "id_token": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Yiwang identity provider (machine-facing endpoints)",
            "version": "1",
            "description": __doc__,
        },
        "servers": [{"url": issuer.rstrip("/")}],
        "paths": {
            "/token": {
                "post": {
                    "operationId": "token",
                    "summary": "RFC 6749 §3.2: authorization_code, refresh_token, client_credentials, device_code",
                    "security": _CLIENT_SECURITY,
                    "parameters": [_DPOP_HEADER],
                    "requestBody": _form(
                        {
                            "grant_type": {
                                "enum": [
                                    "authorization_code", "refresh_token", "client_credentials",
                                    "urn:ietf:params:oauth:grant-type:device_code",
                                ]
                            },
                            "code": _PARAM,
                            "redirect_uri": _PARAM,
                            "code_verifier": _PARAM,
                            "refresh_token": _PARAM,
                            "device_code": _PARAM,
                            "scope": _PARAM,
                        },
                        ["grant_type"],
                    ),
                    "responses": {
                        "200": _json(token_response, "RFC 6749 §5.1"),
                        # RFC 6749 §5.2 (400, or 401 invalid_client); RFC 8628 §3.5 (authorization_pending …)
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/introspect": {
                "post": {
                    "operationId": "introspect",
                    "summary": "RFC 7662: is this token active, and what does it carry (caller: a confidential client)",
                    "security": [{"clientBasic": []}],
                    "requestBody": _form({"token": _PARAM, "token_type_hint": _PARAM}, ["token"]),
                    "responses": {
                        "200": _json(
                            {"type": "object", "required": ["active"], "properties": {"active": {"type": "boolean"}}},
                            "RFC 7662 §2.2 (active: false for anything unknown, expired, revoked or not the caller's)",
                        ),
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/revoke": {
                "post": {
                    "operationId": "revoke",
                    "summary": "RFC 7009: revoke a token (200 whether or not it was valid, §2.2)",
                    "security": [{"clientBasic": []}],
                    "requestBody": _form({"token": _PARAM, "token_type_hint": _PARAM}, ["token"]),
                    "responses": {
                        "200": {"description": "RFC 7009 §2.2"},
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/par": {
                "post": {
                    "operationId": "pushedAuthorizationRequest",
                    "summary": "RFC 9126: push the authorization request, get a request_uri",
                    "security": _CLIENT_SECURITY,
                    "parameters": [_DPOP_HEADER],
                    "requestBody": _form(
                        {
                            "response_type": {"const": "code"},
                            "redirect_uri": _PARAM,
                            "scope": _PARAM,
                            "state": _PARAM,
                            "nonce": _PARAM,
                            "code_challenge": _PARAM,
                            "code_challenge_method": {"const": "S256"},
                            "prompt": _PARAM,
                            "max_age": _PARAM,
                            "acr_values": _PARAM,
                            "ui_locales": _PARAM,
                            "dpop_jkt": _PARAM,  # RFC 9449 §10
                        },
                        ["response_type", "redirect_uri"],
                    ),
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "required": ["request_uri", "expires_in"],
                                "properties": {"request_uri": {"type": "string"}, "expires_in": {"type": "integer"}},
                            },
                            "RFC 9126 §2.2",
                        ),
                        **_errors(400, 401, 413),
                    },
                }
            },
            **{
                path: {"post": _device_authorization(op)}
                for path, op in (("/device/authorize", "deviceAuthorization"), ("/device_authorization", "deviceAuthorizationAlias"))
            },
            "/userinfo": {
                method: {
                    "operationId": f"userinfo{method.capitalize()}",
                    "summary": "OIDC Core §5.3: the claims the access token's scopes release",
                    "security": [{"bearer": ["openid"]}, {"dpop": ["openid"]}],
                    "parameters": [_DPOP_HEADER],
                    **(
                        {"requestBody": {"required": False, "content": {_FORM: {"schema": {
                            "type": "object", "properties": {"access_token": _PARAM}, **_FORM_LIMITS}}}}}  # RFC 6750 §2.2
                        if method == "post" else {}
                    ),
                    "responses": {
                        "200": _json({"type": "object", "required": ["sub"], "properties": {"sub": {"type": "string"}}},
                                     "OIDC Core §5.3.2"),
                        "401": {"$ref": "#/components/responses/BearerError"},
                        "403": {"$ref": "#/components/responses/BearerError"},
                        **_errors(400, 413),
                    },
                }
                for method in ("get", "post")
            },
            **{
                path: {
                    "get": {
                        "operationId": op,
                        "summary": "OIDC Discovery 1.0 §4 / RFC 8414 §3: the provider's metadata",
                        "security": [],
                        "responses": {
                            "200": _json({"$ref": "#/components/schemas/Metadata"}, "Provider metadata"),
                            "503": _UNAVAILABLE,
                        },
                    }
                }
                for path, op in (
                    ("/.well-known/openid-configuration", "openidConfiguration"),
                    ("/.well-known/oauth-authorization-server", "oauthAuthorizationServerMetadata"),
                )
            },
            "/jwks.json": {
                "get": {
                    "operationId": "jwks",
                    "summary": "RFC 7517 §5: the public keys that sign ID tokens and access tokens",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["keys"],
                                "properties": {
                                    "keys": {
                                        "type": "array",
                                        "items": {"type": "object", "required": ["kty", "kid"],
                                                  "properties": {"d": False, "p": False, "q": False}},
                                    }
                                },
                            },
                            "JWK Set (public keys only)",
                        ),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "This document", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic", "description": "RFC 6749 §2.3.1 client_secret_basic"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "An access token from /token (RFC 6750)"},
                "dpop": {"type": "http", "scheme": "DPoP", "description": (
                    "RFC 9449 §7: a DPoP-bound access token, with a proof (header DPoP, carrying ath) of its key")},
                "mutualTLS": {"type": "mutualTLS", "description": (
                    "RFC 8705: tls_client_auth / self_signed_tls_client_auth, through the operator's TLS proxy "
                    "(mtls_endpoint_aliases); a certificate-bound token needs the same certificate")},
            },
            "responses": {
                "OAuthError": {
                    "description": "RFC 6749 §5.2 error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}},
                },
                "BearerError": {
                    "description": "RFC 6750 §3: the error is also in WWW-Authenticate",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}},
                },
                "Unavailable": {
                    "description": "The database or Redis is unavailable (RFC 9457 problem; Retry-After)",
                    "content": {"application/problem+json": {"schema": {"type": "object", "required": ["status"]}}},
                },
            },
            "schemas": {
                "OAuthError": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "pattern": "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$"},
                        "error_description": {"type": "string"},
                        "error_uri": {"type": "string"},
                    },
                },
                "Metadata": {
                    "type": "object",
                    "required": [
                        "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
                        "response_types_supported", "subject_types_supported",
                        "id_token_signing_alg_values_supported",
                    ],
                    "properties": {
                        "issuer": {"const": issuer.rstrip("/")},
                        # RFC 8705 §3.3 and §5, present when mutual TLS is configured
                        "tls_client_certificate_bound_access_tokens": {"type": "boolean"},
                        "mtls_endpoint_aliases": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    resp = jsonify(openapi_document(rt().provider.issuer))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
