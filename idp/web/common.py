"""What every view of the idp shares: the runtime (and the services it builds), rendering, language, cookies.

``FlowStore`` is re-exported from :mod:`idp.oauth.flowstore` for ``create_app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, render_template, request, url_for

from keys.locale import LANG_COOKIE, normalise  # the same switch on both services

from ..consents import ConsentService
from ..oauth.flowstore import FlowStore
from ..signin import Browser, SignIn
from .i18n import known, pick_language, translate
from .oauth_server import ParamsRequest
from .security import cookie_name, csrf_token

__all__ = [
    "IdpRuntime",
    "rt",
    "render",
    "lang",
    "client_ip",
    "SESSION_COOKIE",
    "FlowStore",
    "current_session",
    "BROWSER_COOKIE",
    "browser",
    "set_browser_cookie",
]

SESSION_COOKIE = "yw_sso"
BROWSER_COOKIE = "yw_flowb"
"""A random per-browser value; a flow stores its hash so that only the browser
that started it can resume it (a flow id is otherwise a bearer reference)."""


@dataclass
class IdpRuntime:
    settings: Any
    services: Any
    provider: Any
    server: Any
    sessions: Any
    flows: FlowStore
    logout: Any = None
    secure_cookies: bool = False

    @cached_property
    def consents(self) -> ConsentService:
        return ConsentService(self.services.db, self.services.audit)

    @cached_property
    def signin(self) -> SignIn:
        return SignIn(provider=self.provider, port=_ServerPort(self.server), flows=self.flows,
                      consents=self.consents)


class _ServerPort:
    """Authlib's authorization server as :class:`idp.signin.AuthorizationPort` (requests over plain parameters)."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def request(self, params: dict[str, str]) -> Any:
        return ParamsRequest("GET", params)

    def get_consent_grant(self, request: Any, end_user: Any) -> Any:
        return self._server.get_consent_grant(request, end_user=end_user)

    def create_authorization_response(self, request: Any, grant_user: Any, grant: Any) -> Any:
        return self._server.create_authorization_response(request, grant_user=grant_user, grant=grant)

    def query_client(self, client_id: str | None) -> Any:
        return self._server.query_client(client_id)


def rt() -> IdpRuntime:
    return current_app.extensions["yiwang"]


def lang(ui_locales: str | None = None) -> str:
    cached = g.get("_yw_lang")
    if cached and ui_locales is None:
        return cached
    switch = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    accept = [v for v, _q in request.accept_languages]
    chosen = pick_language(switch, ui_locales, accept)
    g._yw_lang = chosen
    return chosen


def render(template: str, status: int = 200, **ctx: Any) -> tuple[str, int]:
    language = ctx.pop("language", None) or lang()

    g.yw_render_lang = language  # what _() in the templates translates to (keys.locale.install_jinja)

    def t(key: str, **values: Any) -> str:
        return translate(language, key, **values)

    def lang_switch_url(current: str) -> str:
        args = request.args.to_dict()
        args["lang"] = "en" if current == "zh-CN" else "zh-CN"
        return _this_route() + "?" + urlencode(args)

    html = render_template(
        template, t=t, known_message=known, language=language, csrf_token=ctx.pop("csrf_token", csrf_token),
        html_lang=language,
        lang_switch_url=ctx.pop("lang_switch_url", lang_switch_url), **ctx
    )
    return html, status


def _this_route() -> str:
    """This page's path, rebuilt from its route, for links back to it.

    Never ``request.path``: a path the router did not match (an error page
    for ``/%5Cevil.example/login``) would become ``/\\evil.example/login``,
    which browsers read as a link to another host (issue 19 §5).
    """
    path = "/"
    if request.url_rule is not None and request.endpoint:
        try:
            path = url_for(request.endpoint, **(request.view_args or {}))
        except Exception:  # noqa: BLE001 - a route that cannot be rebuilt links to the start page
            path = "/"
    # A scheme-relative or backslash path is another host to a browser.
    if not path.startswith("/") or path[1:2] in ("/", "\\") or not path.isprintable():
        path = "/"
    return path


def page_language() -> str:
    """The language ``_()`` in a template renders in: the one :func:`render` chose, else this request's."""
    return g.get("yw_render_lang") or lang()


def remember_language(resp: Any) -> Any:
    """An explicit ``?lang=`` switch is kept in a cookie for the next pages."""
    chosen = normalise(request.args.get("lang"))
    if chosen and request.cookies.get(LANG_COOKIE) != chosen:
        resp.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="Lax",
                        secure=rt().secure_cookies, path="/", max_age=365 * 86400)
    return resp


def client_ip() -> str:
    return request.remote_addr or ""


def browser() -> Browser:
    """This request's browser for flow binding: its cookie's hash, or a new cookie value if it has none."""
    return Browser.of_cookie(request.cookies.get(cookie_name(BROWSER_COOKIE)))


def set_browser_cookie(resp: Any, value: str) -> None:
    resp.set_cookie(cookie_name(BROWSER_COOKIE), value, httponly=True, samesite="Lax",
                    secure=rt().secure_cookies, path="/")


def current_session(touch: bool = True) -> Any:
    if "_yw_session" not in g:
        g._yw_session = rt().sessions.get_by_cookie(request.cookies.get(cookie_name(SESSION_COOKIE)), touch=touch)
    return g._yw_session
