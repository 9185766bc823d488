"""Consented sharing and lookups (``/api/v1/me/certificates``, ``/api/v1/lookup``) — see
:mod:`certstore.wallet` for how a citizen's token is mapped to their certificates."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from ..errors import InvalidInput, Unauthorized
from ..wallet import LOOKUP_SCOPE, READ_SCOPE, IntrospectionResolver, WalletService
from .context import services

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


def _bearer() -> str:
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise Unauthorized("a Bearer access token from the identity provider is required")
    return value.strip()


def _summary(view: Any) -> dict[str, Any]:
    d: dict[str, Any] = view.to_dict()
    return d


@bp.get("/api/v1/me/certificates")
def my_certificates() -> Response:
    """The citizen's certificates their token (``certs:read`` or ``certs:read:<TYPE>``) lets this client read."""
    raw = _bearer()
    token = services().tokens.validate(raw)
    views = wallet_service().shared(
        raw,
        client_id=token.client_id,
        scopes=token.scopes,
        type_filter=request.args.get("type") or None,
        purpose=request.args.get("purpose"),
    )
    return jsonify({"certificates": [_summary(v) for v in views]})


@bp.post("/api/v1/lookup")
def lookup() -> Response:
    """An agency registered for ``certs:lookup`` finds a person's certificates by ID number, stating why.

    POST so that the ID number stays out of URLs and access logs.
    """
    token = services().tokens.validate(_bearer(), scope=LOOKUP_SCOPE)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("id_number"), str):
        raise InvalidInput('send JSON {"id_number": …, "purpose": …}', field="id_number")
    views = wallet_service().lookup(
        body["id_number"], client_id=token.client_id, purpose=body.get("purpose"), type_filter=body.get("type")
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
            ("/wallet/logout", "post", "walletLogout", "Sign out of the wallet (ends the server-side session)"),
            ("/wallet/backchannel-logout", "post", "walletBackchannelLogout", "OIDC Back-Channel Logout receiver (logout_token)"),
            ("/wallet/certificates/{identifier}/pdf", "get", "walletPdf", "Download one's own certificate PDF"),
            ("/wallet/certificates/{identifier}/qr", "get", "walletQr", "One's own certificate's QR, full screen"),
            ("/wallet/certificates/{identifier}/qr.svg", "get", "walletQrSvg", "The QR as SVG"),
        )
    },
}
