"""OpenID4VCI 1.0 endpoints (the rules are in :mod:`certstore.vci`; this module is HTTP only).

Public: ``/.well-known/openid-credential-issuer``, certstore's own
``/.well-known/oauth-authorization-server`` (the pre-authorized code flow),
``/vct/<type>`` (type metadata), ``POST /vci/nonce``, ``POST /vci/token``,
``GET /vci/offers/<id>`` (behind a ``credential_offer_uri``) and
``GET /vci/signin-offers/<type>`` (an offer to sign in at the idp).

With a token: ``POST /vci/credential`` takes certstore's own access token
(pre-authorized code flow: the offered certificate only) or the idp's
(authorization code flow: the citizen's own certificates of the types the
token's ``certs:read`` / ``certs:read:<TYPE>`` scope covers; the citizen is
identified by introspection, as for ``/api/v1/me/certificates``), and
``POST /api/v1/certificates/<id>/credential-offer`` the issuing agency's
client-credentials token (``certs:issue``; its own certificate, its type among
the agency's allowed types, as issuing checks).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

import signing.qr

from ..binding import ResourceDPoP, check_dpop_binding
from ..errors import CertstoreError, Forbidden, Unauthorized
from ..vci import Grant, VciError, VciService
from ..vci.errors import (
    InsufficientScope,
    InvalidCredentialRequest,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    WalletNotAllowed,
)
from ..vci.grants import AUTHORIZATION_CODE, TOKEN_PREFIX
from ..wallet import readable_types
from .context import require_issuer, require_token, services
from .inputs import json_object

__all__ = ["bp", "vci_service", "OPENAPI_PATHS"]

bp = Blueprint("vci", __name__)

_ISSUE_SCOPE = "certs:issue"
_MAX_FORM = 4096


def vci_service(app: Flask | None = None) -> VciService:
    """The app's :class:`VciService` (built on first use; tests may put their own in ``app.extensions``)."""
    app = app or current_app
    svc: VciService | None = app.extensions.get("certstore.vci")
    if svc is None:
        from ..wallet_sessions import connect_wallet_redis

        base = app.extensions["certstore"]
        settings = base.settings
        client = connect_wallet_redis(settings)
        svc = app.extensions.setdefault("certstore.vci", VciService(
            base.certificates, idp_issuer=settings.common.issuer, redis=lambda: client,
            prefix=f"{settings.common.redis_prefix}cs:vci:",
        ))
    return svc


@bp.errorhandler(VciError)
def _vci_error(e: VciError) -> Response:
    resp = jsonify(e.to_dict())
    resp.status_code = e.status
    resp.headers["Cache-Control"] = "no-store"
    if e.status in (401, 403):
        resp.headers["WWW-Authenticate"] = e.challenge or f'Bearer error="{e.error}"'  # RFC 6750 §3
    if e.dpop_nonce:
        resp.headers["DPoP-Nonce"] = e.dpop_nonce
    return resp


def _json(value: dict[str, Any], *, cache: str = "no-store") -> Response:
    resp = jsonify(value)
    resp.headers["Cache-Control"] = cache
    return resp


def _public(value: dict[str, Any]) -> Response:
    resp = _json(value, cache="public, max-age=300")
    resp.headers["Access-Control-Allow-Origin"] = "*"  # wallets in browsers read metadata too
    return resp


# -- metadata ---------------------------------------------------------------------------------


@bp.get("/.well-known/openid-credential-issuer")
def issuer_metadata() -> Response:
    return _public(vci_service().metadata())


@bp.get("/.well-known/oauth-authorization-server")
def as_metadata() -> Response:
    return _public(vci_service().authorization_server())


@bp.get("/vct/<type_code>")
def vct(type_code: str) -> Response:
    return _public(vci_service().type_metadata(type_code))


# -- offers -----------------------------------------------------------------------------------


@bp.post("/api/v1/certificates/<identifier>/credential-offer")
def create_offer(identifier: str) -> Response:
    """The issuing agency offers the certificate's credential: a link for the QR code, a tx_code for SMS."""
    issuer = require_issuer(_ISSUE_SCOPE)
    created = vci_service().create_offer(identifier, issuer, actor=f"client:{issuer.client_id}")
    # the counter screen can show the offer as it is; the tx_code never goes into the QR code
    resp = _json({**created.to_dict(), "qr_svg": signing.qr.qr_svg(created.link)})
    resp.status_code = 201
    return resp


@bp.get("/api/v1/certificates/<identifier>/credentials")
def issued_credentials(identifier: str) -> Response:
    """The issuer's log for one of the agency's certificates: when, which flow, to which holder key."""
    issuer = require_issuer(_ISSUE_SCOPE)
    view = services().certificates.get(identifier, agency_uscc=issuer.uscc)  # another agency's: 404
    return _json({"identifier": view.identifier, "credentials": vci_service().issued(view.identifier, issuer)})


@bp.get("/vci/offers/<offer_id>")
def offer(offer_id: str) -> Response:
    found = vci_service().offer(offer_id)
    if found is None:
        resp = jsonify({"error": "not_found", "error_description": "no such credential offer (expired or withdrawn)"})
        resp.status_code = 404
        resp.headers["Cache-Control"] = "no-store"
        return resp
    return _json(found)


@bp.get("/vci/signin-offers/<type_code>")
def signin_offer(type_code: str) -> Response:
    return _json(vci_service().signin_offer(type_code), cache="public, max-age=300")


# -- token and nonce --------------------------------------------------------------------------


@bp.post("/vci/token")
def token() -> Response:
    """OpenID4VCI 1.0 §6: the pre-authorized code grant (form-encoded, no client authentication)."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidRequest("the token request is form-encoded (application/x-www-form-urlencoded)")
    if (request.content_length or 0) > _MAX_FORM:
        raise InvalidRequest("the token request is too large")
    form = {k: v for k, v in request.form.items()}
    jkt = None
    proof = request.headers.get("DPoP")
    if proof is not None:  # RFC 9449 §5: bind the token to the proof's key
        from keys.dpop import DPoPError

        dpop = _dpop()
        try:
            jkt = dpop.verifier.check(proof, method="POST", url=dpop.public_url + request.path).jkt
        except DPoPError as e:
            raise InvalidDpopProof(e.description) from None
    resp = _json(vci_service().token(form, jkt=jkt))
    resp.headers["Pragma"] = "no-cache"
    return resp


@bp.post("/vci/nonce")
def nonce() -> Response:
    return _json(vci_service().nonce())


# -- credential -------------------------------------------------------------------------------


def _dpop() -> ResourceDPoP:
    dpop: ResourceDPoP | None = current_app.extensions.get("certstore.dpop")  # shared with the API's checks
    if dpop is None:
        base = current_app.extensions["certstore"]
        dpop = current_app.extensions.setdefault("certstore.dpop", ResourceDPoP.from_settings(base.settings,
                                                                                            base.keyring))
    return dpop


def _token_error(e: Unauthorized) -> InvalidToken:
    """certstore's 401 as the credential endpoint's OAuth error (``invalid_token``, ``invalid_dpop_proof`` …)."""
    err = InvalidToken(str(e))
    code = e.extra.get("code", e.code)
    if code in ("invalid_token", "invalid_dpop_proof", "use_dpop_nonce"):
        err.error = str(code)
    if e.extra.get("www_authenticate"):
        err.challenge = str(e.extra["www_authenticate"])  # RFC 9449 §7.1: the DPoP challenge
    if e.extra.get("dpop_nonce"):
        err.dpop_nonce = str(e.extra["dpop_nonce"])
    return err


def _grant() -> Grant:
    kind, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    if kind.lower() not in ("bearer", "dpop") or not raw:
        raise InvalidToken("an access token is required (Authorization: Bearer …)")
    svc = vci_service()
    if raw.startswith(TOKEN_PREFIX):
        grant = svc.grants.token(raw)
        # RFC 9449 §7: a DPoP-bound token only with a proof of its key; an unbound one only as Bearer
        try:
            check_dpop_binding({"cnf": {"jkt": grant.jkt}} if grant.jkt else {}, raw, scheme=kind.lower(),
                               proof=request.headers.get("DPoP"), method=request.method, path=request.path,
                               dpop=_dpop())
        except Unauthorized as e:
            raise _token_error(e) from None
        return grant
    # The idp's access token (authorization code flow): validated, unrevoked, sender-constrained if bound.
    try:
        token = require_token(None)
    except Unauthorized as e:
        raise _token_error(e) from None
    except Forbidden as e:
        raise InsufficientScope(str(e)) from None
    types = readable_types(token.scopes)
    if types is not None and not types:
        raise InsufficientScope("the token carries no certs:read or certs:read:<TYPE> scope")
    if token.client_id not in services().settings.vci_wallet_clients:
        # certstore's own allow-list: a portal that may read a citizen's certificates may not
        # hold credentials bound to its own key (it could present them as the citizen)
        raise WalletNotAllowed("this client is not a wallet certstore issues credentials to")
    from .wallet import wallet_service

    wallets = wallet_service()
    holder = wallets.resolver.holder(raw) if wallets.resolver is not None else None
    if holder is None:
        raise InvalidToken("the token does not identify a citizen to certstore")
    return Grant(flow=AUTHORIZATION_CODE, configuration_ids=(), holder_index=wallets.holder_index(holder.id_number),
                 types=types, client_id=token.client_id)


@bp.post("/vci/credential")
def credential() -> Response:
    grant = _grant()
    if not request.is_json:
        raise InvalidCredentialRequest("the credential request is JSON (application/json)")
    try:
        body = json_object()  # the size, depth and NUL limits every JSON body has
    except CertstoreError as e:
        raise InvalidCredentialRequest(str(e)) from None
    return _json(vci_service().credential(grant, body))


_OAUTH_ERROR = {"description": "OAuth / OpenID4VCI error", "content": {"application/json": {}}}
_PUBLIC_JSON = {"200": {"description": "JSON", "content": {"application/json": {}}}}

OPENAPI_PATHS: dict[str, Any] = {
    "/.well-known/openid-credential-issuer": {"get": {
        "operationId": "credentialIssuerMetadata", "summary": "OpenID4VCI 1.0 credential issuer metadata",
        "responses": _PUBLIC_JSON}},
    "/.well-known/oauth-authorization-server": {"get": {
        "operationId": "vciAuthorizationServerMetadata",
        "summary": "certstore as the authorization server of the pre-authorized code flow (RFC 8414)",
        "responses": _PUBLIC_JSON}},
    "/vct/{type_code}": {"get": {
        "operationId": "vctTypeMetadata", "summary": "SD-JWT VC type metadata of a certificate type",
        "parameters": [{"name": "type_code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_PUBLIC_JSON, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/certificates/{identifier}/credential-offer": {"post": {
        "operationId": "createCredentialOffer",
        "summary": "Offer a certificate as an SD-JWT VC (OpenID4VCI pre-authorized code; tx_code for the citizen)",
        "security": [{"bearer": ["certs:issue"]}],
        "parameters": [{"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"201": {"description": "credential_offer_uri, offer_link, tx_code, expires_in, qr_svg",
                              "content": {"application/json": {}}},
                      **{str(c): {"$ref": "#/components/responses/Problem"} for c in (401, 403, 404)}}}},
    "/api/v1/certificates/{identifier}/credentials": {"get": {
        "operationId": "issuedCredentials",
        "summary": "The issuer's log of credentials issued for a certificate (time, flow, holder key thumbprint)",
        "security": [{"bearer": ["certs:issue"]}],
        "parameters": [{"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "credentials: issued_at, configuration, flow, holder_jkt, client_id",
                              "content": {"application/json": {}}},
                      **{str(c): {"$ref": "#/components/responses/Problem"} for c in (401, 403, 404)}}}},
    "/vci/offers/{offer_id}": {"get": {
        "operationId": "credentialOffer", "summary": "A credential offer (behind credential_offer_uri)",
        "parameters": [{"name": "offer_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_PUBLIC_JSON, "404": _OAUTH_ERROR}}},
    "/vci/signin-offers/{type_code}": {"get": {
        "operationId": "signinCredentialOffer", "summary": "An offer to receive a type after signing in at the idp",
        "parameters": [{"name": "type_code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_PUBLIC_JSON, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/vci/token": {"post": {
        "operationId": "vciToken", "summary": "Token endpoint of the pre-authorized code grant",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["grant_type", "pre-authorized_code"],
            "properties": {"grant_type": {"enum": ["urn:ietf:params:oauth:grant-type:pre-authorized_code"]},
                           "pre-authorized_code": {"type": "string", "minLength": 1, "maxLength": 128},
                           "tx_code": {"type": "string", "maxLength": 64}}}}}},
        "responses": {**_PUBLIC_JSON, "400": _OAUTH_ERROR}}},
    "/vci/nonce": {"post": {"operationId": "vciNonce", "summary": "A fresh c_nonce", "responses": _PUBLIC_JSON}},
    "/vci/credential": {"post": {
        "operationId": "vciCredential", "summary": "Credential endpoint (one SD-JWT VC per jwt key proof)",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {**_PUBLIC_JSON, **{str(c): _OAUTH_ERROR for c in (400, 401, 403)}}}},
}
