"""The page language of certstore's pages: the same switch as the idp's (keys.locale).

An explicit ``?lang=`` (a query or form field; ``zh``/``zh-CN``/``en``),
then the ``yw_lang`` cookie that keeps it, then ``Accept-Language``;
Simplified Chinese by default. One language per page: templates write
``_('English')`` and the catalog gives the Chinese.
"""

from __future__ import annotations

from flask import Flask, Response, g, request, url_for

from keys.locale import (
    LANG_COOKIE,
    install_jinja,
    normalise,
    other_language,
    pick_language,
    translations,
)

from .context import services

__all__ = ["page_language", "install_language", "switch_url", "pick"]


def page_language() -> str:
    cached = g.get("yw_lang")
    if cached:
        return str(cached)
    switch = normalise(request.values.get("lang")) or normalise(request.cookies.get(LANG_COOKIE))
    chosen = pick_language(switch, None, [v for v, _q in request.accept_languages])
    g.yw_lang = chosen
    return chosen


def switch_url(endpoint: str | None = None, **values: str) -> str:
    """This page (or ``endpoint``) in the other language."""
    target = endpoint or request.endpoint or "public.verify_page"
    args = {**(request.view_args or {}), **values} if endpoint is None else dict(values)
    if endpoint is None and (request.method != "GET" or request.url_rule is None):
        # a page answering a form (or an unknown address): its GET twin may not exist
        target, args = ("wallet.home" if request.blueprint == "wallet" else "public.verify_page"), dict(values)
    return url_for(target, **args, lang=other_language(page_language()))


def pick(zh: str, en: str | None) -> str:
    """Of a record's own two names (type, issuer, status: data, not interface text) the page's one."""
    return zh if page_language() == "zh-CN" or not en else en


def _remember(resp: Response) -> Response:
    chosen = normalise(request.args.get("lang"))
    if chosen and request.cookies.get(LANG_COOKIE) != chosen:
        resp.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="Lax", path="/", max_age=365 * 86400,
                        secure=services().settings.public_url.startswith("https://"))
    return resp


def install_language(app: Flask) -> None:
    install_jinja(app.jinja_env, page_language)
    app.jinja_env.globals.update(page_language=page_language, switch_url=switch_url, pick=pick,
                                 other_language=other_language)
    app.after_request(_remember)
    translations("zh-CN")  # the catalog is read at start: a broken .po stops the service here
