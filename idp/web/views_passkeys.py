"""Passkey pages and endpoints (issue 13 §2): sign-in, step-up, and the account page's passkeys.

The ceremonies are :class:`idp.passkeys.service.PasskeyService`; this module
only speaks HTTP. The browser side is ``static/passkeys.js`` (no inline
script: the CSP is strict). Its calls are JSON POSTs carrying the page's CSRF
token (bound to the session or browser and to the flow, as every form's), and
answer ``{"next": url}`` or ``{"error": code, "message": text}``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, redirect, request, url_for

from keys.locale import N_, gettext

from ..oauth.discovery import ACR_PASSKEY
from ..oauth.flow import Flow, FlowState, FlowStateError, Step
from ..passkeys.amr import authenticator_kind
from ..passkeys.service import PasskeyError, PasskeyService
from ..passkeys.store import LastFactor
from ..signin import ResumeAt, ReturnTo
from .common import browser, client_ip, current_session, lang, render, rt, set_browser_cookie
from .responses import error_page, flow_lang
from .security import csrf_token
from .views_auth import _set_session_cookie, _start_session

__all__ = ["bp", "passkeys", "step_up_url", "RECENT_LOGIN_SECONDS"]

logger = logging.getLogger(__name__)

bp = Blueprint("passkeys", __name__)

RECENT_LOGIN_SECONDS = 300
"""Adding a passkey adds a way in: the session's sign-in must be this recent, or the password given."""

_MESSAGES = {
    "malformed": N_("The browser's answer could not be read. Please try again."),
    "challenge": N_("This request has expired or was already used. Please try again."),
    "unknown": N_("This passkey is not registered with Yiwang (it may have been removed)."),
    "wrong_account": N_("This passkey belongs to another account."),
    "invalid": N_("The passkey's answer could not be verified."),
    "blocked": N_("This passkey has been blocked because it looks copied. Sign in another way and "
                  "remove it on your account page."),
    "no_user_verification": N_("Your device did not verify you (fingerprint, face or screen lock). "
                               "A passkey sign-in needs that check."),
    "attestation_required": N_("This service only accepts certified authenticators; this one did not say "
                               "what it is."),
    "attestation_format": N_("This service does not accept this kind of authenticator."),
    "authenticator_not_allowed": N_("This service does not accept this authenticator model."),
    "already_registered": N_("This passkey is already registered."),
    "disabled": N_("This account is disabled."),
    "csrf": N_("The page has expired. Please reload it and try again."),
    "password": N_("Enter your current password (or sign in again) to add a passkey."),
    "expired": N_("This sign-in has expired. Please start again from the website you came from."),
}


def passkeys() -> PasskeyService:
    """The runtime's passkey service (built once per app)."""
    svc = current_app.extensions.get("yiwang_passkeys")
    if svc is None:
        r = rt()
        svc = current_app.extensions.setdefault("yiwang_passkeys",
                                                PasskeyService.from_services(r.services, r.settings))
    return svc  # type: ignore[no-any-return]


def _refuse(reason: str, status: int = 400, language: str | None = None) -> Any:
    text = gettext(language or lang(), _MESSAGES.get(reason, _MESSAGES["invalid"]))
    return jsonify(error=reason, message=text), status


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True, cache=True)
    return data if isinstance(data, dict) else {}


def _csrf_ok(flow: str | None) -> bool:
    """The JSON body's ``csrf_token`` against the same token a form on this page carries."""
    import hmac

    sent = _body().get("csrf_token")
    if not isinstance(sent, str) or not sent:
        return False
    return hmac.compare_digest(sent.encode(), csrf_token(flow).encode())


def _with_browser_cookie(resp: Any, b: Any) -> Any:
    """Set the browser cookie the challenge was bound to, if this browser had none."""
    if b.new_cookie:
        set_browser_cookie(resp, b.new_cookie)
    return resp


def _flow(fid: str | None) -> tuple[Flow | None, bool]:
    """The flow named by ``?flow=`` (``None`` for a plain sign-in), and whether it is usable."""
    if not fid:
        return None, True
    flow = rt().flows.get(fid)
    if flow is None or flow.state is FlowState.DONE:
        return None, False
    return flow, True


# ----------------------------------------------------------------- sign-in


@bp.post("/passkey/options")
def sign_in_options() -> Any:
    """Options for a discoverable sign-in, or (``?flow=`` waiting for a step-up) for the signed-in account."""
    fid = request.args.get("flow")
    flow, ok = _flow(fid)
    if not ok:
        return _refuse("expired")
    if not _csrf_ok(fid):
        return _refuse("csrf", language=flow_lang(flow) if flow else None)
    citizen_id = None
    if flow is not None and flow.state is FlowState.PASSKEY_PENDING:
        session = current_session(touch=False)
        if session is None:
            return _refuse("expired")
        citizen_id = int(session.citizen_id)
    b = browser()
    options = passkeys().authentication_options(b.hash, citizen_id=citizen_id)
    return _with_browser_cookie(jsonify(options), b)


@bp.post("/passkey/sign-in")
def sign_in() -> Any:
    """A passkey assertion: a sign-in from the login page or the step-up page."""
    r = rt()
    fid = request.args.get("flow")
    flow, ok = _flow(fid)
    language = flow_lang(flow) if flow else None
    if not ok:
        return _refuse("expired", language=language)
    if not _csrf_ok(fid):
        return _refuse("csrf", language=language)
    try:
        done = passkeys().authenticate(browser().hash, _body().get("credential") or {}, ip=client_ip())
    except PasskeyError as e:
        # Not login.failure: that one counts as a wrong ID number or password (idp.metrics).
        r.provider.audit("login.passkey_refused", ip=client_ip(), detail={"reason_code": e.reason})
        return _refuse(e.reason, 401 if e.reason != "malformed" else 400, language=language)
    citizen = r.services.accounts.get(done.citizen_id)
    if citizen is None or citizen.disabled:
        return _refuse("disabled", 403, language=language)
    session = current_session(touch=False)
    stepping_up = flow is not None and flow.state is FlowState.PASSKEY_PENDING
    if stepping_up and (session is None or session.citizen_id != str(done.citizen_id)):
        return _refuse("wrong_account", 401, language=language)
    flow = flow or Flow.login_only()
    if flow.state not in (FlowState.LOGIN_PENDING, FlowState.PASSKEY_PENDING):
        flow.wait_for(Step.LOGIN)  # e.g. a flow half-way through the password's second factor
    session, cookie = _start_session(done.citizen_id, acr=ACR_PASSKEY, amr=done.amr)
    r.provider.audit("login.success", detail={"citizen": done.citizen_id, "method": "passkey"})
    try:
        flow.passkey_passed(session.sid)
    except FlowStateError:
        return _refuse("expired", language=language)
    if flow.is_authorization:
        fid = r.flows.keep(flow)
        outcome: Any = ResumeAt(fid)
    else:
        if flow.id is not None:
            r.flows.delete(flow.id)
        flow.finish()
        outcome = ReturnTo(flow.return_to)
    nxt = (url_for("oauth.resume", flow=outcome.flow_id) if isinstance(outcome, ResumeAt)
           else _local(outcome.path))
    resp = jsonify(next=nxt)
    if cookie is not None:
        _set_session_cookie(resp, cookie)
    return resp


def _local(path: str | None) -> str:
    if isinstance(path, str) and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return url_for("account.home")


@bp.get("/login/passkey")
def step_up() -> Any:
    """The step-up page: the client (or the request) needs a passkey, the session has less."""
    fid = request.args.get("flow")
    flow, ok = _flow(fid)
    if flow is None or not ok:
        return error_page(400, "error_expired")
    session = current_session(touch=False)
    if session is None:
        return redirect(url_for("auth.login", flow=fid), code=303)
    if flow.state is not FlowState.PASSKEY_PENDING:
        return redirect(url_for("oauth.resume", flow=fid), code=303)
    return render("passkey_step_up.html", flow=fid, client_name=flow.client_name, language=flow_lang(flow))


def step_up_url(return_to: str) -> str:
    """Where to send a signed-in citizen to confirm with a passkey, coming back to the local page
    ``return_to`` afterwards (e.g. a CIBA approval whose request needs ``urn:yiwang:acr:passkey``).

    The session's ``acr`` is then ``urn:yiwang:acr:passkey`` and its ``auth_time`` now.
    """
    flow = Flow.login_only(return_to)
    flow.wait_for(Step.PASSKEY)
    return url_for("passkeys.step_up", flow=rt().flows.create(flow))


# ------------------------------------------------------------ account page


def _signed_in() -> tuple[Any, Any]:
    session = current_session()
    if session is None:
        return None, None
    return session, rt().services.accounts.get(int(session.citizen_id))


@bp.post("/account/passkeys/options")
def registration_options() -> Any:
    """Creation options; the sign-in must be recent, or the current password given (a borrowed session
    must not add its own way in)."""
    r = rt()
    session, citizen = _signed_in()
    if session is None or citizen is None or not _csrf_ok(None):
        return _refuse("csrf", 400)
    recent = r.provider.tokens.now() - int(session.auth_time) <= RECENT_LOGIN_SECONDS
    if not recent:
        password = _body().get("current_password")
        checked = (r.services.accounts.check_current_password(citizen.id, password, ip=client_ip(),
                                                              action="passkey_setup")
                   if isinstance(password, str) and password else "missing")
        if checked != "ok":
            return _refuse("password", 429 if checked == "throttled" else 403)
    b = browser()
    return _with_browser_cookie(jsonify(passkeys().registration_options(citizen, b.hash)), b)


@bp.post("/account/passkeys")
def register() -> Any:
    session, citizen = _signed_in()
    if session is None or citizen is None or not _csrf_ok(None):
        return _refuse("csrf", 400)
    body = _body()
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    try:
        passkeys().register(citizen, browser().hash, body.get("credential") or {},
                            name=name or gettext(lang(), N_("Passkey")))
    except PasskeyError as e:
        return _refuse(e.reason, 400)
    return jsonify(next=url_for("account.home", changed="passkey_added") + "#passkeys")


def _form_post() -> tuple[Any, Any]:
    from .security import check_csrf

    session, citizen = _signed_in()
    if session is None or citizen is None or not check_csrf():
        return None, render("error.html", 400, message="error_csrf", detail=None)
    return session, None


@bp.post("/account/passkeys/<int:passkey_id>/rename")
def rename(passkey_id: int) -> Any:
    session, refused = _form_post()
    if refused is not None:
        return refused
    passkeys().rename(int(session.citizen_id), passkey_id, request.form.get("name", ""))
    return redirect(url_for("account.home") + "#passkeys", code=303)


@bp.post("/account/passkeys/<int:passkey_id>/remove")
def remove(passkey_id: int) -> Any:
    session, refused = _form_post()
    if refused is not None:
        return refused
    try:
        passkeys().remove(int(session.citizen_id), passkey_id)
    except LastFactor:
        # The account page again, with the reason beside the passkey list (409: nothing changed).
        from .views_account import _page

        g._yw_passkey_error = "last_factor"
        return _page(session, status=409)
    return redirect(url_for("account.home") + "#passkeys", code=303)


def _account_rows() -> list[dict[str, Any]]:
    """The signed-in citizen's passkeys as ``_account_passkeys.html`` lists them."""
    session = current_session(touch=False)
    if session is None:
        return []
    out = []
    for row in passkeys().of_citizen(int(session.citizen_id)):
        out.append({
            "id": row.id, "name": row.name, "created": row.created_at, "last_used": row.last_used_at,
            "blocked": row.blocked,
            "kind": authenticator_kind(transports=row.transports, backup_eligible=row.backup_eligible,
                                       aaguid=row.aaguid),
        })
    return out


_KINDS = {
    "passkey_kind_provider": N_("Synced passkey (password manager)"),
    "passkey_kind_security_key": N_("Security key"),
    "passkey_kind_phone": N_("Phone, used nearby"),
    "passkey_kind_synced": N_("Synced passkey (phone or computer)"),
    "passkey_kind_device": N_("This device only"),
}


@bp.app_context_processor
def _account_context() -> dict[str, Any]:
    """What the passkey partials read: lazily, so other pages pay nothing."""
    return {
        "passkey_rows": _account_rows,
        "passkeys_possible": lambda: passkeys().policy.usable,
        "passkey_kind_text": lambda key: _KINDS.get(key, key),
        "passkey_error": lambda: g.get("_yw_passkey_error"),
        "passkey_added": lambda: request.args.get("changed") == "passkey_added",
    }
