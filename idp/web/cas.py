"""The CAS 3.0 endpoints (issue 21 §3): HTTP in, :mod:`idp.cas` decisions out.

``/cas/login``, ``/cas/login/resume`` (back from the idp's login page),
``/cas/consent``, ``/cas/serviceValidate``, ``/cas/p3/serviceValidate`` and
``/cas/logout``. The login is the idp's own (a login-only
:class:`~idp.oauth.flow.Flow`, as the device page uses); a sign-out here ends
the SSO session through :meth:`idp.sessions.SessionStore.end`, as the OpenID
end-session endpoint does, so every portal of the session is told.

These are not JSON APIs (browser redirects, and XML for the validation), so
they are not in the OpenAPI document (idp/web/openapi.py), which lists the
JSON endpoints only.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, make_response, redirect, request, url_for

from keys.locale import N_

from ..cas.login import CasLogin, Outcome, Refused, ToConsent, ToLogin, ToService
from ..cas.services import find_service
from ..cas.tickets import TicketStore
from ..cas.validation import INTERNAL_ERROR, Failure, Validator, render_json, render_xml
from ..consents import chosen_scopes
from ..oauth.claims import ID_NUMBER_SCOPE
from .common import SESSION_COOKIE, current_session, render, rt
from .i18n import register
from .logout import frontchannel_response
from .responses import error_page
from .security import check_csrf, cookie_name

__all__ = ["bp", "MESSAGES"]

logger = logging.getLogger(__name__)

bp = Blueprint("cas", __name__, url_prefix="/cas")

MESSAGES: dict[str, str] = {
    # key → English msgid; the Chinese is in keys/locale/zh_CN/LC_MESSAGES/messages.po
    'cas_unknown_service': N_('The system that sent you here is not registered with us as a CAS service, so sign-in cannot continue. Go back to that site and start again.'),
    'cas_no_service': N_('This sign-in request names no service. Start from the system you want to use.'),
    'cas_logged_out': N_('You are signed out.'),
    'cas_consent_denied': N_('You declined to share your information, so you are not signed in to that system.'),
}
register(MESSAGES)


def _parts() -> tuple[CasLogin, Validator]:
    """Built once per application, beside its runtime."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    built = app.extensions.get("yiwang_cas")
    if built is not None:
        return built  # type: ignore[no-any-return]
    r = rt()
    services = r.services
    tickets = TicketStore(services.redis, services.keyspace, lifetime_seconds=r.settings.cas_ticket_seconds)
    login = CasLogin(db=services.db, redis=services.redis, keyspace=services.keyspace, tickets=tickets,
                     sessions=r.sessions, consents=r.consents, flows=r.flows, audit=r.provider.audit,
                     resume_url=lambda request_id: url_for("cas.resume", request=request_id))
    built = (login, Validator(tickets=tickets, sessions=r.sessions, provider=r.provider, accounts=services.accounts))
    app.extensions["yiwang_cas"] = built
    return built


def _login() -> CasLogin:
    return _parts()[0]


def _validator() -> Validator:
    return _parts()[1]


def _now() -> int:
    return int(rt().provider.tokens.now())


def _answer(outcome: Outcome) -> Any:
    if isinstance(outcome, ToService):
        resp = redirect(outcome.url, code=302)
    elif isinstance(outcome, ToLogin):
        resp = redirect(url_for("auth.login", flow=outcome.flow_id), code=303)
    elif isinstance(outcome, ToConsent):
        resp = redirect(url_for("cas.consent", request=outcome.request_id), code=303)
    else:
        assert isinstance(outcome, Refused)
        resp = make_response(error_page(outcome.status, outcome.message, outcome.detail))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/login")
def login() -> Any:
    """CAS 3.0 §2.1: credential requestor, or a ticket at once with a session."""
    params = {k: request.args.get(k, "") for k in ("service", "renew", "gateway")}
    return _answer(_login().start(params, session=current_session(touch=True), now=_now()))


@bp.get("/login/resume")
def resume() -> Any:
    return _answer(_login().resume(request.args.get("request"), session=current_session(touch=True), now=_now()))


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Any:
    request_id = request.args.get("request")
    session = current_session(touch=True)
    shown = _login().consent_shown(request_id)
    if shown is None:
        return error_page(400, "error_expired")
    if session is None:
        return _answer(_login().resume(request_id, session=None, now=_now()))
    client, scopes = shown
    ctx = {"client_name": client.name, "scopes": scopes, "asks_id_number": ID_NUMBER_SCOPE in scopes,
           "form_action": url_for("cas.consent", request=request_id), "form_key": request_id}
    if request.method == "GET":
        html, status = render("consent.html", **ctx)
        resp = make_response(html, status)
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if not check_csrf(request_id):
        return error_page(400, "error_csrf")
    if request.form.get("decision") != "allow":
        # CAS has no error channel to the service: the citizen stays here.
        rt().provider.audit("consent.denied", client_id=client.client_id)
        return error_page(403, "cas_consent_denied")
    granted = chosen_scopes(scopes, share_id_number=request.form.get("share_id_number") == "yes")
    return _answer(_login().give_consent(request_id, session=session, granted=granted, now=_now()))


def _validate(with_attributes: bool) -> Any:
    """CAS 3.0 §2.5 / §2.6; XML by default, JSON with ``format=JSON`` (§2.5.1)."""
    params = {k: request.args.get(k, "") for k in ("service", "ticket", "renew", "pgtUrl", "format")}
    try:
        result = _validator().validate(params, with_attributes=with_attributes)
    except Exception:
        logger.exception("CAS ticket validation failed")
        result = Failure(INTERNAL_ERROR, "the ticket could not be validated; try again")
    if params["format"].upper() == "JSON":
        resp = make_response(render_json(result), 200)
        resp.headers["Content-Type"] = "application/json; charset=utf-8"
    else:
        resp = make_response(render_xml(result), 200)
        resp.headers["Content-Type"] = "application/xml; charset=utf-8"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/serviceValidate")
def service_validate() -> Any:
    return _validate(with_attributes=False)


@bp.get("/p3/serviceValidate")
def p3_service_validate() -> Any:
    return _validate(with_attributes=True)


@bp.get("/logout")
def logout() -> Any:
    """CAS 3.0 §2.3: end the SSO session (every portal told); ``service``: back there if registered."""
    r = rt()
    service = request.args.get("service") or None
    back = service if service and find_service(r.services.db, service) is not None else None
    current = current_session(touch=False)
    ended = None
    if current is not None:
        ended = r.sessions.end(current.sid, "logout")
        if ended is not None:
            r.provider.audit("session.logout", detail={"sid": ended.sid, "cas": True})
    continue_to = back or url_for("auth.login")
    resp = frontchannel_response(ended, continue_to=continue_to) if ended is not None else None
    if resp is None:
        if back is not None:
            resp = redirect(back, code=303)
        else:
            html, status = render("logout_done.html", message="cas_logged_out", frames=[], continue_to=None)
            resp = make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"
    resp.delete_cookie(cookie_name(SESSION_COOKIE), path="/", secure=r.secure_cookies)
    return resp
