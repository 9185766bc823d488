"""OAuth 2.0 / OpenID Connect endpoints: authorize, token, userinfo, introspect, revoke, PAR."""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from flask import Blueprint, Response, jsonify, request

from ..oauth import fapi
from ..oauth.endpoints import endpoint_reply, token_reply, userinfo_reply
from ..oauth.grants import AUTH_METHODS
from ..signin import unsupported
from .common import browser, current_session, rt
from .hotpaths import DECIDED_KEY
from .oauth_server import NO_STORE, flask_request_params, to_response
from .responses import error_page, outcome_response

__all__ = ["bp", "oauth_error_response"]

logger = logging.getLogger(__name__)

bp = Blueprint("oauth", __name__)

# RFC 6749 §3.1: these may appear at most once.
_SINGLE = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
           "code_challenge", "code_challenge_method", "prompt", "max_age", "request_uri",
           "request", "response_mode")


def oauth_error_response(error: OAuth2Error) -> Response:
    """Protocol errors to HTTP, in one place (RFC 6749 §5.2, RFC 6750 §3)."""
    body = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    resp = jsonify(body)
    resp.status_code = error.status_code or 400
    for k, v in error.get_headers():
        if k.lower() != "content-type":
            resp.headers[k] = v
    resp.headers.update(NO_STORE)
    return resp


# ------------------------------------------------------------- authorize


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    decided = request.environ.pop(DECIDED_KEY, None)
    if decided is not None:  # the sign-in already ran in the hot path (.hotpaths): answer what it decided
        if isinstance(decided, Exception):
            raise decided
        return outcome_response(decided)
    values = request.values
    for name in _SINGLE:
        if len(values.getlist(name)) > 1:
            return error_page(400, "error_request", f"'{name}' appears more than once")
    r = rt()
    outcome = r.signin.authorize(values.to_dict(), session=current_session(), browser=browser(),
                                 now=r.provider.tokens.now())
    return outcome_response(outcome)


@bp.route("/authorize/resume")
def resume() -> Any:
    r = rt()
    flow = r.flows.get(request.args.get("flow"))
    outcome = r.signin.resume(flow, session=current_session(), browser=browser(), now=r.provider.tokens.now())
    return outcome_response(outcome)


# ------------------------------------------------------------------ token


@bp.post("/token")
def token() -> Any:
    return to_response(token_reply(rt().server, flask_request_params()))


@bp.post("/introspect")
def introspect() -> Any:
    return to_response(endpoint_reply(rt().server, "introspection", flask_request_params()))


@bp.post("/revoke")
def revoke() -> Any:
    return to_response(endpoint_reply(rt().server, "revocation", flask_request_params()))


# --------------------------------------------------------------- userinfo


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Any:
    return to_response(userinfo_reply(rt().provider, request.method, request.headers, request.form))


# -------------------------------------------------------------------- PAR


@bp.post("/par")
def par() -> Any:
    """RFC 9126 §2: authenticate the client, check the request, store it, hand back a reference."""
    r = rt()
    oreq = r.server.create_oauth2_request(None)
    try:
        client = r.server.authenticate_client(oreq, AUTH_METHODS, "par")
        form = request.form.to_dict()
        if "request_uri" in form:
            raise InvalidRequestError("request_uri must not be pushed (RFC 9126 section 2.1)")
        if form.get("client_id") and form["client_id"] != client.client_id:
            raise InvalidRequestError("client_id does not match the authenticated client")
        form.pop("client_secret", None)
        form.pop("client_assertion", None)
        form.pop("client_assertion_type", None)
        form["client_id"] = client.client_id
        redirect_uri = form.get("redirect_uri")
        if not redirect_uri or not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("redirect_uri is missing or not registered")
        if form.get("response_type") != "code":
            raise InvalidRequestError("response_type must be code")
        if client.is_public and not form.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge with S256) is required for this client")
        if form.get("code_challenge") and form.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        refused = unsupported(form)
        if refused is not None:  # a pushed request object or response mode we cannot honour
            raise InvalidRequestError(refused[1])
        fapi.check_pushed_request(client, form)  # FAPI 2.0 SP 5.3.2.2: code, PKCE S256
        jkt = r.provider.dpop.pushed_jkt(request.headers, form)  # RFC 9449 §10.1: binds the code
        if jkt:
            form["dpop_jkt"] = jkt
    except OAuth2Error as e:
        return oauth_error_response(e)
    uri = r.provider.par.push(client.client_id, form)
    resp = jsonify({"request_uri": uri, "expires_in": r.provider.par.ttl_seconds})
    resp.status_code = 201
    resp.headers.update(NO_STORE)
    resp.headers.update(r.provider.dpop.nonce_header("par"))
    return resp

