"""The citizen's account page: sessions (sign out one or all) and connected apps (revoke)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, redirect, url_for

from ..models import Client, Consent, utcnow
from .common import SESSION_COOKIE, current_session, render, rt
from .security import check_csrf, cookie_name

__all__ = ["bp"]

bp = Blueprint("account", __name__, url_prefix="/account")


def _masked_ip(ip: str) -> str:
    if "." in ip:
        parts = ip.split(".")
        return ".".join(parts[:2] + ["*", "*"])
    return ip.split(":")[0] + ":*" if ip else ""


@bp.get("")
def home() -> Any:
    r = rt()
    session = current_session()
    if session is None:
        return redirect(url_for("auth.login"), code=303)
    sessions = r.sessions.list_for_citizen(session.citizen_id)
    with r.services.db.session() as s:
        rows = s.execute(
            sa.select(Consent, Client.name)
            .join(Client, Client.client_id == Consent.client_id)
            .where(Consent.citizen_id == int(session.citizen_id), Consent.revoked_at.is_(None))
        ).all()
        consents = [{"client_id": c.client_id, "name": name, "scopes": c.scopes} for c, name in rows]
    view = [
        {"sid": s.sid, "channel": s.channel, "ip": _masked_ip(s.ip), "current": s.sid == session.sid,
         "created": dt.datetime.fromtimestamp(s.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
         "clients": sorted(s.clients)}
        for s in sessions
    ]
    return render("account.html", sessions=view, consents=consents)


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
    with r.services.db.session() as s:
        s.execute(
            sa.update(Consent)
            .where(Consent.citizen_id == int(session.citizen_id), Consent.client_id == client_id)
            .values(revoked_at=utcnow())
        )
    # Withdrawing consent also withdraws what it granted (tokens of that client for this citizen).
    with r.services.db.session() as s:
        from ..models import TokenRecord

        jtis = list(s.execute(
            sa.select(TokenRecord.jti).where(TokenRecord.citizen_id == int(session.citizen_id),
                                             TokenRecord.client_id == client_id)
        ).scalars())
    r.provider.tokens.revoke(jtis=jtis)
    r.provider.audit("consent.revoked", client_id=client_id)
    return redirect(url_for("account.home"), code=303)
