"""The citizen-facing pages of a sign-in: login, second factor, consent."""

from __future__ import annotations

import logging
import math
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, make_response, redirect, request, url_for

from keys.errors import InvalidIdentifier
from keys.identifiers import parse_resident_id

from ..models import Consent, utcnow
from ..oauth.claims import ID_NUMBER_SCOPE
from ..oauth.discovery import ACR_2FA, ACR_PASSWORD
from .common import (
    SESSION_COOKIE,
    client_ip,
    current_session,
    flow_bound_to_browser,
    lang,
    render,
    rt,
)
from .security import check_csrf, cookie_name

__all__ = ["bp", "establish_session"]

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_REASON_KEYS = {
    "length": "id_length",
    "charset": "id_charset",
    "birth_date": "id_birth_date",
    "check_character": "id_check_character",
}


def _flow_lang(flow: dict[str, Any] | None) -> str:
    return lang(flow.get("ui_locales") if flow else None)


def _after_login(fid: str | None, flow: dict[str, Any] | None) -> Any:
    if flow and flow.get("params"):
        return redirect(url_for("oauth.resume", flow=fid), code=303)
    back = (flow or {}).get("return_to")
    if isinstance(back, str) and back.startswith("/") and not back.startswith("//"):
        return redirect(back, code=303)  # a local page that sent the citizen to log in (device flow)
    if fid:
        rt().flows.delete(fid)
    return redirect(url_for("account.home"), code=303)


def establish_session(citizen_id: int, *, acr: str, amr: list[str], resp: Any) -> Any:
    """Start a session, or refresh the login of the current one for the same citizen.

    A fresh login or a step-up in an existing session keeps its ``sid``
    (issue 4 §2); a login as somebody else ends the old session first. A new
    session's cookie is set on ``resp``.
    """
    session, cookie = _start_session(citizen_id, acr=acr, amr=amr)
    if cookie is not None:
        _set_session_cookie(resp, cookie)
    return session


def _start_session(citizen_id: int, *, acr: str, amr: list[str]) -> tuple[Any, str | None]:
    """:func:`establish_session` without a response: the session, and its cookie value if it is new."""
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


def login_page(fid: str, flow: dict[str, Any], *, bound: bool) -> Any:
    """The login form of a waiting authorization request.

    ``/authorize`` answers with it directly (one redirect fewer for every
    sign-in); ``GET /login?flow=`` shows the same page. The ID number is
    prefilled only from a pushed request (PAR), in the browser that started
    the flow (``bound``).
    """
    hint = flow.get("login_hint") or ""

    def switch(current: str) -> str:
        return url_for("auth.login", flow=fid, lang="en" if current == "zh-CN" else "zh-CN")

    return render(
        "login.html", flow=fid, client_name=flow.get("client_name"), language=_flow_lang(flow),
        id_number=hint if flow.get("pushed") and bound and len(hint) <= 18 else "", error=None,
        lang_switch_url=switch,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid) if fid else None
    if fid and flow is None:
        return render("error.html", 400, message="error_expired", detail=None)
    if request.method == "GET" and flow is not None:
        return login_page(fid, flow, bound=flow_bound_to_browser(flow))
    language = _flow_lang(flow)
    ctx: dict[str, Any] = {
        "flow": fid, "client_name": (flow or {}).get("client_name"), "language": language,
        "id_number": "", "error": None,
    }
    if request.method == "GET":
        return render("login.html", **ctx)
    if not check_csrf(fid):
        return render("error.html", 400, message="error_csrf", detail=None, language=language)
    id_number = request.form.get("id_number", "").strip()
    password = request.form.get("password", "")
    ctx["id_number"] = id_number[:18]
    if not id_number or not password:
        ctx["error"] = ("required", {})
        return render("login.html", 400, **ctx)
    try:
        parse_resident_id(id_number)
    except InvalidIdentifier as e:
        ctx["error"] = (_REASON_KEYS.get(e.reason, "id_charset"), {"n": len(id_number)})
        return render("login.html", 400, **ctx)
    outcome = r.services.accounts.login(
        id_number, password, ip=client_ip(), client_id=(flow or {}).get("client_id")
    )
    if outcome.status == "throttled":
        ctx["error"] = ("locked", {"minutes": max(1, math.ceil(outcome.retry_after / 60))})
        return render("login.html", 429, **ctx)
    if not outcome.ok or outcome.citizen is None:
        ctx["error"] = ("bad_credentials", {})
        return render("login.html", 401, **ctx)
    citizen = outcome.citizen
    flow = flow or {}
    if outcome.needs_second_factor:
        flow.update(pending_citizen=citizen.id, fresh_login=False)
        if fid:
            r.flows.save(fid, flow)
        else:
            fid = r.flows.create(flow)
        return redirect(url_for("auth.second_factor", flow=fid), code=303)
    flow["fresh_login"] = True
    if fid and flow.get("params"):
        return _finish_authorization(fid, flow, citizen, acr=ACR_PASSWORD, amr=["pwd"])
    resp = _after_login(fid, flow)
    session = establish_session(citizen.id, acr=ACR_PASSWORD, amr=["pwd"], resp=resp)
    # A flow that goes on elsewhere (the device page) is saved with its login_sid.
    if not _bind_login(fid, flow, session) and fid and flow.get("return_to"):
        r.flows.save(fid, flow)
    return resp


def _finish_authorization(fid: str, flow: dict[str, Any], citizen: Any, *, acr: str, amr: list[str]) -> Any:
    """After a login that needs nothing more, answer the authorization request in this response.

    One request fewer than a 303 to ``/authorize/resume`` (which still serves
    the steps after a second factor or consent): the code redirect, or the next
    step's page, goes straight back, with the session cookie. The flow is saved
    only if another step follows; otherwise the code's round trip deletes it.
    """
    from .views_oauth import continue_flow

    session, cookie = _start_session(citizen.id, acr=acr, amr=amr)
    flow["login_sid"] = session.sid
    resp = make_response(continue_flow(fid, flow, session, citizen=citizen))
    if resp.status_code == 302:
        resp.status_code = 303  # the browser must not repeat the POST (with the password) at the next address
    if cookie is not None:
        _set_session_cookie(resp, cookie)
    return resp


def _bind_login(fid: str | None, flow: dict[str, Any], session: Any) -> bool:
    """The fresh login counts only in the session it started (see ``oauth.resume``).

    True if the flow was saved here.
    """
    if fid and flow.get("params") and session is not None:
        flow["login_sid"] = session.sid
        rt().flows.save(fid, flow)
        return True
    return False


# ---------------------------------------------------------- second factor


@bp.route("/login/second-factor", methods=["GET", "POST"])
def second_factor() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid)
    if flow is None:
        return render("error.html", 400, message="error_expired", detail=None)
    language = _flow_lang(flow)
    pending = flow.get("pending_citizen")
    session = current_session(touch=False)
    citizen_id = pending if pending is not None else (int(session.citizen_id) if session else None)
    if citizen_id is None:
        return redirect(url_for("auth.login", flow=fid), code=303)
    ctx = {"flow": fid, "language": language, "error": None, "client_name": flow.get("client_name")}
    if request.method == "GET":
        return render("totp.html", **ctx)
    if not check_csrf(fid):
        return render("error.html", 400, message="error_csrf", detail=None, language=language)
    code = request.form.get("code", "")
    if not r.services.accounts.verify_totp(int(citizen_id), code, ip=client_ip()):
        r.provider.audit("login.second_factor_failure", detail={"citizen": int(citizen_id)})
        ctx["error"] = ("totp_wrong", {})
        return render("totp.html", 401, **ctx)
    r.provider.audit("login.second_factor", detail={"citizen": int(citizen_id)})
    if pending is not None:
        flow["fresh_login"] = True
    flow.pop("pending_citizen", None)
    r.flows.save(fid, flow)
    resp = _after_login(fid, flow)
    session = establish_session(int(citizen_id), acr=ACR_2FA, amr=["pwd", "otp"], resp=resp)
    if pending is not None:
        _bind_login(fid, flow, session)
    return resp


# ---------------------------------------------------------------- consent


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Any:
    r = rt()
    fid = request.args.get("flow")
    flow = r.flows.get(fid)
    session = current_session()
    if flow is None or not flow.get("params"):
        return render("error.html", 400, message="error_expired", detail=None)
    if session is None:
        return redirect(url_for("auth.login", flow=fid), code=303)
    language = _flow_lang(flow)
    client = r.provider.query_client(flow["client_id"])
    if client is None:
        return render("error.html", 400, message="error_request", detail=None, language=language)
    scopes = [s for s in flow["scopes"] if s != ID_NUMBER_SCOPE or client.may_receive_id_number]
    ctx = {"flow": fid, "language": language, "client_name": client.name, "scopes": scopes,
           "asks_id_number": ID_NUMBER_SCOPE in scopes}
    if request.method == "GET":
        return render("consent.html", **ctx)
    if not check_csrf(fid):
        return render("error.html", 400, message="error_csrf", detail=None, language=language)
    if request.form.get("decision") != "allow":
        from .views_oauth import _redirect_error

        r.flows.delete(fid)
        r.provider.audit("consent.denied", client_id=client.client_id)
        return _redirect_error(flow["redirect_uri"], "access_denied", "the citizen declined", flow.get("state"))
    granted = [s for s in scopes if s != ID_NUMBER_SCOPE]
    if ID_NUMBER_SCOPE in scopes and request.form.get("share_id_number") == "yes":
        granted.append(ID_NUMBER_SCOPE)
    _remember_consent(int(session.citizen_id), client.client_id, granted)
    r.provider.audit("consent.granted", client_id=client.client_id, detail={"scopes": granted})
    flow.update(consent_given=True, granted=granted, consent_sid=session.sid)
    r.flows.save(fid, flow)
    return redirect(url_for("oauth.resume", flow=fid), code=303)


def _remember_consent(citizen_id: int, client_id: str, scopes: list[str]) -> None:
    # Two tabs (or a load test's parallel users) may consent at once: the
    # loser of the insert race updates the row the winner wrote.
    for attempt in (1, 2):
        try:
            with rt().services.db.session() as s:
                c = s.execute(sa.select(Consent).where(Consent.citizen_id == citizen_id,
                                                       Consent.client_id == client_id)).scalar_one_or_none()
                if c is None:
                    s.add(Consent(citizen_id=citizen_id, client_id=client_id, scopes=scopes))
                else:
                    c.scopes = scopes
                    c.revoked_at = None
                    c.updated_at = utcnow()
            return
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
