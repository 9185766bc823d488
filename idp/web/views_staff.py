"""The staff sign-in page (issue 13 §1): username, password and TOTP for a staff portal's request.

A staff portal's ``/authorize`` (:func:`idp.staff.portal.is_staff_portal`) comes
here as a waiting flow (``/staff/login?flow=…``). The page's session is the
staff session (:class:`idp.staff.signin.StaffSessions`, cookie ``yw_staff``),
never the citizen's SSO session; the logic is :class:`idp.staff.signin.StaffSignIn`.
The flow is bound to the browser that first shows the page; the form is
CSRF-protected (bound to the flow) and every attempt is throttled and audited
by :class:`idp.staff.accounts.StaffService`.
"""

from __future__ import annotations

import math
from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, current_app, redirect, request

from keys.locale import N_

from ..staff.accounts import StaffService
from ..staff.portal import is_staff_portal
from ..staff.signin import SESSION_SECONDS, StaffSessions, StaffSignIn
from .common import browser, client_ip, render, rt, set_browser_cookie
from .responses import error_page, flow_lang, outcome_response
from .security import check_csrf, cookie_name

__all__ = ["bp", "STAFF_COOKIE", "staff_signin"]

bp = Blueprint("staff", __name__)

STAFF_COOKIE = "yw_staff"

_WRONG = N_("The username, password or code is wrong.")
_LOCKED = N_("Too many attempts, try again in %(minutes)s minutes.")
_REQUIRED = N_("Fill in the username, the password and the 6-digit code.")


def staff_signin() -> StaffSignIn:
    """The process's staff sign-in, built once per application on its runtime's services."""
    built = current_app.extensions.get("yiwang_staff")
    if built is None:
        r = rt()
        services = r.services
        built = StaffSignIn(port=r.signin.port, flows=r.flows, staff=StaffService.of(services),
                            sessions=StaffSessions(services.redis, services.keyspace), audit=services.audit)
        current_app.extensions["yiwang_staff"] = built
    return built


def _set_staff_cookie(resp: Any, cookie: str) -> None:
    resp.set_cookie(cookie_name(STAFF_COOKIE), cookie, httponly=True, samesite="Lax",
                    secure=rt().secure_cookies, path="/", max_age=SESSION_SECONDS)


@bp.route("/staff/login", methods=["GET", "POST"])
def login() -> Any:
    r = rt()
    s = staff_signin()
    fid = request.args.get("flow")
    flow = r.flows.get(fid)
    if flow is None or not s.is_staff_flow(flow):
        return error_page(400, "error_expired")
    language = flow_lang(flow)
    new_cookie = None
    if flow.browser is None:  # the browser that first shows the page goes on with the flow
        b = browser()
        flow.bind_to_browser(b.hash)
        r.flows.save(flow)
        new_cookie = b.new_cookie
    elif not flow.is_bound_to(browser().hash):
        return error_page(400, "error_expired", language=language)
    now = r.provider.tokens.now()
    ctx: dict[str, Any] = {"flow": fid, "client_name": flow.client_name, "language": language,
                           "username": "", "error": None}
    if request.method == "GET":
        outcome = s.resume(flow, s.sessions.get(request.cookies.get(cookie_name(STAFF_COOKIE))), now=now)
        resp = outcome_response(outcome) if outcome is not None else _page(ctx)
    else:
        resp = _post(s, flow, ctx, now)
    if new_cookie is not None:
        set_browser_cookie(resp, new_cookie)
    return resp


def _page(ctx: dict[str, Any], status: int = 200) -> Any:
    html, code = render("staff_login.html", status, **ctx)
    return current_app.make_response((html, code))


def _post(s: StaffSignIn, flow: Any, ctx: dict[str, Any], now: int) -> Any:
    if not check_csrf(flow.id):
        return error_page(400, "error_csrf", language=ctx["language"])
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    code = request.form.get("code", "").strip()
    ctx["username"] = username[:64]
    if not username or not password or not code:
        ctx["error"] = (_REQUIRED, {})
        return _page(ctx, 400)
    result = s.staff.login(username, password, code, ip=client_ip(), client_id=flow.client_id)
    if result.status == "throttled":
        ctx["error"] = (_LOCKED, {"minutes": max(1, math.ceil(result.retry_after / 60))})
        return _page(ctx, 429)
    if not result.ok or result.staff is None:
        ctx["error"] = (_WRONG, {})
        return _page(ctx, 401)
    old = request.cookies.get(cookie_name(STAFF_COOKIE))
    s.sessions.end(old)  # a sign-in replaces whatever staff session this browser had
    session, cookie = s.sessions.create(result.staff, now)
    resp = outcome_response(s.issue(flow, session, now=now), after_post=True)
    _set_staff_cookie(resp, cookie)
    return resp


@bp.route("/staff/logout", methods=["GET", "POST"])
def logout() -> Any:
    """End this browser's staff session (a shared counter PC between shifts).

    OIDC RP-Initiated Logout's shape: ``client_id`` (a staff portal) and a
    ``post_logout_redirect_uri`` registered for it send the browser back there
    (with ``state``); otherwise a page says the staff session has ended.
    Ending a session is harmless to force, so a GET suffices.
    """
    s = staff_signin()
    s.sessions.end(request.cookies.get(cookie_name(STAFF_COOKIE)))
    target = request.values.get("post_logout_redirect_uri")
    client = s.port.query_client(request.values.get("client_id"))
    resp: Any
    if target and client is not None and is_staff_portal(client) and client.check_post_logout_redirect_uri(target):
        state = request.values.get("state")
        resp = redirect(add_params_to_uri(target, [("state", state)]) if state else target, code=303)
    else:
        resp = _page_of("staff_logout.html")
    resp.delete_cookie(cookie_name(STAFF_COOKIE), path="/", secure=rt().secure_cookies, httponly=True,
                       samesite="Lax")
    return resp


def _page_of(template: str) -> Any:
    html, code = render(template)
    return current_app.make_response((html, code))
