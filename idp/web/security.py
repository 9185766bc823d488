"""Browser-facing protections: CSRF, security headers, input limits.

* CSRF (OWASP's HMAC-based token pattern): a random, HttpOnly, SameSite=Lax
  cookie binds the browser; each form carries ``HMAC(secret, cookie)``,
  compared in constant time.
* Headers: a strict Content-Security-Policy (``default-src 'self'``, no
  inline script), ``frame-ancestors 'none'``, ``nosniff``, no referrer, and
  ``Cache-Control: no-store`` on every page and every JSON answer (token
  responses and errors alike) that does not set its own caching.
* Input: 64 KB per body (413), 2 KB per parameter and UTF-8 only
  (``invalid_request`` 400) before anything parses the values.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, g, request

__all__ = [
    "install_security",
    "csrf_token",
    "check_csrf",
    "CSRF_COOKIE",
    "MAX_BODY",
    "MAX_PARAM",
    "InputRejected",
]

CSRF_COOKIE = "yw_csrf"
MAX_BODY = 64 * 1024
MAX_PARAM = 2048

# No form-action: browsers apply it to the redirects that follow a form POST
# (consent → relying party), which may use a native app's private-use scheme.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class InputRejected(Exception):
    """A request the idp refuses before parsing (oversized, not UTF-8)."""

    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.status = status


def _secret() -> bytes:
    from flask import current_app

    return current_app.config["YW_CSRF_SECRET"]


def _cookie_value() -> str:
    value = request.cookies.get(CSRF_COOKIE)
    if not value or len(value) > 100:
        value = getattr(g, "_yw_new_csrf", None) or secrets.token_urlsafe(24)
        g._yw_new_csrf = value
    return value


def csrf_token() -> str:
    """The token to put in a form's hidden ``csrf_token`` field."""
    return hmac.new(_secret(), _cookie_value().encode(), hashlib.sha256).hexdigest()


def check_csrf() -> bool:
    sent = request.form.get("csrf_token", "")
    cookie = request.cookies.get(CSRF_COOKIE)
    if not sent or not cookie:
        return False
    expected = hmac.new(_secret(), cookie.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.encode(), expected.encode())


def _check_input() -> None:
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise InputRejected("the request body is too large", 413)
    qs = request.query_string
    if len(qs) > MAX_BODY:
        raise InputRejected("the query string is too long", 413)
    try:
        unquote_to_bytes(qs).decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected("the query string is not UTF-8") from None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        body = request.get_data(cache=True)
        if len(body) > MAX_BODY:
            raise InputRejected("the request body is too large", 413)
        try:
            unquote_to_bytes(body.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InputRejected("the request body is not UTF-8") from None
    for key, value in request.values.items(multi=True):
        if len(key) > 128 or len(value) > MAX_PARAM:
            raise InputRejected(f"the parameter {key[:40]!r} is too long")


def install_security(app: Flask, *, secure_cookies: bool) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY

    @app.before_request
    def _limits() -> None:
        _check_input()

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        if resp.mimetype == "text/html":
            h.setdefault("Content-Security-Policy", CSP)
            h.setdefault("X-Frame-Options", "DENY")
            h.setdefault("Cache-Control", "no-store")
        elif resp.mimetype in ("application/json", "application/problem+json"):
            # Token, introspection and error answers must not be cached
            # (RFC 6749 §5.1); documents that may be say so themselves.
            h.setdefault("Cache-Control", "no-store")
        new = getattr(g, "_yw_new_csrf", None)
        if new is not None:
            resp.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="Lax", secure=secure_cookies, path="/")
        return resp
