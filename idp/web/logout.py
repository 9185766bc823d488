"""The end-session endpoint: RP-initiated and front-channel logout pages.

``/logout`` (GET and POST) implements OpenID Connect RP-Initiated Logout 1.0;
:mod:`idp.logout.rp` validates the request, this module decides with the
browser's SSO session:

- a valid ``id_token_hint`` naming the browser's current session proves the
  request came from a relying party of that session: the session ends at once;
- otherwise (no hint, or a hint for another session) the citizen is asked to
  confirm on a CSRF-protected form (§2: "the OP SHOULD ask the End-User
  whether to log out");
- no session cookie (a cross-site POST from the RP does not carry it under
  ``SameSite=Lax``) but a valid hint: the session the hint names ends if it
  still lives;
- no session at all (unknown or ended ``sid``): nothing is ended; the citizen
  goes back to a validated ``post_logout_redirect_uri`` or sees a neutral page;
- a request we must refuse (forged hint, unregistered redirect URI…): an
  error page, nothing ended, no redirect.

Ending goes through ``SessionStore.end`` like every other sign-out, so the
back-channel deliveries and token revocation happen in its hooks. The
logged-out page then loads the front-channel logout URIs of the session's
clients in iframes with ``iss`` and ``sid`` (Front-Channel Logout 1.0 §2–§3),
under a CSP whose ``frame-src`` names exactly their origins, and a static
script (no inline script) continues to the post-logout redirect when they have
loaded.

It also starts the in-process job worker of the embedded default on the first
request (not at import or app creation, so a pre-forking server starts one per
worker process, after the fork).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    request,
)
from joserfc.jwk import KeySet

from keys.locale import N_

from ..logout.rp import LogoutPlan, LogoutRequestError, plan_logout
from .common import SESSION_COOKIE, current_session, lang, render, rt
from .i18n import register
from .security import CSP, check_csrf, cookie_name

__all__ = ["bp", "frontchannel_uris", "frontchannel_response", "MESSAGES"]

logger = logging.getLogger(__name__)

bp = Blueprint("logout", __name__)

MESSAGES: dict[str, str] = {
    # key → English msgid; the Chinese is in keys/locale/zh_CN/LC_MESSAGES/messages.po
    'logout_title': N_('Sign out'),
    'logout_confirm': N_('Sign out of Yiwang? You will be signed out of every government service site.'),
    'logout_confirm_for': N_('%(client)s asks you to sign out.'),
    'logout_yes': N_('Sign out'),
    'logout_no': N_('Stay signed in'),
    'logout_done': N_('You are signed out of every service: Yiwang sign-in and each government service site you used.'),
    'logout_none': N_('You are not signed in.'),
    'logout_kept': N_('You are still signed in.'),
    'logout_continue': N_('Continue'),
    'logout_frontchannel': N_('Telling the sites you signed in to…'),
    'logout_error_title': N_('The sign-out request cannot be handled'),
    'logout_bad_hint': N_('The ID token in the request is not valid or was not issued here.'),
    'logout_bad_request': N_('The sign-out request has wrong parameters.'),
    'logout_bad_redirect': N_('The address to return to after sign-out is not registered, so you are not sent there.'),
    'logout_csrf': N_('The form has expired; please try again.'),
}


register(MESSAGES)


def _lang_switch_url(current: str) -> str:
    # The link is in the page (and goes wherever the page's URL goes): no ID
    # token in it. The client it named, when known, keeps the way back valid.
    args = {k: v for k, v in request.args.items() if k not in ("id_token_hint", "logout_hint")}
    if "id_token_hint" in request.args and not args.get("client_id") and g.get("_yw_logout_client"):
        args["client_id"] = g._yw_logout_client
    args["lang"] = "en" if current == "zh-CN" else "zh-CN"
    return request.path + "?" + urlencode(args)


def _render(template: str, status: int = 200, *, language: str, **ctx: Any) -> Response:
    html, status = render(template, status, language=language, lang_switch_url=_lang_switch_url, **ctx)
    resp = make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -------------------------------------------------- in-process worker start

_start_lock = threading.Lock()


@bp.before_app_request
def _start_inprocess_worker() -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Runs once: then it takes itself off the request path (hot endpoints pay nothing).
    funcs = app.before_request_funcs
    funcs[None] = [f for f in funcs.get(None, []) if f is not _start_inprocess_worker]
    ext = app.extensions.get("yiwang")
    logout = getattr(ext, "logout", None)
    if logout is None or getattr(logout, "_web_worker_checked", False):
        return
    with _start_lock:
        if getattr(logout, "_web_worker_checked", False):
            return
        logout._web_worker_checked = True
        settings = ext.settings
        wanted = settings.inprocess_worker
        if wanted is None:
            wanted = not settings.common.redis_url
        if wanted:
            logout.start_worker(threads=2, sweep=True)
            logger.info("in-process job worker started (back-channel logout, session sweep)")


# ---------------------------------------------------------------- helpers


def _keys() -> KeySet:
    return KeySet.import_key_set(rt().provider.tokens.jwks())


def _plan(params: dict[str, str]) -> LogoutPlan:
    r = rt()
    return plan_logout(params, issuer=r.provider.issuer, keys=_keys, query_client=r.provider.query_client)


def _params() -> dict[str, str]:
    return {k: v for k, v in request.values.items()}


def _client_name(client_id: str | None) -> str | None:
    if not client_id:
        return None
    client = rt().provider.query_client(client_id)
    return client.name if client is not None else None


def frontchannel_uris(client_ids: Any, *, issuer: str, sid: str, query_client: Any) -> list[str]:
    """Front-Channel Logout 1.0 §2–§3: each client's URI with ``iss`` and ``sid`` added."""
    out = []
    for client_id in sorted(client_ids):
        client = query_client(client_id)
        uri = getattr(client, "frontchannel_logout_uri", None) if client is not None else None
        if not uri:
            continue
        sep = "&" if urlsplit(uri).query else "?"
        out.append(f"{uri}{sep}{urlencode({'iss': issuer, 'sid': sid})}")
    return out


def _origin(uri: str) -> str:
    p = urlsplit(uri)
    return f"{p.scheme}://{p.netloc}"


def _logged_out(language: str, *, ended: Any, plan: LogoutPlan | None) -> Any:
    r = rt()
    continue_to = plan.final_redirect() if plan is not None else None
    frames: list[str] = []
    if ended is not None:
        frames = frontchannel_uris(
            ended.clients, issuer=r.provider.issuer, sid=ended.sid, query_client=r.provider.query_client
        )
    if not frames and continue_to:
        resp = redirect(continue_to, code=303)
    else:
        resp = _render(
            "logout_done.html",
            language=language,
            message="logout_done" if ended is not None else "logout_none",
            frames=frames,
            continue_to=continue_to,
        )
        if frames:
            origins = " ".join(sorted({_origin(u) for u in frames}))
            resp.headers["Content-Security-Policy"] = f"{CSP}; frame-src {origins}"
    resp.delete_cookie(cookie_name(SESSION_COOKIE), path="/", secure=rt().secure_cookies)
    return resp


def frontchannel_response(ended: Any, *, continue_to: str) -> Any | None:
    """The logged-out page with front-channel iframes, for another page that ended ``ended``.

    For the account page's sign-out (issue 4 §5): ``None`` when none of the
    session's clients registered a ``frontchannel_logout_uri`` (the caller
    then redirects as before).
    """
    if ended is None:
        return None
    r = rt()
    frames = frontchannel_uris(
        ended.clients, issuer=r.provider.issuer, sid=ended.sid, query_client=r.provider.query_client
    )
    if not frames:
        return None
    resp = _render("logout_done.html", language=lang(), message="logout_done", frames=frames, continue_to=continue_to)
    origins = " ".join(sorted({_origin(u) for u in frames}))
    resp.headers["Content-Security-Policy"] = f"{CSP}; frame-src {origins}"
    return resp


def _audit_logout(plan: LogoutPlan | None, sid: str) -> None:
    rt().provider.audit(
        "session.logout",
        client_id=plan.client_id if plan else None,
        detail={"sid": sid, "rp_initiated": plan is not None and plan.client_id is not None},
    )


def _end(current: Any, plan: LogoutPlan | None, language: str) -> Any:
    ended = rt().sessions.end(current.sid, "logout")
    _audit_logout(plan, current.sid)
    return _logged_out(language, ended=ended, plan=plan)


# ------------------------------------------------------------------ views


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> Any:
    """RP-Initiated Logout 1.0 §2: the end-session endpoint."""
    params = _params()
    language = lang(params.get("ui_locales"))
    if request.method == "POST" and "decision" in request.form:
        return _confirmed(language)
    try:
        plan = _plan(params)
    except LogoutRequestError as e:
        logger.info("logout request refused: %s", e.description)
        return _render("logout_error.html", 400, language=language, message=e.message)
    g._yw_logout_client = plan.client_id
    current = current_session(touch=False)
    if current is None:
        if plan.hint is not None and plan.hint.sid:
            # No cookie came along — typically a cross-site POST from the RP,
            # which SameSite=Lax keeps the cookie from — but our own ID token
            # names the session: end it if it still lives (§2).
            ended = rt().sessions.end(plan.hint.sid, "logout")
            if ended is not None:
                _audit_logout(plan, ended.sid)
            return _logged_out(language, ended=ended, plan=plan)
        # Nothing to end (never signed in, or the sid is gone already).
        return _logged_out(language, ended=None, plan=plan)
    if plan.proves_session(current.sid):
        return _end(current, plan, language)
    return _render(
        "logout_confirm.html",
        language=language,
        client_name=_client_name(plan.client_id),
        hidden={
            "client_id": plan.client_id or "",
            "post_logout_redirect_uri": plan.redirect_uri or "",
            "state": plan.state or "",
            "ui_locales": plan.ui_locales or "",
        },
    )


def _confirmed(language: str) -> Any:
    current = current_session(touch=False)
    # The token is bound to the session it ends. Without one (it expired while
    # the page was open) nothing ends: the citizen gets the neutral page, as
    # for a GET, rather than "the form has expired".
    if current is not None and not check_csrf():
        return _render("logout_error.html", 400, language=language, message="logout_csrf")
    params = {
        k: request.form.get(k, "")
        for k in ("client_id", "post_logout_redirect_uri", "state", "ui_locales")
    }
    try:
        plan = _plan(params)  # the redirect is checked again: hidden fields are input too
    except LogoutRequestError as e:
        return _render("logout_error.html", 400, language=language, message=e.message)
    if request.form.get("decision") != "logout":
        return _render("logout_done.html", language=language, message="logout_kept", frames=[], continue_to=None)
    if current is None:
        return _logged_out(language, ended=None, plan=plan)
    return _end(current, plan, language)
