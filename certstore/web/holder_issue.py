"""Our wallet as a holder, receiving by signing in (OpenID4VCI 1.0 authorization code flow, issue 15 §2).

The citizen starts on the holder page (``/wallet/holder``), picks a
certificate type and signs in at the idp; the credential ends up in the
browser, bound to its non-extractable WebCrypto key.

* ``GET /wallet/vci/signin?type=<TYPE>`` — the authorization request of the
  holder's idp client (:attr:`CertstoreSettings.holder_client_id`, registered
  **public**: ``demo-wallet``), scope ``openid certs:read:<TYPE>`` (the
  configuration's ``scope`` in the issuer metadata), PKCE S256, ``state`` and
  ``nonce`` (Authlib keeps them, with the code verifier, in the signed Flask
  session cookie);
* ``GET /wallet/vci/callback`` — the registered redirect URI: ``state`` must
  be the one this browser was sent with, the code is exchanged with the PKCE
  verifier, the ID token's signature, ``aud`` and ``nonce`` are checked
  (Authlib); the idp's access token is kept **server-side** (Redis, five
  minutes, once) under a random handle in an HttpOnly, SameSite=Strict cookie
  scoped to ``/wallet/vci``; the browser goes back to the holder page;
* ``POST /wallet/vci/credential`` (JSON ``{"proof": <jwt>}``) — the key proof
  the page made with the holder key (``c_nonce`` from ``/vci/nonce``, ``aud``
  the issuer) is forwarded with the access token to certstore's credential
  endpoint; the answer (the SD-JWT VC) goes back to the page, which stores it.

Why the token stays here: it is a ``certs:read:<TYPE>`` token for certstore,
which also reads the citizen's certificates from ``/api/v1/me/certificates``;
in page script an injected script or a hostile extension could carry it
away. The binding does not need it in the browser: the proof is signed by
the browser's key, and the credential's ``cnf`` is that key, whoever carries
the request. The handle is spent on first use; a JSON body (no simple
cross-site form) and the Strict cookie keep other sites from using it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from .context import services
from .language import page_language
from .vci import vci_service

__all__ = ["bp", "install", "COOKIE", "signin_choices", "OPENAPI_PATHS"]

logger = logging.getLogger(__name__)

bp = Blueprint("holder_issue", __name__, url_prefix="/wallet/vci")

COOKIE = "yw_holder_vci"
_TTL = 300
_CFG = "yw_holder_cfg"
_MAX_PROOF = 4096


def install(app: Flask) -> None:
    """Register the blueprint and the holder's public idp client (when one is configured)."""
    app.register_blueprint(bp)
    register_client(app)


def register_client(app: Flask) -> None:
    """The holder's idp client in the app's Authlib registry (``oauth.holder``), if settings name one."""
    settings = app.extensions["certstore"].settings
    if not settings.holder_client_id:
        return
    oauth = app.extensions.get("certstore.oauth")
    if oauth is None:
        from authlib.integrations.flask_client import OAuth

        oauth = OAuth(app)
        app.extensions["certstore.oauth"] = oauth
    oauth.register(
        "holder",
        client_id=settings.holder_client_id,
        client_secret=None,
        server_metadata_url=f"{settings.common.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid", "code_challenge_method": "S256", "token_endpoint_auth_method": "none"},
    )


def _client() -> Any:
    oauth = current_app.extensions.get("certstore.oauth")
    client = getattr(oauth, "holder", None) if oauth is not None else None
    if client is None or not services().settings.holder_client_id:
        # a feature this deployment has not turned on: not found, not a server fault (docs/operators.md)
        abort(404, "receiving by sign-in is not enabled here (YIWANG_CERTSTORE_HOLDER_CLIENT_ID)")
    return client


def _redis() -> Any:
    from .wallet_pages import wallet_sessions

    return wallet_sessions().client


def _key(handle: str) -> str:
    digest = hashlib.sha256(handle.encode()).hexdigest()
    return f"{services().settings.common.redis_prefix}cs:holder-vci:{digest}"


def _redirect_uri() -> str:
    return f"{services().settings.public_url}/wallet/vci/callback"


def _configurations() -> dict[str, Any]:
    found: dict[str, Any] = vci_service().metadata().get("credential_configurations_supported", {})
    return found


def signin_choices() -> list[dict[str, str]]:
    """The types the holder page offers to receive by signing in (empty without a holder client)."""
    if not services().settings.holder_client_id:
        return []
    zh = page_language().startswith("zh")
    out = []
    for c in _configurations().values():
        code = c.get("vct", "").rsplit("/", 1)[-1]
        shown = c.get("credential_metadata", {}).get("display", [])  # OpenID4VCI 1.0 §12.2.4
        names = {d.get("locale"): d.get("name") for d in shown}
        out.append({"type": code, "name": str(names.get("zh-CN" if zh else "en") or code),
                    "url": url_for("holder_issue.signin", type=code)})
    return out


@bp.get("/signin")
def signin() -> Any:
    client = _client()
    wanted = request.args.get("type", "")[:40]
    chosen = next(((cid, c) for cid, c in _configurations().items()
                   if c.get("vct", "").rsplit("/", 1)[-1] == wanted), None)
    if chosen is None:
        abort(400, "unknown certificate type")
    # keyed by the state: two tabs signing in for two types each get their own configuration back
    state = secrets.token_urlsafe(24)
    session[f"{_CFG}_{state}"] = chosen[0]
    try:
        return client.authorize_redirect(_redirect_uri(), scope=f"openid {chosen[1]['scope']}", state=state,
                                         ui_locales=page_language())
    except Exception as e:  # the idp's discovery document cannot be read
        logger.warning("holder sign-in cannot start: %s", type(e).__name__)
        abort(503, "the identity provider cannot be reached; please try again later")


@bp.get("/callback")
def callback() -> BaseResponse:
    client = _client()
    configuration = session.pop(f"{_CFG}_{request.args.get('state', '')[:64]}", None)
    try:
        # state: Authlib finds this browser's pending request by it (an unknown state fails);
        # the code with the PKCE verifier; the ID token's signature, iss, aud, exp and nonce.
        token = client.authorize_access_token()
    except Exception as e:  # OAuthError, a mismatching state, a bad ID token …
        logger.info("holder sign-in failed: %s", type(e).__name__)
        abort(400, "the sign-in did not complete; please try again")
    access = token.get("access_token")
    if not isinstance(configuration, str) or not isinstance(access, str) or not token.get("userinfo"):
        abort(400, "the sign-in did not complete; please try again")
    handle = secrets.token_urlsafe(32)
    _redis().set(_key(handle), json.dumps({"token": access, "configuration": configuration}), ex=_TTL)
    resp = redirect(url_for("vp_holder.holder", vci="signed-in"))
    resp.set_cookie(COOKIE, handle, max_age=_TTL, httponly=True, samesite="Strict", path="/wallet/vci",
                    secure=services().settings.public_url.startswith("https://"))
    return resp


def _problem(status: int, error: str, description: str) -> Response:
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/credential")
def credential() -> Response:
    """The page's key proof, forwarded with the kept token to the credential endpoint (in process)."""
    if not request.is_json or (request.content_length or 0) > _MAX_PROOF:
        return _problem(400, "invalid_request", "a JSON body with the key proof")
    body = request.get_json(silent=True)
    proof = body.get("proof") if isinstance(body, dict) else None
    if not isinstance(proof, str) or not proof:
        return _problem(400, "invalid_request", "a JSON body with the key proof")
    handle = request.cookies.get(COOKIE, "")
    raw = _redis().getdel(_key(handle)) if handle else None
    if raw is None:
        return _problem(401, "invalid_token", "sign in again to receive the credential")
    kept = json.loads(raw)
    answer = _forward(kept["token"], {"credential_configuration_id": kept["configuration"],
                                      "proofs": {"jwt": [proof]}})
    answer.delete_cookie(COOKIE, path="/wallet/vci")
    return answer


def _forward(token: str, body: dict[str, Any]) -> Response:
    """certstore's own ``/vci/credential`` with the idp's token, dispatched in this process.

    The same view, checks and issuer log as a wallet elsewhere gets; not over
    HTTP to ourselves (a single busy worker would wait on itself).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.test_request_context("/vci/credential", method="POST", base_url=services().settings.public_url,
                                  headers={"Authorization": f"Bearer {token}"}, json=body):
        resp: Response = app.full_dispatch_request()
    out = Response(resp.get_data(), status=resp.status_code, mimetype="application/json")
    out.headers["Cache-Control"] = "no-store"
    return out


_PAGE = "Our wallet as a holder receiving by signing in at the idp (not part of the integrators' API)."
_NOT_ENABLED = {"404": {"description": "Receiving by sign-in is not enabled (no holder client configured)"}}
_HOLDER_ERRORS = {"400": {"description": "Bad request or the sign-in did not complete"}, **_NOT_ENABLED,
                  "503": {"description": "The idp cannot be reached"}}
OPENAPI_PATHS: dict[str, Any] = {
    "/wallet/vci/signin": {"get": {
        "operationId": "walletHolderSignin", "description": _PAGE, "security": [],
        "summary": "Start the OpenID4VCI authorization code flow at the idp for one certificate type",
        "parameters": [{"name": "type", "in": "query", "required": True,
                        "schema": {"type": "string", "maxLength": 40}}],
        "responses": {"302": {"description": "To the idp's authorization endpoint"}, **_HOLDER_ERRORS}}},
    "/wallet/vci/callback": {"get": {
        "operationId": "walletHolderCallback", "description": _PAGE, "security": [],
        "summary": "The idp's redirect (code, state): back to the holder page with the token kept server-side",
        "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                       for n in ("code", "state")],
        "responses": {"302": {"description": "To the holder page"}, **_HOLDER_ERRORS}}},
    "/wallet/vci/credential": {"post": {
        "operationId": "walletHolderCredential", "description": _PAGE, "security": [],
        "summary": "The browser's key proof, forwarded with the kept token to the credential endpoint",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["proof"], "properties": {"proof": {"type": "string", "minLength": 1}}}}}},
        "responses": {"200": {"description": "credentials (the SD-JWT VC)", "content": {"application/json": {}}},
                      "400": {"description": "invalid_request / invalid_proof / invalid_nonce"},
                      "401": {"description": "invalid_token: no kept token (sign in again)"},
                      "403": {"description": "insufficient_scope / access_denied"}, **_NOT_ENABLED}}},
}
