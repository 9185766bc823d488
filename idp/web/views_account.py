"""The citizen's account page: sessions (sign out one or all), connected apps (revoke), password change,
and setting up the second factor with recovery codes (the logic: :mod:`idp.second_factor`)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from flask import Blueprint, make_response, redirect, request, url_for

from .. import second_factor
from ..account_fields import MIN_PASSWORD_LENGTH
from ..errors import InvalidInput
from .common import SESSION_COOKIE, client_ip, current_session, render, rt
from .security import check_csrf, cookie_name

__all__ = ["bp"]

bp = Blueprint("account", __name__, url_prefix="/account")


def _masked_ip(ip: str) -> str:
    if "." in ip:
        parts = ip.split(".")
        return ".".join(parts[:2] + ["*", "*"])
    return ip.split(":")[0] + ":*" if ip else ""


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("HarmonyOS", "HarmonyOS"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def _device(user_agent: str) -> str:
    """``Chrome · Android``: enough for a citizen to tell their sessions apart ("" when unknown)."""
    ua = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in ua), "")
    system = next((name for mark, name in _SYSTEMS if mark in ua), "")
    return " · ".join(p for p in (browser, system) if p)


def _client_name(r: Any, client_id: str) -> str:
    """The name a citizen knows a portal by, not its client id (issue 18)."""
    client = r.provider.query_client(client_id)
    return str(client.name) if client is not None and client.name else client_id


@bp.get("")
def home() -> Any:
    session = current_session()
    if session is None:
        return redirect(url_for("auth.login"), code=303)
    notice = "password_changed" if request.args.get("changed") == "password" else None
    return _page(session, notice=notice)


def _page(session: Any, *, status: int = 200, password_error: tuple[str, dict[str, Any]] | None = None,
          notice: str | None = None, totp_error: str | None = None) -> Any:
    r = rt()
    sessions = r.sessions.list_for_citizen(session.citizen_id)
    consents = [app._asdict() for app in r.consents.connected_apps(int(session.citizen_id))]
    view = [
        {"sid": s.sid, "channel": s.channel, "ip": _masked_ip(s.ip), "current": s.sid == session.sid,
         "device": _device(s.user_agent),
         "created": dt.datetime.fromtimestamp(s.created_at, dt.UTC),  # shown in China Standard Time (|cst)
         "clients": sorted(_client_name(r, c) for c in s.clients)}
        for s in sessions
    ]
    citizen = r.services.accounts.get(int(session.citizen_id))
    return render("account.html", status, sessions=view, consents=consents, password_error=password_error,
                  notice=notice, min_password_length=MIN_PASSWORD_LENGTH,
                  has_totp=bool(citizen and citizen.has_totp), totp_error=totp_error)


@bp.post("/password")
def change_password() -> Any:
    """Current password, new one twice; other sessions end, this one stays (issue 18 §2)."""
    r = rt()
    session = current_session()
    if session is None or not check_csrf():
        return render("error.html", 400, message="error_csrf", detail=None)
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if not current or not new:
        return _page(session, status=400, password_error=("required", {}))
    if new != request.form.get("new_password_again", ""):
        return _page(session, status=400, password_error=("password_mismatch", {}))
    try:
        result = r.services.accounts.change_password(int(session.citizen_id), current, new, ip=client_ip())
    except InvalidInput:
        return _page(session, status=400, password_error=("password_policy", {"n": MIN_PASSWORD_LENGTH}))
    if result == "throttled":
        return _page(session, status=429, password_error=("password_throttled", {}))
    if result != "ok":
        return _page(session, status=400, password_error=("password_current_wrong", {}))
    # Whoever else holds a session (a shared computer, a thief) is signed out;
    # the back-channel logout of their RPs runs through the session-end hooks.
    for other in r.sessions.list_for_citizen(session.citizen_id):
        if other.sid != session.sid:
            r.sessions.end(other.sid, "password_change")
    return redirect(url_for("account.home", changed="password"), code=303)


@bp.post("/sessions/<sid>/end")
def end_session(sid: str) -> Any:
    r = rt()
    session = current_session()
    if session is None or not check_csrf():
        return render("error.html", 400, message="error_csrf", detail=None)
    target = r.sessions.get(sid, touch=False)
    ended = None
    if target is not None and target.citizen_id == session.citizen_id:
        ended = r.sessions.end(sid, "account")
    resp = redirect(url_for("account.home") if sid != session.sid else url_for("auth.login"), code=303)
    if sid == session.sid:
        from .logout import frontchannel_response  # front-channel logout of this browser's RPs

        resp = frontchannel_response(ended, continue_to=url_for("auth.login")) or resp
        resp.delete_cookie(cookie_name(SESSION_COOKIE), path="/", secure=rt().secure_cookies)
    return resp


@bp.post("/sign-out-everywhere")
def sign_out_everywhere() -> Any:
    r = rt()
    session = current_session()
    if session is None or not check_csrf():
        return render("error.html", 400, message="error_csrf", detail=None)
    ended = r.sessions.end_all_for_citizen(session.citizen_id, "sign_out_everywhere")
    r.provider.tokens.revoke(citizen_id=int(session.citizen_id), include_offline=True)
    from .logout import frontchannel_response  # front-channel logout of this browser's RPs

    mine = next((s for s in ended if s.sid == session.sid), None)
    resp = frontchannel_response(mine, continue_to=url_for("auth.login")) or redirect(url_for("auth.login"), code=303)
    resp.delete_cookie(cookie_name(SESSION_COOKIE), path="/", secure=rt().secure_cookies)
    return resp


@bp.post("/consents/<client_id>/revoke")
def revoke_consent(client_id: str) -> Any:
    r = rt()
    session = current_session()
    if session is None or not check_csrf():
        return render("error.html", 400, message="error_csrf", detail=None)
    # Withdrawing consent also withdraws what it granted (tokens of that client for this citizen).
    r.consents.revoke(int(session.citizen_id), client_id, revoke_tokens=lambda jtis: r.provider.tokens.revoke(jtis=jtis))
    return redirect(url_for("account.home"), code=303)


def _qr_data_uri(uri: str) -> str:
    import qrcode
    import qrcode.image.svg

    svg = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage).to_string(encoding="unicode")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _no_store(body: Any) -> Any:
    resp = make_response(body)
    resp.headers["Cache-Control"] = "no-store"  # a secret or recovery codes: never from a cache
    return resp


def _enrol_page(enrolment: Any, token: str, status: int = 200, error: str | None = None) -> Any:
    return _no_store(render("account_totp.html", status, qr=_qr_data_uri(enrolment.uri), secret=enrolment.secret,
                            token=token, error=error))


def _signed_in_citizen() -> tuple[Any, Any, Any]:
    """``(session, citizen, None)`` for a form posted by a signed-in citizen with a good CSRF
    token, else ``(None, None, the answer to give)``."""
    session = current_session()
    if session is None or not check_csrf():
        return None, None, render("error.html", 400, message="error_csrf", detail=None)
    citizen = rt().services.accounts.get(int(session.citizen_id))
    if citizen is None:
        return None, None, redirect(url_for("auth.login"), code=303)
    return session, citizen, None


@bp.post("/second-factor")
def start_second_factor() -> Any:
    """Show a new secret (QR code) to scan; nothing changes until a code from the app confirms it."""
    r = rt()
    session, citizen, refused = _signed_in_citizen()
    if refused is not None:
        return refused
    # The password first: a borrowed session must not swap the citizen's authenticator for its own.
    checked = r.services.accounts.check_current_password(
        citizen.id, request.form.get("current_password", ""), ip=client_ip(), action="totp_setup")
    if checked != "ok":
        error = "password_throttled" if checked == "throttled" else "password_current_wrong"
        return _page(session, status=429 if checked == "throttled" else 400, totp_error=error)
    enrolment, token = second_factor.begin(r.services.accounts, citizen)
    return _enrol_page(enrolment, token)


@bp.post("/second-factor/confirm")
def confirm_second_factor() -> Any:
    """A matching code switches TOTP on and shows the recovery codes, once."""
    r = rt()
    session, citizen, refused = _signed_in_citizen()
    if refused is not None:
        return refused
    token = request.form.get("token", "")
    codes = second_factor.finish(r.services.accounts, citizen, token, request.form.get("code", ""))
    if codes is None:
        enrolment = second_factor.pending_enrolment(r.services.accounts, citizen, token)
        if enrolment is None:
            return render("error.html", 400, message="error_csrf", detail=None)
        return _enrol_page(enrolment, token, 400, "totp_wrong")
    return _no_store(render("account_recovery_codes.html", codes=codes))
