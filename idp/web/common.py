"""What every view of the idp shares: the runtime, rendering, language, cookies."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, render_template, request, url_for

from .i18n import pick_language, translate
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
    "bind_flow_to_browser",
    "flow_bound_to_browser",
    "set_browser_cookie",
]

SESSION_COOKIE = "yw_sso"
LANG_COOKIE = "yw_lang"
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

    def t(key: str, **values: Any) -> str:
        return translate(language, key, **values)

    def lang_switch_url(current: str) -> str:
        args = request.args.to_dict()
        args["lang"] = "en" if current == "zh-CN" else "zh-CN"
        return _this_route() + "?" + urlencode(args)

    html = render_template(
        template, t=t, language=language, csrf_token=csrf_token, html_lang=language,
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


def remember_language(resp: Any) -> Any:
    """An explicit ``?lang=`` switch is kept in a cookie for the next pages."""
    chosen = request.args.get("lang")
    if chosen in ("zh-CN", "en") and request.cookies.get(LANG_COOKIE) != chosen:
        resp.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="Lax",
                        secure=rt().secure_cookies, path="/", max_age=365 * 86400)
    return resp


def client_ip() -> str:
    return request.remote_addr or ""


def _browser_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def bind_flow_to_browser(flow: dict[str, Any]) -> str | None:
    """Record this browser in ``flow``; returns a new cookie value to set, or ``None``."""
    value = request.cookies.get(cookie_name(BROWSER_COOKIE)) or ""
    new = None
    if len(value) < 20 or len(value) > 64:
        value = new = secrets.token_urlsafe(24)
    flow["browser"] = _browser_hash(value)
    return new


def set_browser_cookie(resp: Any, value: str) -> None:
    resp.set_cookie(cookie_name(BROWSER_COOKIE), value, httponly=True, samesite="Lax",
                    secure=rt().secure_cookies, path="/")


def flow_bound_to_browser(flow: dict[str, Any]) -> bool:
    """Whether ``flow`` was started by the browser of this request (constant-time compare)."""
    value = request.cookies.get(cookie_name(BROWSER_COOKIE)) or ""
    stored = flow.get("browser")
    if not value or not isinstance(stored, str):
        return False
    return hmac.compare_digest(stored, _browser_hash(value))


def current_session(touch: bool = True) -> Any:
    if "_yw_session" not in g:
        g._yw_session = rt().sessions.get_by_cookie(request.cookies.get(cookie_name(SESSION_COOKIE)), touch=touch)
    return g._yw_session


class FlowStore:
    """Authorization requests waiting for a login, second factor or consent (Redis, 30 min)."""

    def __init__(self, redis: Any, prefix: str, ttl_seconds: int = 1800) -> None:
        self._r = redis
        self._p = f"{prefix}flow:"
        self.ttl = ttl_seconds

    def create(self, data: dict[str, Any]) -> str:
        fid = secrets.token_urlsafe(18)
        self._r.set(self._p + fid, json.dumps(data), ex=self.ttl)
        return fid

    def get(self, fid: str | None) -> dict[str, Any] | None:
        if not fid or len(fid) > 64:
            return None
        raw = self._r.get(self._p + fid)
        return json.loads(raw) if raw else None

    def save(self, fid: str, data: dict[str, Any], *, pipe: Any = None) -> None:
        """Write the flow; with ``pipe`` the write joins that pipeline's round trip."""
        (pipe if pipe is not None else self._r).set(self._p + fid, json.dumps(data), ex=self.ttl)

    def delete(self, fid: str, *, pipe: Any = None) -> None:
        """Forget the flow; with ``pipe`` the delete joins that pipeline's round trip."""
        (pipe if pipe is not None else self._r).delete(self._p + fid)
