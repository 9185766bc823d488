"""The CORS rule of :mod:`idp.oauth.cors` applied to HTTP: a WSGI layer in front of everything.

It wraps the hot path (:mod:`.hotpaths`) and Flask together, so the token,
userinfo, revocation and PAR endpoints answer the same on both paths. A
request without an ``Origin`` header costs one dict look-up; one with an
``Origin`` on another path passes through untouched. For the four
endpoints: a preflight is answered here (from the registered-origin set);
an actual request goes on to the application, with its body put back, and
its answer gets the headers its client earns.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..oauth.cors import (
    CORS_PATHS,
    RegisteredOrigins,
    actual_headers,
    client_id_from,
    load_registered_origins,
    preflight_headers,
    token_from,
)
from .security import MAX_BODY

__all__ = ["CorsLayer"]

logger = logging.getLogger(__name__)

_COMMON = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("Cache-Control", "no-store")]


class CorsLayer:
    """WSGI middleware: the CORS answer for browser apps (issue 21 §1)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], runtime: Any) -> None:
        self._app = app
        self._runtime = runtime
        provider = runtime.provider
        self.origins = RegisteredOrigins(lambda: load_registered_origins(runtime.services.db),
                                         ttl=provider.config.client_cache_seconds)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return self._app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if path not in CORS_PATHS:
            return self._app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        if method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            # Fetch Standard §3.2.2: a preflight names no client; the actual request decides.
            start_response("204 NO CONTENT", [*preflight_headers(path, origin, self.origins.get()), *_COMMON])
            return [b""]
        try:
            client = self._client_of(environ, path)
        except Exception as e:  # a backing service is away: the application answers that (503)
            logger.warning("CORS client look-up failed on %s (%s)", path, type(e).__name__)
            client = None
        extra = actual_headers(origin, client)

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            if exc_info is not None:
                return start_response(status, [*kept, *extra], exc_info)
            return start_response(status, [*kept, *extra])

        return self._app(environ, with_cors)

    def _client_of(self, environ: dict[str, Any], path: str) -> Any:
        """The client whose registration decides: named in the request, or the access token's."""
        if environ.get("HTTP_ORIGIN") not in self.origins.get():
            return None  # no client registered it: nothing to look up
        body = _body(environ)
        authorization = environ.get("HTTP_AUTHORIZATION")
        provider = self._runtime.provider
        if path == "/userinfo":
            token = token_from(authorization, body)
            if not token or len(token) > 4096:
                return None
            claims = provider.tokens.verify_access_token(token, check_revoked=False)
            return provider.query_client(claims.client_id) if claims is not None else None
        client_id = client_id_from(body, authorization)
        return provider.query_client(client_id) if client_id else None


def _body(environ: dict[str, Any]) -> bytes:
    """A form body (within the size limit), put back for the application to read again."""
    ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if environ.get("REQUEST_METHOD") != "POST" or ctype != "application/x-www-form-urlencoded":
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return b""
    if length <= 0 or length > MAX_BODY:
        return b""
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body
