"""What every view of the idp shares: the runtime, rendering, language, cookies."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, render_template, request

from .i18n import pick_language, translate
from .security import csrf_token

__all__ = [
    "IdpRuntime",
    "rt",
    "render",
    "lang",
    "client_ip",
    "SESSION_COOKIE",
    "FlowStore",
    "current_session",
]

SESSION_COOKIE = "yw_sso"
LANG_COOKIE = "yw_lang"


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
        return request.path + "?" + urlencode(args)

    html = render_template(
        template, t=t, language=language, csrf_token=csrf_token, html_lang=language,
        lang_switch_url=lang_switch_url, **ctx
    )
    return html, status


def remember_language(resp: Any) -> Any:
    """An explicit ``?lang=`` switch is kept in a cookie for the next pages."""
    chosen = request.args.get("lang")
    if chosen in ("zh-CN", "en") and request.cookies.get(LANG_COOKIE) != chosen:
        resp.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="Lax",
                        secure=rt().secure_cookies, path="/", max_age=365 * 86400)
    return resp


def client_ip() -> str:
    return request.remote_addr or ""


def current_session(touch: bool = True) -> Any:
    if "_yw_session" not in g:
        g._yw_session = rt().sessions.get_by_cookie(request.cookies.get(SESSION_COOKIE), touch=touch)
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

    def save(self, fid: str, data: dict[str, Any]) -> None:
        self._r.set(self._p + fid, json.dumps(data), ex=self.ttl)

    def delete(self, fid: str) -> None:
        self._r.delete(self._p + fid)
