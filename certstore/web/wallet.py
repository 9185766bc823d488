"""Consented sharing and lookups (``/api/v1/me/certificates``, ``/api/v1/lookup``) — see
:mod:`certstore.wallet` for how a citizen's token is mapped to their certificates."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from ..errors import InvalidInput
from ..wallet import LOOKUP_SCOPE, READ_SCOPE, IntrospectionResolver, WalletService
from .context import bearer, require_lookup_client, require_token, services
from .inputs import json_object, query_text, text

__all__ = ["bp", "wallet_service", "OPENAPI_PATHS"]

bp = Blueprint("wallet_api", __name__)


def wallet_service(app: Flask | None = None) -> WalletService:
    """The app's :class:`WalletService` (built on first use; tests may put their own in ``app.extensions``)."""
    app = app or current_app
    svc = app.extensions.get("certstore.wallet")
    if svc is None:
        base = services()
        settings = base.settings
        resolver = None
        if settings.client_id and settings.client_secret:
            resolver = IntrospectionResolver(
                f"{settings.common.issuer}/introspect", settings.client_id, settings.client_secret
            )
        svc = WalletService(base.certificates, resolver)
        app.extensions["certstore.wallet"] = svc
    return svc


def _summary(view: Any) -> dict[str, Any]:
    d: dict[str, Any] = view.to_dict()
    return d


@bp.get("/api/v1/me/certificates")
def my_certificates() -> Response:
    """The citizen's certificates their token (``certs:read`` or ``certs:read:<TYPE>``) lets this client read."""
    token = require_token(None)
    views = wallet_service().shared(
        bearer(),
        client_id=token.client_id,
        scopes=token.scopes,
        type_filter=query_text("type"),
        purpose=query_text("purpose", max_len=500),
    )
    return jsonify({"certificates": [_summary(v) for v in views]})


@bp.post("/api/v1/lookup")
def lookup() -> Response:
    """An agency on certstore's lookup allow-list finds a person's certificates by ID number, stating why.

    The ``certs:lookup`` scope is necessary, not sufficient: the client must be
    on ``YIWANG_CERTSTORE_LOOKUP_CLIENTS`` and reads only the types listed there.
    POST so that the ID number stays out of URLs and access logs.
    """
    caller = require_lookup_client(LOOKUP_SCOPE)
    body = json_object(allowed=("id_number", "purpose", "type"))
    number = text(body, "id_number", max_len=18)
    if number is None:
        raise InvalidInput('send JSON {"id_number": …, "purpose": …}', field="id_number")
    views = wallet_service().lookup(
        number,
        client_id=caller.client_id,
        purpose=text(body, "purpose", max_len=500),
        type_filter=text(body, "type", max_len=200),
        allowed_types=caller.types,
    )
    return jsonify({"certificates": [_summary(v) for v in views]})


_PROBLEM = {"$ref": "#/components/responses/Problem"}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/me/certificates": {
        "get": {
            "operationId": "myCertificates",
            "summary": "The citizen's certificates, read with their consent (scope certs:read or certs:read:<TYPE>)",
            "security": [{"bearer": [READ_SCOPE]}],
            "parameters": [
                {"name": "type", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "purpose", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "Certificates", "content": {"application/json": {}}},
                **{str(c): _PROBLEM for c in (401, 403, 503)},
            },
        }
    },
    "/api/v1/lookup": {
        "post": {
            "operationId": "lookupCertificates",
            "summary": "Find a person's certificates by ID number (scope certs:lookup); purpose required, audited",
            "security": [{"bearer": [LOOKUP_SCOPE]}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["id_number", "purpose"],
                            "properties": {
                                "id_number": {"type": "string"},
                                "purpose": {"type": "string", "maxLength": 500},
                                "type": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "Certificates", "content": {"application/json": {}}},
                **{str(c): _PROBLEM for c in (401, 403, 422)},
            },
        }
    },
    **{
        path: {
            method: {
                "operationId": op,
                "summary": summary,
                "description": "HTML page of the citizen's wallet (session cookie after OIDC sign-in at the idp).",
                "security": [],
                **({"parameters": [{"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}]} if "{identifier}" in path else {}),
                "responses": {"200": {"description": "Page or file"}, "302": {"description": "Redirect"}},
            }
        }
        for path, method, op, summary in (
            ("/wallet", "get", "walletHome", "The signed-in citizen's certificates and who read them"),
            ("/wallet/login", "get", "walletLogin", "Start the OIDC sign-in at the idp"),
            ("/wallet/callback", "get", "walletCallback", "OIDC redirect URI"),
            ("/wallet/logout", "post", "walletLogout", "Sign out of the wallet (ends the server-side session); the page continues at the idp's end-session endpoint"),
            ("/wallet/backchannel-logout", "post", "walletBackchannelLogout", "OIDC Back-Channel Logout receiver (logout_token)"),
            ("/wallet/certificates/{identifier}/pdf", "get", "walletPdf", "Download one's own certificate PDF"),
            ("/wallet/certificates/{identifier}/qr", "get", "walletQr", "One's own certificate's QR, full screen"),
            ("/wallet/certificates/{identifier}/qr.svg", "get", "walletQrSvg", "The QR as SVG"),
        )
    },
}
