"""The three hottest endpoints without Flask: ``POST /token``, ``POST /introspect``, ``/userinfo``.

docs/design.md, performance facts: Flask's request context, routing, werkzeug's
form parsing and the response object cost about as much as Authlib's own
work on a token request, and beyond ~0.7x of the reference provider the
lever is keeping Flask off the few hot endpoints. :class:`HotPaths` sits in
front of the Flask application (``app.wsgi_app``): a request it recognises
is parsed here and answered by the same functions as the Flask views
(:mod:`idp.oauth.endpoints`: ``token_reply``, ``endpoint_reply``,
``userinfo_reply``), over the same Authlib server and provider. Everything
else — and every request it does not fully like (a query string, another
content type, an oversized or non-UTF-8 body, an overlong parameter) — goes
to Flask unchanged, with its body put back, so the input limits, errors and
pages stay those of :mod:`.security` and :mod:`.errors`.

So the answers are the Flask views' by construction, and every response
here carries the headers :func:`.security.install_security` adds to non-HTML
responses.

Discovery (issue 16): the document changes only with the deployment, so the
Flask view's first plain 200 answer (body, ETag, headers) is kept and replayed
for plain GETs; a conditional or otherwise unusual request still goes to it.

The silent SSO sign-in (issue 16): ``GET /authorize`` from a browser with an
SSO session cookie asks the same :class:`idp.signin.SignIn` object the Flask
view asks. When the answer is the code redirect, it is sent from here; any
other outcome (a page, an error redirect, a step) and any exception are
handed to the Flask view in the environ (:data:`DECIDED_KEY`), which answers
them exactly as it answers its own, so the sign-in is decided once and its
pages, errors and cookies stay the Flask layer's.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import EnvironHeaders
from werkzeug.sansio.http import parse_cookie

from keys.logs import ENDPOINT_KEY

from ..metrics import observe_hot, observe_request
from ..oauth.endpoints import Reply, endpoint_reply, json_reply, token_reply, userinfo_reply
from ..redis import REDIS_OUTAGE
from ..signin import Browser, IssueCode
from .common import BROWSER_COOKIE, SESSION_COOKIE
from .oauth_server import ParamsRequest
from .security import CSP, HOST_PREFIX, MAX_BODY, MAX_PARAM

__all__ = ["HotPaths", "DISCOVERY_PATHS", "DECIDED_KEY"]

DECIDED_KEY = "yiwang.authorize.decided"
"""Environ key: what the sign-in decided for a ``GET /authorize`` the hot path began (an
outcome, or the exception it raised), for the Flask view to answer. No header can set it."""

DISCOVERY_PATHS = {"/.well-known/openid-configuration": "wellknown.openid_configuration",
                   "/.well-known/oauth-authorization-server": "wellknown.oauth_metadata"}
"""Discovery documents: the Flask view answers the first request; its answer is replayed after that."""

logger = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded"
_COMMON = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
_STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED", 403: "403 FORBIDDEN",
           500: "500 INTERNAL SERVER ERROR", 503: "503 SERVICE UNAVAILABLE"}


class _Parsed:
    __slots__ = ("method", "form", "datalist", "headers")

    def __init__(self, method: str, form: dict[str, str], datalist: dict[str, list[str]], headers: Any) -> None:
        self.method = method
        self.form = form
        self.datalist = datalist
        self.headers = headers

    def oauth_request(self) -> ParamsRequest:
        return ParamsRequest(self.method, self.form, form=self.form, headers=self.headers, datalist=self.datalist)


def _query(environ: dict[str, Any]) -> dict[str, str] | None:
    """A body-less request's query parameters, or ``None`` when Flask should see it.

    ``None`` for whatever Flask's input check (:func:`.security._check_input`) or the
    authorize view's repeated-parameter check would look at twice: a body, a long
    or non-ASCII query string, invalid UTF-8, U+0000, an overlong name or value,
    any name given twice. What passes reads as ``request.values.to_dict()`` would.
    """
    if environ.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    qs = environ.get("QUERY_STRING", "")
    if len(qs) > MAX_BODY or not qs.isascii():
        return None
    try:
        pairs = parse_qsl(qs, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, str] = {}
    for k, v in pairs:
        if k in params or len(k) > 128 or len(v) > MAX_PARAM or "\x00" in v or "\x00" in k:
            return None
        params[k] = v
    return params


def _parse(environ: dict[str, Any]) -> _Parsed | None:
    """The request's form, or ``None`` when Flask should see it (then its body is put back)."""
    # Transfer-Encoding: werkzeug then ignores Content-Length (and reads no body without
    # wsgi.input_terminated), so Flask's answer is the one that counts.
    if environ.get("QUERY_STRING") or "HTTP_TRANSFER_ENCODING" in environ:
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
        self._documents: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {}
        """Discovery: path → Flask's own 200 answer (status, headers, body), replayed (issue 16)."""
        prefix = HOST_PREFIX if runtime.secure_cookies else ""  # security.cookie_name, without Flask
        self._session_cookie = prefix + SESSION_COOKIE
        self._browser_cookie = prefix + BROWSER_COOKIE
        self._routes: dict[tuple[str, str], Callable[[_Parsed], Reply]] = {
            ("POST", "/token"): self._token,
            ("POST", "/introspect"): self._introspect,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/userinfo"): self._userinfo,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self._routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if handler is None:
            path = environ.get("PATH_INFO")
            if path == "/authorize" and environ.get("REQUEST_METHOD") == "GET":
                return self._authorize(environ, start_response)
            if path in DISCOVERY_PATHS and environ.get("REQUEST_METHOD") == "GET":
                return self._discovery(environ, start_response)
            return self._flask(environ, start_response)
        started = time.perf_counter()
        parsed = _parse(environ)
        if parsed is None:
            return self._flask(environ, start_response)
        try:
            status, headers, body = handler(parsed)
        except Exception as e:  # the same answers as idp.web.errors, without Flask
            status, headers, body = self._unexpected(e, environ.get("PATH_INFO", ""))
        observe_hot(environ["PATH_INFO"], parsed.form, status, body, started)  # issue 18: latency, grants
        start_response(_STATUS.get(status) or str(status), [*headers, *_COMMON])
        return [body]

    # endpoints: the same functions the Flask views call --------------
    def _token(self, parsed: _Parsed) -> Reply:
        return token_reply(self._runtime.server, parsed.oauth_request())

    def _introspect(self, parsed: _Parsed) -> Reply:
        return endpoint_reply(self._runtime.server, "introspection", parsed.oauth_request())

    def _userinfo(self, parsed: _Parsed) -> Reply:
        return userinfo_reply(self._runtime.provider, parsed.method, parsed.headers, parsed.form)

    def _authorize(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """``GET /authorize``: the code redirect of a silent SSO sign-in without Flask.

        Only a browser with a session cookie can be answered with a code, so a
        request without one (or with anything :func:`_query` leaves to Flask, or a
        ``lang`` switch, whose cookie Flask sets) goes to the view untouched. The
        rest is decided here by the view's own :class:`~idp.signin.SignIn`, with
        the session and browser read as ``common.current_session`` and
        ``common.browser`` read them; every outcome but the code redirect, and
        any exception, goes to the view with the decision (:data:`DECIDED_KEY`).
        """
        started = time.perf_counter()
        cookies = parse_cookie(environ.get("HTTP_COOKIE"))
        session_cookie = cookies.get(self._session_cookie)
        params = _query(environ) if session_cookie else None
        if params is None or "lang" in params:
            return self._flask(environ, start_response)
        runtime = self._runtime
        try:
            session = runtime.sessions.get_by_cookie(session_cookie, touch=True)
            outcome = runtime.signin.authorize(params, session=session,
                                               browser=Browser.of_cookie(cookies.get(self._browser_cookie)),
                                               now=runtime.provider.tokens.now())
        except Exception as e:  # noqa: BLE001 - the view raises it: Flask's error pages answer
            environ[DECIDED_KEY] = e
            return self._flask(environ, start_response)
        answer = _code_redirect(outcome)
        if answer is None:
            environ[DECIDED_KEY] = outcome
            return self._flask(environ, start_response)
        status, headers = answer
        environ[ENDPOINT_KEY] = "oauth.authorize"
        start_response(status, headers)
        observe_request("oauth.authorize", time.perf_counter() - started)
        if REDIS_OUTAGE.down:  # as errors._redis_back: an answer after an outage says it is over
            REDIS_OUTAGE.answered()
        return [b""]

    def _discovery(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The discovery document as the Flask view (``views_wellknown``) answered it the first time.

        The document changes only with the deployment, so the view's first
        plain 200 answer (body, ETag, caching and security headers) is kept
        and replayed. Anything else — a query string, a body, a conditional
        request (If-None-Match: the view answers 304), an answer that sets a
        cookie — goes to Flask as before.
        """
        path = environ["PATH_INFO"]
        plain = not environ.get("QUERY_STRING") and environ.get("CONTENT_LENGTH") in (None, "", "0") \
            and "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MODIFIED_SINCE" not in environ
        kept = self._documents.get(path) if plain else None
        if kept is not None:
            started = time.perf_counter()
            environ[ENDPOINT_KEY] = DISCOVERY_PATHS[path]
            start_response(kept[0], list(kept[1]))
            observe_request(DISCOVERY_PATHS[path], time.perf_counter() - started)
            return [kept[2]]
        if not plain:
            return self._flask(environ, start_response)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = status, list(headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        answer = self._flask(environ, capture)
        try:
            body = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        headers = seen.get("headers") or []
        if str(seen.get("status", "")).startswith("200") and not any(
                k.lower() == "set-cookie" for k, _ in headers):
            self._documents[path] = (seen["status"], headers, body)
        return [body]

    @staticmethod
    def _unexpected(e: Exception, path: str) -> Reply:
        from .errors import _is_outage

        if _is_outage(e):
            logger.error("backing service unavailable on %s: %s", path, type(e).__name__)
            status, headers, body = json_reply(503, {
                "type": "about:blank", "title": "service_unavailable", "status": 503,
                "detail": "a backing service is unavailable; try again shortly"})
            headers = [("Content-Type", "application/problem+json"), ("Retry-After", "5"), *headers[1:]]
            return status, headers, body
        logger.exception("unexpected error on %s", path)
        return json_reply(500, {"error": "server_error"})


def _code_redirect(outcome: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """The code redirect (status line, headers) as the Flask view sends it, or ``None`` for any other outcome.

    Authlib's response (``oauth_server.handle_response``) with the headers
    ``security.install_security`` adds to an HTML-typed answer.
    """
    if not isinstance(outcome, IssueCode):
        return None
    resp = outcome.response
    if resp.status_code != 302 or resp.mimetype != "text/html" or resp.headers.get("Set-Cookie") is not None:
        return None
    headers = list(resp.headers.items())
    have = {k.lower() for k, _ in headers}
    for k, v in (*_COMMON, ("Content-Security-Policy", CSP), ("X-Frame-Options", "DENY"),
                 ("Cache-Control", "no-store")):
        if k.lower() not in have:
            headers.append((k, v))
    return resp.status, headers
