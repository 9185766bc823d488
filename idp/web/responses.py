"""Sign-in outcomes as HTTP responses: the error redirect, the error page, the step pages.

The views of the sign-in (:mod:`.views_oauth`, :mod:`.views_auth`,
:mod:`.device`) ask :class:`idp.signin.SignIn` what happens next and hand its
:data:`~idp.signin.Outcome` to :func:`to_response`; they share these
responses through this module, never through each other.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import current_app, g, make_response, redirect, request, url_for
from werkzeug.wrappers import Response

from keys.locale import N_

from ..oauth.flow import Flow, Step
from ..signin import ErrorPage, IssueCode, Outcome, RedirectError, ResumeAt, ReturnTo, ShowStep
from .common import lang, render, rt, set_browser_cookie
from .i18n import register
from .security import csrf_token

__all__ = ["redirect_error", "error_page", "login_page", "flow_lang", "outcome_response", "MESSAGES"]

logger = logging.getLogger(__name__)

MESSAGES: dict[str, str] = {
    # Fixed texts for the authorization endpoint's error page: nothing of the
    # request (an attacker's redirect_uri, a description) is shown; the detail
    # goes to the log (issue 19 §10).
    # key → English msgid; the Chinese is in keys/locale/zh_CN/LC_MESSAGES/messages.po
    'error_unknown_client': N_('The service that sent you here is not registered with us, so sign-in cannot continue. Go back to that site and start again.'),
    'error_redirect_uri': N_('This sign-in request asks to return to an address that is not registered, so for your safety you are not sent there. Go back to the site and start again.'),
    'error_par_required': N_('This server accepts only sign-in requests that the service has pushed to it first. Go back to the site and start again.'),
}
register(MESSAGES)

_STEP_ROUTE = {Step.LOGIN: "auth.login", Step.SECOND_FACTOR: "auth.second_factor", Step.CONSENT: "auth.consent",
               Step.PASSKEY: "passkeys.step_up"}


def redirect_error(redirect_uri: str, error: str, description: str | None, oauth_state: str | None) -> Response:
    """An OAuth error at the client's redirect URI, with the issuer (RFC 9207 §2)."""
    params = [("error", error)]
    if description:
        params.append(("error_description", description))
    if oauth_state:
        params.append(("state", oauth_state))
    params.append(("iss", rt().provider.issuer))  # RFC 9207 §2
    return redirect(add_params_to_uri(redirect_uri, params), code=302)


def error_page(status: int = 400, message: str = "error_request", detail: str | None = None,
               language: str | None = None) -> Any:
    """A fixed, translated message; ``detail`` (never shown: it may carry what an
    attacker put in the request) goes to the log, quoted so it cannot forge lines."""
    if detail:
        logger.info("authorization request refused (%s): %r", message, detail[:300])
    return render("error.html", status, message=message, detail=None, language=language)


def flow_lang(flow: Flow | None) -> str:
    return lang(flow.ui_locales if flow else None)


def login_page(flow: Flow, *, bound: bool) -> Any:
    """The login form of a waiting authorization request.

    ``/authorize`` answers with it directly (one redirect fewer for every
    sign-in); ``GET /login?flow=`` shows the same page. The ID number is
    prefilled only from a pushed request (PAR), in the browser that started
    the flow (``bound``).
    """
    hint = flow.login_hint or ""
    fid = flow.id
    language = flow_lang(flow)
    id_number = hint if flow.pushed and bound and len(hint) <= 18 else ""
    if not id_number and fid is not None and _SLOT_VALUE.fullmatch(fid):
        page = _login_form_of_flow(fid, flow.client_name, language)
        if page is not None:
            return page, 200
    return _render_login_page(fid, flow.client_name, language, id_number)


def _render_login_page(fid: str | None, client_name: str | None, language: str, id_number: str,
                       *, csrf: Any = None) -> Any:
    def switch(current: str) -> str:
        return url_for("auth.login", flow=fid, lang="en" if current == "zh-CN" else "zh-CN")

    extra = {"csrf_token": csrf} if csrf is not None else {}
    return render(
        "login.html", flow=fid, client_name=client_name, language=language,
        id_number=id_number, error=None, lang_switch_url=switch, **extra,
    )


# The empty login form of a flow differs from one flow to the next only in the
# flow id (in its addresses) and the CSRF token bound to it. Rendering it is
# about a tenth of a password login's CPU besides the hash (docs/performance.md,
# "Password sign-ins"), so Jinja renders it once per language and client name
# with these stand-ins, and each request puts its own two values in their place.
# Both are URL- and HTML-safe as they are (checked), so they read the same in
# every place the template puts them.
_FLOW_SLOT = "Yw0FlowSlot0Yw"
_CSRF_SLOT = "Yw0CsrfSlot0Yw"
_SLOT_VALUE = re.compile(r"[A-Za-z0-9_-]{16,64}")
LOGIN_FORMS_KEPT = 512
"""Languages × client names; beyond it the kept forms are dropped and rendered again."""


def _login_form_of_flow(fid: str, client_name: str | None, language: str) -> str | None:
    """The empty login form for flow ``fid`` from the form kept for its language and client, or ``None``."""
    app = current_app
    if app.jinja_env.auto_reload or (client_name and (_FLOW_SLOT in client_name or _CSRF_SLOT in client_name)):
        return None  # templates edited while serving (debug), or a name that would be taken for a stand-in
    forms: dict[tuple[str, str | None, str], str] = app.extensions.setdefault("yiwang_login_forms", {})
    key = (language, client_name, request.script_root)
    form = forms.get(key)
    if form is None:
        form, _ = _render_login_page(_FLOW_SLOT, client_name, language, "", csrf=lambda flow=None: _CSRF_SLOT)
        if len(forms) >= LOGIN_FORMS_KEPT:
            forms.clear()
        forms[key] = form
    else:
        g.yw_render_lang = language  # as render() leaves it, for anything that reads it after the page
    # csrf_token() also starts the pre-session binding (its cookie) when the browser has none.
    return form.replace(_FLOW_SLOT, fid).replace(_CSRF_SLOT, csrf_token(fid))


def _local(path: str | None) -> str:
    # Only a page of this server (the device page that sent the citizen to log in).
    if isinstance(path, str) and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return url_for("account.home")


def outcome_response(outcome: Outcome, *, after_post: bool = False) -> Response:
    """The HTTP answer to ``outcome``; ``after_post``: redirects are 303 (a POST, with a password, is not repeated)."""
    resp: Response
    if isinstance(outcome, ShowStep):
        fid = outcome.flow.id
        if outcome.inline:
            resp = make_response(login_page(outcome.flow, bound=True))
        else:
            resp = redirect(url_for(_STEP_ROUTE[outcome.step], flow=fid), code=302)
        if outcome.new_browser_cookie:
            set_browser_cookie(resp, outcome.new_browser_cookie)
    elif isinstance(outcome, IssueCode):
        resp = outcome.response
    elif isinstance(outcome, RedirectError):
        resp = redirect_error(outcome.redirect_uri, outcome.error, outcome.description, outcome.oauth_state)
    elif isinstance(outcome, ErrorPage):
        resp = make_response(error_page(outcome.status, outcome.message, outcome.detail))
    elif isinstance(outcome, ResumeAt):
        resp = redirect(url_for("oauth.resume", flow=outcome.flow_id), code=303)
    elif isinstance(outcome, ReturnTo):
        resp = redirect(_local(outcome.path), code=303)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not an outcome: {outcome!r}")
    if after_post and resp.status_code == 302:
        resp.status_code = 303
    return resp
