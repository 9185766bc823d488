"""The citizen-facing pages of a sign-in: login, second factor, consent."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, redirect, request, url_for

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_resident_id

from ..consents import chosen_scopes
from ..oauth.claims import ID_NUMBER_SCOPE
from ..oauth.discovery import ACR_2FA, ACR_PASSWORD
from ..oauth.flow import Flow, FlowState, Step
from ..signin import ErrorPage
from .common import SESSION_COOKIE, browser, client_ip, current_session, render, rt
from .responses import error_page, flow_lang, login_page, outcome_response
from .security import check_csrf, cookie_name

__all__ = ["bp"]

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_REASON_KEYS = {
    "length": "id_length",
    "charset": "id_charset",
    "birth_date": "id_birth_date",
    "check_character": "id_check_character",
}


def _start_session(citizen_id: int, *, acr: str, amr: list[str]) -> tuple[Any, str | None]:
    """Start a session, or refresh the login of the current one for the same citizen.

    A fresh login or a step-up in an existing session keeps its ``sid``
    (issue 4 §2); a login as somebody else ends the old session first.
    Returns the session, and its cookie value if it is new.
    """
    r = rt()
    now = r.provider.tokens.now()
    current = current_session(touch=False)
    if current is not None and current.citizen_id == str(citizen_id):
        updated = r.sessions.update_auth(current.sid, auth_time=now, acr=acr, amr=amr)
        if updated is not None:
            return updated, None
        current = None  # it ended meanwhile (signed out elsewhere): a new one
    if current is not None:
        r.sessions.end(current.sid, "logout")
    return r.sessions.create(
        str(citizen_id), now, acr, amr, "browser", client_ip(), request.headers.get("User-Agent", "")
    )


def _set_session_cookie(resp: Any, cookie: str) -> None:
    resp.set_cookie(cookie_name(SESSION_COOKIE), cookie, httponly=True, samesite="Lax",
                    secure=rt().secure_cookies, path="/")


# ------------------------------------------------------------------ login


ATTEMPTS_WARNING_AT = 3
"""Say how many attempts remain once this few are left (issue 18 §1)."""


def _attempts_warning(left: int | None, lock_seconds: int) -> tuple[str, dict[str, int]] | None:
    """The "n attempts left" line: the same for any number typed (the counter is the number's)."""
    if left is None or left > ATTEMPTS_WARNING_AT:
        return None
    minutes = max(1, math.ceil(lock_seconds / 60))
    if left == 0:
        return ("locked", {"minutes": minutes})
    return ("attempts_left_one" if left == 1 else "attempts_left", {"n": left, "minutes": minutes})


def _expired(language: str | None = None) -> Any:
    return error_page(400, "error_expired", language=language)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid) if fid else None
    if fid and (flow is None or flow.state is FlowState.DONE):
        return _expired()
    if request.method == "GET" and flow is not None:
        return login_page(flow, bound=flow.is_bound_to(browser().hash))
    language = flow_lang(flow)
    ctx: dict[str, Any] = {
        "flow": fid, "client_name": flow.client_name if flow else None, "language": language,
        "id_number": "", "error": None, "warning": None,
    }
    if request.method == "GET":
        return render("login.html", **ctx)
    if not check_csrf(fid):
        return error_page(400, "error_csrf", language=language)
    id_number = request.form.get("id_number", "").strip()
    password = request.form.get("password", "")
    ctx["id_number"] = id_number[:18]
    if not id_number or not password:
        ctx["error"] = ("required", {})
        return render("login.html", 400, **ctx)
    try:
        resident_id = parse_resident_id(id_number)  # parsed once: the account service takes it as it is
    except InvalidIdentifier as e:
        ctx["error"] = (_REASON_KEYS.get(e.reason, "id_charset"), {"n": len(id_number)})
        return render("login.html", 400, **ctx)
    outcome = r.services.accounts.login(
        resident_id, password, ip=client_ip(), client_id=flow.client_id if flow else None
    )
    if outcome.status == "throttled":
        ctx["error"] = ("locked", {"minutes": max(1, math.ceil(outcome.retry_after / 60))})
        return render("login.html", 429, **ctx)
    if not outcome.ok or outcome.citizen is None:
        ctx["error"] = ("bad_credentials", {})
        ctx["warning"] = _attempts_warning(outcome.attempts_left, outcome.lock_seconds)
        return render("login.html", 401, **ctx)
    citizen = outcome.citizen
    flow = flow or Flow.login_only()
    if flow.state is not FlowState.LOGIN_PENDING:
        flow.wait_for(Step.LOGIN)  # a login on a flow that waited for more starts its login over
    if outcome.needs_second_factor:
        flow.password_passed(citizen.id)
        fid = r.flows.keep(flow)
        return redirect(url_for("auth.second_factor", flow=fid), code=303)
    session, cookie = _start_session(citizen.id, acr=ACR_PASSWORD, amr=["pwd"])
    # After a login that needs nothing more, the authorization request is
    # answered in this response (the code redirect, or the next step's page).
    resp = outcome_response(
        r.signin.after_login(flow, session, browser=browser(), now=r.provider.tokens.now(), citizen=citizen),
        after_post=True,
    )
    if cookie is not None:
        _set_session_cookie(resp, cookie)
    return resp


# ---------------------------------------------------------- second factor


@bp.route("/login/second-factor", methods=["GET", "POST"])
def second_factor() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid)
    if flow is None or flow.state is FlowState.DONE:
        return _expired()
    language = flow_lang(flow)
    pending = flow.pending_citizen
    session = current_session(touch=False)
    citizen_id = pending if pending is not None else (int(session.citizen_id) if session else None)
    if citizen_id is None:
        return redirect(url_for("auth.login", flow=fid), code=303)
    ctx = {"flow": fid, "language": language, "error": None, "client_name": flow.client_name}
    if request.method == "GET":
        return render("totp.html", **ctx)
    if not check_csrf(fid):
        return error_page(400, "error_csrf", language=language)
    if flow.state is not FlowState.SECOND_FACTOR_PENDING:
        return _expired(language)
    code = request.form.get("code", "")
    if not r.services.accounts.verify_totp(int(citizen_id), code, ip=client_ip()):
        r.provider.audit("login.second_factor_failure", detail={"citizen": int(citizen_id)})
        ctx["error"] = ("totp_wrong", {})
        return render("totp.html", 401, **ctx)
    r.provider.audit("login.second_factor", detail={"citizen": int(citizen_id)})
    session, cookie = _start_session(int(citizen_id), acr=ACR_2FA, amr=["pwd", "otp"])
    resp = outcome_response(r.signin.after_second_factor(flow, session), after_post=True)
    if cookie is not None:
        _set_session_cookie(resp, cookie)
    return resp


# ---------------------------------------------------------------- consent


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid)
    session = current_session()
    if flow is None or not flow.is_authorization or flow.state is FlowState.DONE:
        return _expired()
    if session is None:
        return redirect(url_for("auth.login", flow=fid), code=303)
    language = flow_lang(flow)
    client = r.provider.query_client(flow.client_id)
    if client is None:
        return error_page(400, "error_request", language=language)
    scopes = [s for s in flow.scopes if s != ID_NUMBER_SCOPE or client.may_receive_id_number]
    ctx = {"flow": fid, "language": language, "client_name": client.name, "scopes": scopes,
           "asks_id_number": ID_NUMBER_SCOPE in scopes}
    if request.method == "GET":
        return render("consent.html", **ctx)
    if not check_csrf(fid):
        return error_page(400, "error_csrf", language=language)
    if request.form.get("decision") != "allow":
        return outcome_response(r.signin.deny_consent(flow))
    granted = chosen_scopes(scopes, share_id_number=request.form.get("share_id_number") == "yes")
    outcome = r.signin.give_consent(flow, session, granted)
    if isinstance(outcome, ErrorPage):
        return error_page(outcome.status, outcome.message, language=language)
    return outcome_response(outcome)
