"""The OpenID4VP verifier over HTTP (issue 15 §2): wallet endpoints, the counter page, the agency API.

Wallet side (no cookies, no CSRF: a wallet is not a browser session):

* ``GET /vp/requests/<id>`` — the signed request object
  (``application/oauth-authz-req+jwt``, OpenID4VP 1.0 §5.7, RFC 9101);
* ``POST /vp/responses/<id>`` — the ``response_uri`` (§8.2): ``200 {}`` once
  the presentation is checked, ``400 {"error": "invalid_request", …}`` when
  it is refused.

Counter side: ``/vp/counter`` (only when ``YIWANG_CERTSTORE_VP_COUNTER_AGENCY``
names the agency whose key signs its requests): a form (type, the claims
needed, plain or encrypted answer), then the request as a QR code and a
same-device link, and the result as soon as the wallet answers
(``static/vp_counter.js`` polls ``GET /vp/results/<id>`` with the page's view
key in ``X-VP-View``). Agencies embed the same through
``POST /api/v1/vp/requests`` and ``GET /api/v1/vp/requests/<id>/result``
with their own client-credentials token (``certs:issue``): the request is
signed with that agency's key.
"""

from __future__ import annotations

import hmac
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
    render_template,
    request,
    session,
)

from keys.locale import N_, gettext
from signing.qr import qr_svg

from ..errors import InvalidInput
from ..vp import RESPONSE_MODES, Created, RequestStore, Verifier, VpRefused
from ..wallet_sessions import connect_wallet_redis
from . import CSP
from .context import require_issuer, services
from .inputs import json_object

__all__ = ["bp", "api_bp", "init_vp", "verifier"]

logger = logging.getLogger(__name__)

bp = Blueprint("vp", __name__, url_prefix="/vp", template_folder="templates")
api_bp = Blueprint("vp_api", __name__, url_prefix="/api/v1/vp")

HOLDER_CLAIMS = (
    ("identifier", N_("Certificate identifier")),
    ("paper_serial", N_("Paper serial number")),
    ("holder_name", N_("Holder")),
    ("holder_code", N_("Holder's ID number or credit code")),
    ("holder_code_type", N_("Kind of holder code")),
)
"""Claims every credential carries besides its type's fields (certstore/vci/metadata.py)."""
_NOT_GENUINE = N_("The credential was not issued by an agency this service trusts.")
_NOT_NOW = N_("The credential is not valid at this time.")
_NOT_THIS = N_("The answer does not belong to this request. Make a new request and scan again.")
_UNREADABLE = N_("The wallet's answer could not be read.")
_REFUSALS = {
    **dict.fromkeys(("unknown_issuer", "signature", "issuer_certificate", "type_not_allowed"), _NOT_GENUINE),
    **dict.fromkeys(("expired", "not_yet_valid"), _NOT_NOW),
    **dict.fromkeys(("key_binding", "audience", "nonce", "sd_hash", "stale", "state", "replay"), _NOT_THIS),
    **dict.fromkeys(("format", "typ", "disclosure", "encryption"), _UNREADABLE),
    "vct": N_("The credential is not of the type asked for."),
    "over_disclosed": N_("The wallet shared more than was asked for, so none of it is shown."),
    "wallet_error": N_("The wallet declined to answer."),
    "unknown_request": N_("The request has expired. Make a new one."),
    "*": N_("The answer was refused."),
}
"""What the counter page says of a refused answer, by its reason code (certstore.vp.responses.VpRefused,
signing.sdjwt_verify.SdJwtError): the English message is for the API and the log, never the page."""
_CSRF_KEY = "vp_csrf"


def init_vp(app: Flask) -> None:
    svc = app.extensions["certstore"]
    settings = svc.settings
    store = RequestStore(connect_wallet_redis(settings), prefix=settings.common.redis_prefix)
    app.extensions["certstore.vp"] = Verifier(svc.certificates, store)
    from . import vp_holder

    vp_holder.install(app)  # our wallet as a holder: /wallet/holder, /wallet/present


def verifier() -> Verifier:
    return current_app.extensions["certstore.vp"]  # type: ignore[no-any-return]


# -- wallet side ----------------------------------------------------------------


@bp.get("/requests/<request_id>")
def request_object(request_id: str) -> Response:
    jwt = verifier().request_object(request_id[:64])
    resp = Response(jwt, mimetype="application/oauth-authz-req+jwt")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/responses/<request_id>")
def response_uri(request_id: str) -> tuple[Response, int]:
    if request.mimetype != "application/x-www-form-urlencoded":
        return _oauth_error("the answer is posted as application/x-www-form-urlencoded"), 400
    try:
        verifier().respond(request_id[:64], request.form.to_dict())
    except VpRefused as e:
        return _oauth_error(str(e)), 400
    return jsonify({}), 200


def _oauth_error(message: str) -> Response:
    resp = jsonify({"error": "invalid_request", "error_description": message[:300]})
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- the counter page -------------------------------------------------------------


def _counter_agency() -> str:
    agency = services().settings.vp_counter_agency
    if not agency:
        abort(404)
    return agency


def _claim_choices(type_code: str | None) -> list[tuple[str, str]]:
    """(claim name, label in the page's language) for the form."""
    from .language import page_language

    lang = page_language()
    zh = lang.startswith("zh")
    out = [(n, gettext(lang, label)) for n, label in HOLDER_CLAIMS]
    if type_code:
        try:
            spec = services().registry.get_type(type_code)
        except Exception:  # noqa: BLE001 — an unknown type shows the common claims only
            return out
        out += [(f.name, f.label_zh if zh else f.label_en) for f in spec.ordered_fields()]
    return out


def _csrf() -> str:
    token = session.get(_CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(24)
        session[_CSRF_KEY] = token
    return str(token)


@bp.get("/counter")
def counter() -> str:
    agency = _counter_agency()
    issuer = services().registry.get_issuer(agency)
    types = [t for t in services().registry.types()]
    chosen = request.args.get("type") or (types[0].code if types else None)
    return render_template("vp_counter.html", agency=issuer, types=types, chosen=chosen,
                           claims=_claim_choices(chosen), modes=RESPONSE_MODES, csrf=_csrf())


@bp.post("/counter")
def counter_create() -> Response:
    agency = _counter_agency()
    sent = request.form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), str(session.get(_CSRF_KEY, "")).encode()) or not sent:
        abort(400)
    created = verifier().create(
        agency_uscc=agency,
        type_code=request.form.get("type", "")[:24],
        claims=request.form.getlist("claim")[:40],
        response_mode=request.form.get("mode", "direct_post.jwt"),
        purpose=(request.form.get("purpose") or "")[:200] or None,
    )
    issuer = services().registry.get_issuer(agency)
    labels = dict(_claim_choices(request.form.get("type", "")[:24]))
    from .language import page_language

    refusals = {code: gettext(page_language(), text) for code, text in _REFUSALS.items()}
    resp = Response(render_template("vp_request.html", created=created, agency=issuer, qr=qr_svg(created.wallet_url),
                                    same_device=_same_device(created), labels=labels, refusals=refusals))
    # The page polls its result (fetch): connect-src 'self' on top of the app's strict policy.
    resp.headers["Content-Security-Policy"] = CSP + "; connect-src 'self'"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _same_device(created: Created) -> str:
    """Our own wallet's page for this request (the same-device flow in a browser)."""
    from urllib.parse import urlencode

    query = urlencode({"client_id": created.client_id, "request_uri": created.request_uri})
    return f"{services().settings.public_url}/wallet/present?{query}"


@bp.get("/results/<request_id>")
def result(request_id: str) -> Response:
    got = verifier().result(request_id[:64], request.headers.get("X-VP-View", ""))
    if got is None:
        abort(404)
    if isinstance(got.get("issuer"), dict):
        _for_the_page(got)
    resp = jsonify(got)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _for_the_page(got: dict[str, Any]) -> None:
    """What the counter page shows of a verified answer: the issuer's name in the page's language (a
    registered agency has two), a person's ID number masked as on every page (the agencies' API keeps
    it whole)."""
    from keys.identifiers import HOLDER_CODE_RESIDENT_ID, is_valid_resident_id, mask_resident_id

    from .language import pick

    try:
        known = services().registry.get_issuer(got["issuer"].get("uscc"))
        got["issuer_name"] = pick(known.name_zh, known.name_en)
    except Exception:  # noqa: BLE001 - another region's agency: its name as its trust list gives it
        got["issuer_name"] = got["issuer"].get("name")
    claims = got.get("claims")
    if isinstance(claims, dict) and isinstance(claims.get("holder_code"), str):
        code, kind = claims["holder_code"], claims.get("holder_code_type")
        if kind == HOLDER_CODE_RESIDENT_ID or (kind is None and is_valid_resident_id(code)):
            claims["holder_code"] = mask_resident_id(code)


# -- agencies' API ----------------------------------------------------------------


@api_bp.post("/requests")
def api_create() -> tuple[Response, int]:
    issuer = require_issuer("certs:issue")
    body = json_object()
    claims = body.get("claims")
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        raise InvalidInput("claims is a list of claim names", field="claims")
    created = verifier().create(
        agency_uscc=issuer.uscc,
        type_code=str(body.get("type", ""))[:24],
        claims=claims[:40],
        response_mode=str(body.get("response_mode", "direct_post.jwt")),
        purpose=str(body.get("purpose") or "")[:200] or None,
    )
    return jsonify(_created_json(created)), 201


@api_bp.get("/requests/<request_id>/result")
def api_result(request_id: str) -> Response:
    require_issuer("certs:issue")
    got = verifier().result(request_id[:64], request.headers.get("X-VP-View", ""))
    if got is None:
        abort(404)
    return jsonify(got)


def _created_json(created: Created) -> dict[str, Any]:
    return {
        "request_id": created.request_id,
        "client_id": created.client_id,
        "request_uri": created.request_uri,
        "wallet_url": created.wallet_url,
        "view_key": created.view_key,
        "expires_at": created.expires_at,
    }


_PROBLEM = {"$ref": "#/components/responses/Problem"}
_OAUTH_ERROR = {"description": "OAuth error (invalid_request) with error_description", "content": {"application/json": {}}}
_REQUEST_ID = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64},
               "example": "QDtTAHtsUdg12G5YPalT3ZoI"}
_VIEW = {"name": "X-VP-View", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 100},
         "example": "the view_key of the created request"}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/vp/requests": {"post": {
        "operationId": "createPresentationRequest",
        "summary": "Ask a wallet for one certificate type and only the items needed (OpenID4VP 1.0, signed by your key)",
        "security": [{"bearer": ["certs:issue"]}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["type", "claims"],
            "properties": {
                "type": {"type": "string", "maxLength": 24},
                "claims": {"type": "array", "minItems": 1, "maxItems": 40,
                           "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}},
                "response_mode": {"type": "string", "enum": ["direct_post", "direct_post.jwt"]},
                "purpose": {"type": "string", "maxLength": 200}}},
            "example": {"type": "JZZM", "claims": ["address", "residence_since"], "response_mode": "direct_post.jwt",
                        "purpose": "租房核验"}}}},
        "responses": {"201": {"description": "request_id, client_id, request_uri, wallet_url (for the QR code), "
                                             "view_key, expires_at", "content": {"application/json": {}}},
                      **{str(c): _PROBLEM for c in (401, 403, 404, 422)}}}},
    "/api/v1/vp/requests/{request_id}/result": {"get": {
        "operationId": "presentationResult",
        "summary": "The wallet's answer once checked: pending, verified (the asked items, issuer, status) or refused",
        "security": [{"bearer": ["certs:issue"]}],
        "parameters": [_REQUEST_ID, _VIEW],
        "responses": {"200": {"description": "outcome and, when verified, claims, issuer, status",
                              "content": {"application/json": {}}},
                      **{str(c): _PROBLEM for c in (401, 403, 404)}}}},
    "/vp/requests/{request_id}": {"get": {
        "operationId": "presentationRequestObject",
        "summary": "The signed request object a wallet fetches (request_uri; typ oauth-authz-req+jwt, x5c)",
        "parameters": [_REQUEST_ID],
        "responses": {"200": {"description": "JWT", "content": {"application/oauth-authz-req+jwt": {}}},
                      "404": _PROBLEM}}},
    "/vp/responses/{request_id}": {"post": {
        "operationId": "presentationResponse",
        "summary": "The response_uri: direct_post (vp_token, state) or direct_post.jwt (response)",
        "parameters": [_REQUEST_ID],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"vp_token": {"type": "string"}, "state": {"type": "string"},
                                             "response": {"type": "string"}}}}}},
        "responses": {"200": {"description": "{} once the presentation is checked", "content": {"application/json": {}}},
                      "400": _OAUTH_ERROR}}},
}

_PAGE = "HTML page (counter side or our wallet as a holder), not part of the integrators' API."
_PAGES: tuple[tuple[str, str, str, str, list[dict[str, Any]]], ...] = (
    ("/vp/counter", "get", "vpCounterPage", "The counter's verifier: choose a type and the items to ask for",
     [{"name": "type", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 24}}]),
    ("/vp/counter", "post", "vpCounterCreate", "Create the request and show it as a QR code (form, CSRF)", []),
    ("/vp/results/{request_id}", "get", "vpCounterResult", "The result for the page that made the request",
     [_REQUEST_ID, _VIEW]),
    ("/wallet/holder", "get", "walletHolderPage", "Credentials kept in this browser; add one from an offer", []),
    # its client_id and request_uri are read by the page's script, not by the server
    ("/wallet/present", "get", "walletPresentPage", "Same-device presentation: who asks, for which items", []),
    ("/wallet/present/request", "get", "walletPresentRequest", "A verifier request checked for the holder page",
     [{"name": n, "in": "query", "required": True, "schema": {"type": "string", "maxLength": 500}}
      for n in ("client_id", "request_uri")]),
)
for _path, _method, _op, _summary, _params in _PAGES:
    OPENAPI_PATHS.setdefault(_path, {})[_method] = {
        "operationId": _op, "summary": _summary, "description": _PAGE, "security": [],
        **({"parameters": _params} if _params else {}),
        **({"requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"csrf": {"type": "string"}, "type": {"type": "string"},
                                             "claim": {"type": "array", "items": {"type": "string"}},
                                             "mode": {"type": "string"}, "purpose": {"type": "string"}}}}}}}
           if _method == "post" else {}),
        "responses": {"200": {"description": "Page or JSON"}, "400": {"description": "Bad form"},
                      "404": {"description": "Not served here, or no such request"}, "422": _PROBLEM},
    }
