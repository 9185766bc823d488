"""Sign-in outcomes as HTTP responses: the error redirect, the error page, the step pages.

The views of the sign-in (:mod:`.views_oauth`, :mod:`.views_auth`,
:mod:`.device`) ask :class:`idp.signin.SignIn` what happens next and hand its
:data:`~idp.signin.Outcome` to :func:`to_response`; they share these
responses through this module, never through each other.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import make_response, redirect, url_for
from werkzeug.wrappers import Response

from keys.locale import N_

from ..oauth.flow import Flow, Step
from ..signin import ErrorPage, IssueCode, Outcome, RedirectError, ResumeAt, ReturnTo, ShowStep
from .common import lang, render, rt, set_browser_cookie
from .i18n import register

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

    def switch(current: str) -> str:
        return url_for("auth.login", flow=fid, lang="en" if current == "zh-CN" else "zh-CN")

    return render(
        "login.html", flow=fid, client_name=flow.client_name, language=flow_lang(flow),
        id_number=hint if flow.pushed and bound and len(hint) <= 18 else "", error=None,
        lang_switch_url=switch,
    )


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
