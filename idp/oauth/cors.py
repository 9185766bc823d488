"""Cross-origin reads for browser apps: which web origin may read which answer (issue 21 §1).

A single-page app (a public client running in the citizen's browser, the
pattern ``oidc-client-ts`` implements) calls the token, userinfo,
revocation and PAR endpoints with ``fetch``; the browser lets it read an
answer only when that answer names its origin (Fetch Standard, "CORS
protocol"). The idp names an origin only for the client that registered
it (``Client.attributes["web_origins"]``, checked by
:func:`idp.clients.uris.validate_web_origin`), as Keycloak's "web origins"
and oidc-provider's client-based CORS do:

* an actual request: its client decides — ``client_id`` in the body or the
  Basic user name for the token, revocation and PAR endpoints; the access
  token's client for userinfo. An origin of another client, or none
  registered, gets no ``Access-Control-Allow-Origin``;
* a preflight (``OPTIONS``) carries no client, so it is answered for an
  origin some client registered (:class:`RegisteredOrigins`, a set cached
  like the provider's clients) and the actual request decides per client;
* credentials are never allowed (no ``Access-Control-Allow-Credentials``):
  these endpoints take tokens, never the idp's cookies;
* discovery and JWKS are public documents and answer ``*`` (their views).

This module knows no framework; :mod:`idp.web.cors` applies it to every
request that has an ``Origin`` header, before the hot path and Flask.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = [
    "ALLOWED_HEADERS",
    "CORS_PATHS",
    "MAX_AGE",
    "WEB_ORIGINS",
    "RegisteredOrigins",
    "actual_headers",
    "client_id_from",
    "load_registered_origins",
    "preflight_headers",
    "token_from",
]

WEB_ORIGINS = "web_origins"
"""The client attribute: the exact origins of the browser app."""

CORS_PATHS: dict[str, str] = {
    "/token": "POST",
    "/revoke": "POST",
    "/par": "POST",
    "/userinfo": "GET, POST",
}
"""The endpoints a browser app calls, and the methods a preflight may ask for."""

ALLOWED_HEADERS = "Authorization, Content-Type, DPoP"
EXPOSED_HEADERS = "WWW-Authenticate, DPoP-Nonce"
MAX_AGE = "600"
"""How long a browser may cache a preflight answer (Chromium caps it at 7200 s)."""

logger = logging.getLogger(__name__)

_VARY = ("Vary", "Origin")


def client_origins(client: Any) -> tuple[str, ...]:
    """The web origins ``client`` registered (none for ``None``)."""
    if client is None:
        return ()
    return tuple((getattr(client, "attributes", None) or {}).get(WEB_ORIGINS) or ())


def preflight_headers(path: str, origin: str, registered: frozenset[str]) -> list[tuple[str, str]]:
    """The headers of a preflight's answer: the CORS grant for a registered origin, else only ``Vary``."""
    methods = CORS_PATHS.get(path)
    if methods is None or origin not in registered:
        return [_VARY]
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
        ("Access-Control-Max-Age", MAX_AGE),
        _VARY,
    ]


def actual_headers(origin: str, client: Any) -> list[tuple[str, str]]:
    """The headers an actual request's answer gets: the origin only if ``client`` registered it."""
    if origin in client_origins(client):
        return [("Access-Control-Allow-Origin", origin),
                ("Access-Control-Expose-Headers", EXPOSED_HEADERS), _VARY]
    return [_VARY]


def client_id_from(form_body: bytes, authorization: str | None) -> str | None:
    """The client a token, revocation or PAR request names: ``client_id`` in the body, else Basic."""
    if form_body:
        try:
            for key, value in parse_qsl(form_body.decode("utf-8"), keep_blank_values=True):
                if key == "client_id":
                    return value
        except (UnicodeDecodeError, ValueError):
            return None
    if authorization and authorization[:6].lower() == "basic ":
        try:
            user = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote(user) or None  # RFC 6749 §2.3.1: form-encoded before base64
    return None


def token_from(authorization: str | None, form_body: bytes) -> str | None:
    """The access token of a userinfo request: ``Bearer`` / ``DPoP`` header, else the form."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "dpop") and value.strip():
            return value.strip()
        return None
    if form_body:
        try:
            for key, value in parse_qsl(form_body.decode("utf-8"), keep_blank_values=True):
                if key == "access_token":
                    return value
        except (UnicodeDecodeError, ValueError):
            return None
    return None


def load_registered_origins(db: Any) -> frozenset[str]:
    """Every web origin some client registered: one query over the clients' attributes."""
    import sqlalchemy as sa

    from ..models import Client

    with db.single_statement() as s:
        rows = s.execute(sa.select(Client.attributes)).scalars().all()
    return frozenset(o for attrs in rows for o in ((attrs or {}).get(WEB_ORIGINS) or ()))


class RegisteredOrigins:
    """The set a preflight is answered from, reloaded after ``ttl`` seconds.

    Like the provider's client cache (``ProviderConfig.client_cache_seconds``):
    a client added, changed or deleted by the CLI (another process) is seen
    within ``ttl``; :meth:`forget` reloads at once in this process. Loaded
    only when a request with an ``Origin`` header needs it.
    """

    def __init__(self, load: Callable[[], Iterable[str]], *, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._origins: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        now = self._clock()
        if now - self._at < self._ttl:
            return self._origins
        with self._lock:
            if now - self._at >= self._ttl:
                try:
                    self._origins = frozenset(self._load())
                except Exception as e:  # the database is away: keep the last set, try again after ttl
                    logger.warning("registered web origins not reloaded (%s)", type(e).__name__)
                self._at = now
        return self._origins

    def forget(self) -> None:
        self._at = float("-inf")
