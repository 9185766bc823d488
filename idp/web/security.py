"""Browser-facing protections: CSRF, security headers, input limits.

* CSRF (OWASP's HMAC-based token pattern, bound to the session): each form
  carries ``HMAC(secret, binding)``, compared in constant time, where the
  binding is the browser's SSO session id when it has one, or else a random
  pre-session cookie, plus the login flow id for the forms of a sign-in.
  A token bound to a cookie alone is worthless: any page of the same site
  (another port of the host, a sibling subdomain) can plant its own cookie
  and a token that matches it (issue 19 §1). The session id is never in a
  cookie an attacker can read or choose, so a planted pair cannot act in a
  signed-in citizen's name. Before any session exists, a planted pre-session
  pair makes the browser the attacker's (login CSRF, into the attacker's own
  account): only the ``__Host-`` prefix below stops that, on https.
* Cookies are ``__Host-`` prefixed on an https issuer (Secure, ``Path=/``,
  no ``Domain``), so a sibling subdomain cannot set or shadow them
  (RFC 6265bis §4.1.3.2); the plain-http loopback demo keeps the bare names.
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
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, current_app, g, request

__all__ = [
    "install_security",
    "csrf_token",
    "check_csrf",
    "CSRF_COOKIE",
    "HOST_PREFIX",
    "cookie_name",
    "MAX_BODY",
    "MAX_PARAM",
    "InputRejected",
]

CSRF_COOKIE = "yw_csrf"
HOST_PREFIX = "__Host-"
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
    return current_app.config["YW_CSRF_SECRET"]  # type: ignore[no-any-return]


def cookie_name(base: str) -> str:
    """The name a cookie of ours has in the browser: ``__Host-`` prefixed on https."""
    return HOST_PREFIX + base if current_app.config.get("YW_SECURE_COOKIES") else base


def _pre_session_value(*, create: bool) -> str | None:
    value = request.cookies.get(cookie_name(CSRF_COOKIE))
    if value and 20 <= len(value) <= 100:
        return value
    if not create:
        return None
    new: str = getattr(g, "_yw_new_csrf", None) or secrets.token_urlsafe(24)
    g._yw_new_csrf = new
    return new


def _binding(flow: str | None, *, create: bool) -> bytes | None:
    """What a token is bound to: the session (or, before one exists, the browser) and the flow."""
    sid: str | None = current_app.config["YW_CSRF_SESSION_ID"]()
    if sid:
        subject = "session:" + sid
    else:
        pre = _pre_session_value(create=create)
        if pre is None:
            return None
        subject = "browser:" + pre
    return f"yw-csrf-v2\x00{subject}\x00flow:{flow or ''}".encode()


def csrf_token(flow: str | None = None) -> str:
    """The token for a form's hidden ``csrf_token`` field; ``flow``: the sign-in flow it posts to."""
    binding = _binding(flow, create=True)
    assert binding is not None
    return hmac.new(_secret(), binding, hashlib.sha256).hexdigest()


def check_csrf(flow: str | None = None) -> bool:
    """Whether the posted token was made for this session (or browser) and this flow."""
    sent = request.form.get("csrf_token", "")
    binding = _binding(flow, create=False)
    if not sent or binding is None:
        return False
    expected = hmac.new(_secret(), binding, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.encode(), expected.encode())


def _check_input() -> None:
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise InputRejected("the request body is too large", 413)
    qs = request.query_string
    if len(qs) > MAX_BODY:
        raise InputRejected("the query string is too long", 413)
    # U+0000 names nothing here and PostgreSQL refuses it in any text value: refused
    # at the door rather than as a database error deep in a view.
    if "\x00" in request.path:
        raise InputRejected("the path contains a NUL character")
    query = unquote_to_bytes(qs)
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected("the query string is not UTF-8") from None
    if b"\x00" in query:
        raise InputRejected("the query string contains a NUL character")
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        body = request.get_data(cache=True)
        if len(body) > MAX_BODY:
            raise InputRejected("the request body is too large", 413)
        try:
            decoded = unquote_to_bytes(body.replace(b"+", b" "))
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise InputRejected("the request body is not UTF-8") from None
        if b"\x00" in decoded:
            raise InputRejected("the request body contains a NUL character")
    for key, value in request.values.items(multi=True):
        if len(key) > 128 or len(value) > MAX_PARAM:
            raise InputRejected(f"the parameter {key[:40]!r} is too long")


def install_security(app: Flask, *, secure_cookies: bool, session_id: Callable[[], str | None]) -> None:
    """Headers, input limits and CSRF; ``session_id`` gives the SSO session id of the request, if any."""
    app.config["YW_SECURE_COOKIES"] = secure_cookies
    app.config["YW_CSRF_SESSION_ID"] = session_id
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
            resp.set_cookie(cookie_name(CSRF_COOKIE), new, httponly=True, samesite="Lax",
                            secure=secure_cookies, path="/")
        return resp
