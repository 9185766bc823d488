"""The three hottest endpoints without Flask: ``POST /token``, ``POST /introspect``, ``/userinfo``.

DESIGN.md, performance facts: Flask's request context, routing, werkzeug's
form parsing and the response object cost about as much as Authlib's own
work on a token request, and beyond ~0.7x of the reference provider the
lever is keeping Flask off the few hot endpoints. :class:`HotPaths` sits in
front of the Flask application (``app.wsgi_app``): a request it recognises
is parsed here and handed to the same Authlib server and provider the Flask
views use; everything else — and every request it does not fully like (a
query string, another content type, an oversized or non-UTF-8 body, an
overlong parameter) — goes to Flask unchanged, with its body put back, so
the input limits, errors and pages stay those of :mod:`.security` and
:mod:`.errors`.

The answers are the same as the Flask views': Authlib builds token and
introspection responses (``Cache-Control: no-store``), userinfo follows
:func:`idp.web.views_oauth.userinfo` (RFC 6750 §3 errors), and every
response carries the headers :func:`.security.install_security` adds to
non-HTML responses.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import EnvironHeaders

from .oauth_server import NO_STORE, ParamsRequest
from .security import MAX_BODY, MAX_PARAM

__all__ = ["HotPaths"]

logger = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded"
_COMMON = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
_JSON = "application/json"
_STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED", 403: "403 FORBIDDEN",
           500: "500 INTERNAL SERVER ERROR", 503: "503 SERVICE UNAVAILABLE"}

Reply = tuple[int, list[tuple[str, str]], bytes]


def _json_reply(status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Reply:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return status, [("Content-Type", _JSON), *headers, *NO_STORE.items()], data


class _Parsed:
    __slots__ = ("method", "form", "datalist", "headers")

    def __init__(self, method: str, form: dict[str, str], datalist: dict[str, list[str]], headers: Any) -> None:
        self.method = method
        self.form = form
        self.datalist = datalist
        self.headers = headers

    def oauth_request(self) -> ParamsRequest:
        return ParamsRequest(self.method, self.form, form=self.form, headers=self.headers, datalist=self.datalist)


def _parse(environ: dict[str, Any]) -> _Parsed | None:
    """The request's form, or ``None`` when Flask should see it (then its body is put back)."""
    if environ.get("QUERY_STRING"):
        return None
    method = environ.get("REQUEST_METHOD", "GET")
    body = b""
    if method == "POST":
        ctype = environ.get("CONTENT_TYPE", "")
        if ctype.split(";", 1)[0].strip().lower() != _FORM:
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # for Flask, should it get the request after all
    elif method != "GET" or environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    form: dict[str, str] = {}
    datalist: dict[str, list[str]] = {}
    if body:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None
        for k, v in pairs:
            if len(k) > 128 or len(v) > MAX_PARAM or "\x00" in v or "\x00" in k:
                return None  # Flask's input check answers it (U+0000: 400, as on every other path)
            form.setdefault(k, v)
            datalist.setdefault(k, []).append(v)
    return _Parsed(method, form, datalist, EnvironHeaders(environ))


class HotPaths:
    """WSGI middleware: the hot endpoints straight to Authlib, the rest to Flask."""

    def __init__(self, flask_wsgi: Callable[..., Any], runtime: Any) -> None:
        self._flask = flask_wsgi
        self._runtime = runtime
        self._routes: dict[tuple[str, str], Callable[[_Parsed], Any]] = {
            ("POST", "/token"): self._token,
            ("POST", "/introspect"): self._introspect,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/userinfo"): self._userinfo,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self._routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if handler is None:
            return self._flask(environ, start_response)
        parsed = _parse(environ)
        if parsed is None:
            return self._flask(environ, start_response)
        try:
            result = handler(parsed)
        except Exception as e:  # the same answers as idp.web.errors, without Flask
            status, headers, body = self._unexpected(e, environ.get("PATH_INFO", ""))
        else:
            if isinstance(result, tuple):
                status, headers, body = result
            else:  # a werkzeug Response from Authlib's handle_response
                status, headers, body = result.status_code, list(result.headers.items()), result.get_data()
        start_response(_STATUS.get(status) or str(status), [*headers, *_COMMON])
        return [body]

    # endpoints ----------------------------------------------------------
    def _token(self, parsed: _Parsed) -> Any:
        return self._runtime.server.create_token_response(parsed.oauth_request())

    def _introspect(self, parsed: _Parsed) -> Any:
        return self._runtime.server.create_endpoint_response("introspection", parsed.oauth_request())

    def _userinfo(self, parsed: _Parsed) -> Reply:
        from ..oauth.endpoints import userinfo_claims

        auth = parsed.headers.get("Authorization", "")
        token_value = None
        if auth[:7].lower() == "bearer ":
            token_value = auth[7:].strip()
        elif parsed.method == "POST" and "access_token" in parsed.form:  # RFC 6750 §2.2
            token_value = parsed.form["access_token"]
        if not token_value:
            return _bearer_error("", 401)
        provider = self._runtime.provider
        access = provider.tokens.verify_access_token(token_value, check_revoked=False)
        if access is None:
            return _bearer_error("invalid_token", 401, "the access token is not valid")
        claims = userinfo_claims(provider, access)  # revocation checked with the snapshot, one round trip
        if claims is None:
            if provider.tokens.is_revoked(access.jti):
                return _bearer_error("invalid_token", 401, "the access token was revoked")
            return _bearer_error("insufficient_scope", 403, "the token does not grant openid")
        return _json_reply(200, claims)

    @staticmethod
    def _unexpected(e: Exception, path: str) -> Reply:
        from .errors import _is_outage

        if _is_outage(e):
            logger.error("backing service unavailable on %s: %s", path, type(e).__name__)
            status, headers, body = _json_reply(503, {
                "type": "about:blank", "title": "service_unavailable", "status": 503,
                "detail": "a backing service is unavailable; try again shortly"})
            headers = [("Content-Type", "application/problem+json"), ("Retry-After", "5"), *headers[1:]]
            return status, headers, body
        logger.exception("unexpected error on %s", path)
        return _json_reply(500, {"error": "server_error"})


def _bearer_error(error: str, status: int, description: str | None = None) -> Reply:
    # RFC 6750 §3, as idp.web.views_oauth._bearer_error.
    value = 'Bearer realm="yiwang"'
    if error:
        value += f', error="{error}"'
        if description:
            value += f', error_description="{description}"'
    return _json_reply(status, {"error": error or "invalid_token"}, [("WWW-Authenticate", value)])
