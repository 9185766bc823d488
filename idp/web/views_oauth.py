"""OAuth 2.0 / OpenID Connect endpoints: authorize, token, userinfo, introspect, revoke, PAR."""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import Blueprint, Response, jsonify, make_response, redirect, request, url_for

from ..models import Citizen, Consent
from ..oauth.endpoints import endpoint_reply, token_reply, userinfo_reply
from ..oauth.flow import FlowState, Step, consent_missing, final_scopes, next_step
from ..oauth.grants import AUTH_METHODS
from ..oauth.par import REQUEST_URI_PREFIX
from ..oauth.provider import GrantUser
from .common import (
    bind_flow_to_browser,
    current_session,
    flow_bound_to_browser,
    render,
    rt,
    set_browser_cookie,
)
from .i18n import register
from .oauth_server import NO_STORE, ParamsRequest, flask_request_params, to_response

__all__ = ["bp", "oauth_error_response"]

logger = logging.getLogger(__name__)

bp = Blueprint("oauth", __name__)

# RFC 6749 §3.1: these may appear at most once.
_SINGLE = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
           "code_challenge", "code_challenge_method", "prompt", "max_age", "request_uri",
           "request", "response_mode")

# Protocol values are ASCII (RFC 6749 §3.1.1, §3.3, Appendix A; RFC 3986 for URIs).
# Authlib puts some of them in an error description, and refuses to build one
# with other characters (a ValueError, once an unauthenticated 500).
_ASCII_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "code_challenge",
                 "code_challenge_method", "prompt", "max_age", "response_mode", "request_uri")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

MESSAGES = {
    # Fixed texts for the authorization endpoint's error page: nothing of the
    # request (an attacker's redirect_uri, a description) is shown; the detail
    # goes to the log (issue 19 §10).
    "error_unknown_client": {
        "zh-CN": "发起登录的应用未在本平台登记，无法继续。请返回原网站重新开始。",
        "en": "The service that sent you here is not registered with us, so sign-in cannot continue. "
              "Go back to that site and start again.",
    },
    "error_redirect_uri": {
        "zh-CN": "此登录请求要求返回一个未登记的地址。为保护您的安全，本平台不会跳转。请返回原网站重新开始。",
        "en": "This sign-in request asks to return to an address that is not registered, so for your "
              "safety you are not sent there. Go back to the site and start again.",
    },
    "error_par_required": {
        "zh-CN": "本平台只接受应用预先提交的登录请求。请返回原网站重新开始。",
        "en": "This server accepts only sign-in requests that the service has pushed to it first. "
              "Go back to the site and start again.",
    },
}
register(MESSAGES)


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


def _redirect_error(redirect_uri: str, error: str, description: str | None, state: str | None) -> Response:
    params = [("error", error)]
    if description:
        params.append(("error_description", description))
    if state:
        params.append(("state", state))
    params.append(("iss", rt().provider.issuer))  # RFC 9207 §2
    return redirect(add_params_to_uri(redirect_uri, params), code=302)


def _error_page(status: int = 400, message: str = "error_request", detail: str | None = None) -> Any:
    """A fixed, translated message; ``detail`` (never shown: it may carry what an
    attacker put in the request) goes to the log, quoted so it cannot forge lines."""
    if detail:
        logger.info("authorization request refused (%s): %r", message, detail[:300])
    return render("error.html", status, message=message)


def _refusal_page(error: OAuth2Error, params: dict[str, str]) -> Any:
    """The error page for a request that cannot be answered at its redirect URI."""
    message = "error_request"
    if error.error == "invalid_client":
        message = "error_unknown_client"
    else:
        client = rt().server.query_client(params.get("client_id"))
        wanted = params.get("redirect_uri")
        if client is not None and (not client.check_redirect_uri(wanted) if wanted
                                   else client.get_default_redirect_uri() is None):
            message = "error_redirect_uri"
    return _error_page(400, message, f"{error.error}: {error.description or ''}")


def _unsupported(params: dict[str, str]) -> tuple[str, str] | None:
    """``(error, description)`` for an authorization parameter this server does not support.

    Checked once the client and redirect URI are known good, so the answer
    goes back to the client. Discovery says the same: request_parameter_supported
    and request_uri_parameter_supported false, response_modes_supported
    ["query"]. (``claims`` is ignored: claims_parameter_supported false.)
    """
    if params.get("request"):
        return "request_not_supported", "request objects are not supported (OIDC Core 6.1)"
    if params.get("request_uri"):
        return "request_uri_not_supported", "only request_uri values from the PAR endpoint are supported"
    mode = params.get("response_mode")
    if mode not in (None, "", "query"):
        return "invalid_request", "response_mode must be query"
    return None


# ------------------------------------------------------------- authorize


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    values = request.values
    for name in _SINGLE:
        if len(values.getlist(name)) > 1:
            return _error_page(400, "error_request", f"'{name}' appears more than once")
    params = values.to_dict()
    for name in _ASCII_PARAMS:
        if name in params and not _PRINTABLE_ASCII.fullmatch(params[name]):
            return _error_page(400, "error_request", f"'{name}' has characters outside printable ASCII")
    r = rt()
    pushed = False
    if params.get("request_uri", "").startswith(REQUEST_URI_PREFIX):
        # RFC 9126 §4: the pushed parameters replace the request's own.
        taken = r.provider.par.take(params["request_uri"], params.get("client_id"))
        if taken is None:
            return _error_page(400, "error_expired", "the request_uri is unknown, expired or already used")
        params, pushed = taken, True
    elif r.provider.config.require_par and not params.get("request_uri"):
        return _error_page(400, "error_par_required", "this server requires pushed authorization requests")
    # Any other request_uri is refused at the client's redirect URI (_unsupported).
    return _authorize(params, FlowState(), None, pushed=pushed, login_here=True)


@bp.route("/authorize/resume")
def resume() -> Any:
    fid = request.args.get("flow")
    flow = rt().flows.get(fid)
    if flow is None or not flow.get("params"):
        return _error_page(400, "error_expired")
    return continue_flow(fid, flow, current_session())


def continue_flow(fid: str, flow: dict[str, Any], session: Any, *, citizen: Any = None) -> Any:
    """Take up a waiting authorization request after a login, second factor or consent.

    ``session`` is the SSO session of this browser (just created, for a login
    POST that finishes the request itself); ``citizen`` the account that
    login just read, if any.
    """
    # The flow id is a reference anyone could paste: what happened in the flow
    # (a login, a consent) counts only in the browser and session it happened
    # in; elsewhere the flow starts over (no consent, no fresh login) and is
    # bound to the browser that continues it.
    sid = session.sid if session is not None else None
    bound = flow_bound_to_browser(flow)
    fresh = bound and bool(flow.get("fresh_login")) and sid is not None and flow.get("login_sid") == sid
    consented = bound and bool(flow.get("consent_given")) and sid is not None and flow.get("consent_sid") == sid
    if not bound:
        flow.pop("browser", None)
    state = FlowState(fresh_login=fresh, consent_given=consented)
    return _authorize(flow["params"], state, fid, granted=flow.get("granted") if consented else None,
                      pushed=bool(flow.get("pushed")), session=session, flow=flow, citizen=citizen)


_NO_SESSION: Any = object()


def _authorize(params: dict[str, str], state: FlowState, fid: str | None, *, granted: list[str] | None = None,
               pushed: bool = False, session: Any = _NO_SESSION, flow: dict[str, Any] | None = None,
               citizen: Any = None, login_here: bool = False) -> Any:
    r = rt()
    provider = r.provider
    if session is _NO_SESSION:
        session = current_session()
    # The citizen row is read later, with the consent, in one query; the
    # grant's validation needs only to know that someone is signed in.
    user = None
    if session is not None:
        user = GrantUser(citizen_id=int(session.citizen_id), public_id="", sid=session.sid,
                         auth_time=session.auth_time, acr=session.acr, amr=list(session.amr))
    params = dict(params)
    oreq = ParamsRequest("GET", params)
    try:
        grant = r.server.get_consent_grant(oreq, end_user=user)
    except OAuth2Error as e:
        if e.redirect_uri:
            return _redirect_error(e.redirect_uri, e.error, e.description, params.get("state"))
        return _refusal_page(e, params)
    except ValueError as e:  # Authlib refusing to build an error around a value (see _ASCII_PARAMS)
        return _error_page(400, "error_request", str(e))
    client = grant.request.client
    redirect_uri = grant.redirect_uri
    st = params.get("state")
    unsupported = _unsupported(params)
    if unsupported is not None:
        return _redirect_error(redirect_uri, *unsupported, st)

    max_age = None
    if params.get("max_age") not in (None, ""):
        try:
            max_age = int(params["max_age"])
            if max_age < 0:
                raise ValueError
        except ValueError:
            return _redirect_error(redirect_uri, "invalid_request", "max_age must be a whole number", st)

    requested = scope_to_list(grant.request.scope) or []
    consent = None
    if user is None:
        citizen = None
    elif citizen is None or citizen.id != user.citizen_id or consent_missing(
            requested, first_party=client.first_party, may_receive_id_number=client.may_receive_id_number,
            consented=None):
        citizen, consent = _citizen_and_consent(user.citizen_id, client.client_id)
    # else: the account login has just read, and no consent row could change the answer
    if citizen is None or citizen.disabled:
        user = None
    else:
        user.public_id = citizen.public_id
        user.citizen = citizen
    consented = granted if state.consent_given else (consent.scopes if consent is not None and consent.revoked_at is None else None)
    missing = consent_missing(requested, first_party=client.first_party,
                              may_receive_id_number=client.may_receive_id_number, consented=consented)
    decision = next_step(
        prompt=params.get("prompt"), max_age=max_age, acr_values=params.get("acr_values"),
        session_auth_time=session.auth_time if user else None,
        session_acr=session.acr if user else None,
        citizen_has_totp=bool(citizen is not None and citizen.has_totp),
        consent_missing=missing, state=state, now=provider.tokens.now(),
    )
    if decision.step is Step.ERROR:
        return _redirect_error(redirect_uri, decision.error or "interaction_required", None, st)
    if decision.step is not Step.ISSUE:
        if flow is None:
            flow = (r.flows.get(fid) if fid else None) or {}
        flow.update(params=params, client_id=client.client_id, client_name=client.name,
                    scopes=requested, redirect_uri=redirect_uri, state=st,
                    ui_locales=params.get("ui_locales"), pushed=pushed,
                    # An ID number as login_hint is taken only from a pushed request (PAR
                    # body, RFC 9126): in a front-channel URL it is ignored, never echoed.
                    login_hint=params.get("login_hint") if pushed else None,
                    fresh_login=state.fresh_login, consent_given=state.consent_given, granted=granted)
        if not state.fresh_login:
            flow.pop("login_sid", None)
        if not state.consent_given:
            flow.pop("consent_sid", None)
        new_cookie = bind_flow_to_browser(flow) if not flow.get("browser") else None
        if fid:
            r.flows.save(fid, flow)
        else:
            fid = r.flows.create(flow)
        if login_here and decision.step is Step.LOGIN:
            # The login form answers the authorization request itself (no redirect to /login).
            from .views_auth import login_page

            resp = make_response(login_page(fid, flow, bound=True))
        else:
            target = {Step.LOGIN: "auth.login", Step.SECOND_FACTOR: "auth.second_factor",
                      Step.CONSENT: "auth.consent"}[decision.step]
            resp = redirect(url_for(target, flow=fid), code=302)
        if new_cookie:
            set_browser_cookie(resp, new_cookie)
        return resp

    assert user is not None and session is not None
    scopes = final_scopes(requested, first_party=client.first_party,
                          may_receive_id_number=client.may_receive_id_number,
                          consented=consented)
    # Authlib re-validates the request when it issues the code and recomputes
    # the scope from the parameters, so the cut is made in the parameters.
    oreq.payload.data["scope"] = " ".join(scopes)
    grant.request.user = user
    # The code's save also adds the client to the session and deletes the
    # finished flow (one round trip).
    deleted: list[bool] = []
    if fid:
        flows, done = r.flows, fid

        def finish(pipe: Any) -> None:
            flows.delete(done, pipe=pipe)
            deleted.append(True)

        user.on_code_issue = finish
    response = r.server.create_authorization_response(oreq, grant_user=user, grant=grant)
    if fid and not deleted:  # no code was issued (an error answer): the flow ends all the same
        r.flows.delete(fid)
    return response


class _CitizenView(NamedTuple):
    """What authorize needs of an account (also read by the code's claims snapshot)."""

    id: int
    public_id: str
    name: str
    phone: str | None
    email: str | None
    disabled: bool
    has_totp: bool


class _ConsentView(NamedTuple):
    scopes: list[str]
    revoked_at: Any


_CITIZEN_AND_CONSENT: Any = None


def _citizen_and_consent_stmt() -> Any:
    """Built once, in Core: constructing the statement and loading ORM entities
    were a third of this lookup's GIL time on every silent sign-in."""
    global _CITIZEN_AND_CONSENT
    if _CITIZEN_AND_CONSENT is None:
        import sqlalchemy as sa

        c, k = Citizen.__table__.c, Consent.__table__.c
        _CITIZEN_AND_CONSENT = (
            sa.select(c.id, c.public_id, c.name, c.phone, c.email, c.disabled,
                      c.totp_secret_enc.is_not(None), k.scopes, k.revoked_at, k.citizen_id)
            .select_from(Citizen.__table__.outerjoin(
                Consent.__table__, sa.and_(k.citizen_id == c.id, k.client_id == sa.bindparam("client_id"))))
            .where(c.id == sa.bindparam("citizen_id"))
        )
    return _CITIZEN_AND_CONSENT


def _citizen_and_consent(citizen_id: int, client_id: str) -> tuple[_CitizenView | None, _ConsentView | None]:
    row = rt().services.db.first_row(_citizen_and_consent_stmt(), {"citizen_id": citizen_id, "client_id": client_id})
    if row is None:
        return None, None
    citizen = _CitizenView(int(row[0]), row[1], row[2], row[3], row[4], bool(row[5]), bool(row[6]))
    consent = _ConsentView(list(row[7] or []), row[8]) if row[9] is not None else None
    return citizen, consent


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
        unsupported = _unsupported(form)
        if unsupported is not None:  # a pushed request object or response mode we cannot honour
            raise InvalidRequestError(unsupported[1])
    except OAuth2Error as e:
        return oauth_error_response(e)
    uri = r.provider.par.push(client.client_id, form)
    resp = jsonify({"request_uri": uri, "expires_in": r.provider.par.ttl_seconds})
    resp.status_code = 201
    resp.headers.update(NO_STORE)
    return resp

