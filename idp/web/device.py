"""Device authorization grant (RFC 8628): the endpoint and the verification page.

``/device/authorize`` (also ``/device_authorization``) is the device
authorization endpoint of §3.1, answered by Authlib's
``DeviceAuthorizationEndpoint`` (:mod:`idp.device`); ``/device`` is the
verification URI of §3.3, where the citizen — on their phone, through its SSO
session, or after logging in — enters or confirms the user code and approves
or denies the request on a CSRF-protected form. The device grant itself is
served by the ordinary token endpoint; :func:`idp.oauth.server.configure_server`
registers it with the others.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, make_response, redirect, request, url_for

from keys.locale import N_

from ..device import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceApproval,
    DeviceCodeStore,
    normalize_user_code,
)
from ..oauth.claims import ID_NUMBER_SCOPE
from ..oauth.flow import Flow
from ..oauth.provider import ProviderConfig
from ..oauth.scopes import decide as decide_scopes
from .common import current_session, render, rt
from .i18n import register
from .security import check_csrf

__all__ = ["bp", "MESSAGES", "VERIFICATION_PATH"]

logger = logging.getLogger(__name__)

bp = Blueprint("device", __name__)

# The route must be where configure_server tells clients to send citizens.
VERIFICATION_PATH: str = ProviderConfig.device_verification_path

MESSAGES: dict[str, str] = {
    # certs:read:<TYPE>: one type of certificate (the type code, as certstore names it);
    # _scopes.html names it so on this page and on the consent page
    # key → English msgid; the Chinese is in keys/locale/zh_CN/LC_MESSAGES/messages.po
    'device_title': N_('Sign in on another device'),
    'device_enter': N_('Enter the 8-character code shown on the kiosk or TV.'),
    'device_code_label': N_('Device code'),
    'device_next': N_('Next'),
    'device_unknown': N_('The code is not valid or has expired: check the code on the device.'),
    'device_confirm': N_('%(client)s asks to sign you in on a device. Check that the device shows this code:'),
    'device_scopes': N_('It will get: %(scopes)s'),
    'device_approve': N_('Allow'),
    'device_deny': N_('Deny'),
    'device_approved': N_('Allowed. The device signs in by itself; you can close this page.'),
    'device_denied': N_('Denied: the device will not be signed in.'),
    'device_locked': N_('Too many wrong codes: try again in 10 minutes.'),
    'device_csrf': N_('The form has expired; please try again.'),
    'scope_certs:read_type': N_('Read your %(type)s certificates in the certificate store (every read is shown in your wallet)'),
}


register(MESSAGES)


def _render(template: str, status: int = 200, **ctx: Any) -> Response:
    html, status = render(template, status, **ctx)
    resp = make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _store() -> DeviceCodeStore:
    return rt().server.device_codes  # type: ignore[no-any-return]


@bp.post("/device/authorize")
@bp.post("/device_authorization")
def device_authorization() -> Any:
    """RFC 8628 §3.1–§3.2."""
    return rt().server.create_endpoint_response("device_authorization")


def _to_login(user_code: str | None) -> Any:
    back = VERIFICATION_PATH + (("?" + urlencode({"user_code": user_code})) if user_code else "")
    fid = rt().flows.create(Flow.login_only(back))
    return redirect(url_for("auth.login", flow=fid), code=303)


def _client_name(client_id: str) -> str:
    client = rt().provider.query_client(client_id)
    return client.name if client is not None else client_id


@bp.get(VERIFICATION_PATH)
def verify() -> Any:
    """RFC 8628 §3.3: the citizen enters (or the QR code carries) the user code."""
    raw = request.args.get("user_code", "")
    session = current_session(touch=True)
    if session is None:
        return _to_login(raw[:20] or None)
    if not raw:
        return _render("device_enter.html", error=None, user_code="")
    if _store().locked_out(session.sid, **_guesser(session)):
        return _render("device_enter.html", 429, error="device_locked", user_code="")
    pending = _store().pending_for_user_code(raw)
    if pending is None:
        _store().miss(session.sid, **_guesser(session))
        return _render("device_enter.html", 400, error="device_unknown", user_code=raw[:20])
    client = rt().provider.query_client(pending["client_id"])
    if client is None:  # deleted since the device asked: nothing to approve
        return _render("device_enter.html", 400, error="device_unknown", user_code=raw[:20])
    scopes = _shown_scopes(client, pending["scope"])
    return _render(
        "device_confirm.html",
        client_name=client.name,
        scopes=scopes,
        asks_id_number=ID_NUMBER_SCOPE in scopes,
        user_code=pending["user_code"],
    )


def _guesser(session: Any) -> dict[str, str | None]:
    """Who is entering user codes, beyond the session: the account and the address (RFC 8628 §5.1)."""
    return {"account": str(session.citizen_id), "ip": request.remote_addr}


def _shown_scopes(client: Any, scope: str) -> list[str]:
    """What the page lists and the approval may grant: the scope policy's cut, never the raw request.

    The stored scope was cut when the device asked; cutting again here means
    a registration narrowed since then is shown (and granted) as it now is.
    """
    return list(decide_scopes(client, DEVICE_CODE_GRANT_TYPE, scope).granted)


@bp.post(VERIFICATION_PATH)
def decide() -> Any:
    """Approve or deny (RFC 8628 §3.3); the session that approves owns the device's tokens."""
    if not check_csrf():
        return _render("device_enter.html", 400, error="device_csrf", user_code="")
    raw = request.form.get("user_code", "")
    session = current_session(touch=True)
    if session is None:
        return _to_login(normalize_user_code(raw))
    if request.form.get("decision") not in ("approve", "deny"):
        # The code-entry form: show the confirmation for the code typed in.
        return redirect(url_for("device.verify", user_code=raw[:20]), code=303)
    if _store().locked_out(session.sid, **_guesser(session)):
        return _render("device_enter.html", 429, error="device_locked", user_code="")
    approval = None
    scope = None
    if request.form["decision"] == "approve":
        citizen = rt().services.accounts.get(int(session.citizen_id))
        if citizen is None or citizen.disabled:
            return _to_login(None)
        pending = _store().pending_for_user_code(raw)
        client = rt().provider.query_client(pending["client_id"]) if pending is not None else None
        if pending is not None and client is not None:
            # The approval is the citizen's consent (as on the consent page):
            # the ID number only with its own explicit tick, and remembered
            # beside what the client already holds (issue 18 §2).
            scope = rt().consents.approve_device(
                citizen.id, client, _shown_scopes(client, pending["scope"]),
                share_id_number=request.form.get("share_id_number") == "yes",
            )
        approval = DeviceApproval(
            citizen_id=citizen.id,
            public_id=citizen.public_id,
            sid=session.sid,
            auth_time=session.auth_time,
            acr=session.acr,
            amr=tuple(session.amr),
        )
    client_id = _store().decide(raw, approval=approval, scope=scope)
    if client_id is None:
        _store().miss(session.sid, **_guesser(session))
        return _render("device_enter.html", 400, error="device_unknown", user_code=raw[:20])
    rt().provider.audit(
        "device.approved" if approval else "device.denied",
        client_id=client_id,
        detail={"sid": session.sid},
    )
    return _render("device_done.html", message="device_approved" if approval else "device_denied")
