"""Helpers every view shares: the services, the caller's token, who the caller may act as.

certstore decides for itself who may call an agency API (docs/design.md,
"Resource servers check for themselves"): a scope in the token is necessary,
never sufficient. Issuing, reading and changing certificates need a
client-credentials token of a client that ``certstore issuers add
--client-id`` linked to an issuer, and act as that issuer only; a lookup by
ID number needs a client on certstore's own allow-list
(``YIWANG_CERTSTORE_LOOKUP_CLIENTS``), for the types listed there.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request

from ..binding import (
    ResourceDPoP,
    check_certificate_binding,
    check_dpop_binding,
    forwarded_certificate_thumbprint,
)
from ..errors import Forbidden, Unauthorized
from ..registry import IssuerInfo
from ..tokens import AccessToken
from ..wiring import Services

__all__ = ["services", "bearer", "require_token", "require_issuer", "require_lookup_client", "LookupClient"]


def services() -> Services:
    svc: Services = current_app.extensions["certstore"]
    return svc


def bearer() -> str:
    """The access token of the request: ``Bearer`` (RFC 6750 §2.1) or ``DPoP`` (RFC 9449 §7.1)."""
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() not in ("bearer", "dpop") or not value.strip():
        raise Unauthorized("a Bearer access token from the identity provider is required")
    return value.strip()


def _dpop() -> ResourceDPoP:
    dpop = current_app.extensions.get("certstore.dpop")
    if dpop is None:
        svc = services()
        dpop = current_app.extensions.setdefault("certstore.dpop", ResourceDPoP.from_settings(svc.settings, svc.keyring))
    return dpop


def require_token(scope: str | None) -> AccessToken:
    """The caller's validated (and, with introspection, unrevoked) token carrying ``scope``."""
    raw = bearer()
    token = services().tokens.validate(raw, scope=scope)
    check_dpop_binding(token.claims, raw, scheme=request.headers.get("Authorization", "")[:5].lower().strip(),
                       proof=request.headers.get("DPoP"), method=request.method, path=request.path,
                       dpop=_dpop())  # RFC 9449 §7 (DPoP); nothing to do for an unbound Bearer token
    check_certificate_binding(token.claims, _presented_certificate())  # RFC 8705 §3.2 (mTLS)
    g.token = token
    return token


def _presented_certificate() -> str | None:
    """The thumbprint of the client certificate the TLS proxy forwarded (only from the proxy)."""
    settings = services().settings
    return forwarded_certificate_thumbprint(request.headers.get(settings.mtls_header),
                                            request.remote_addr, settings.mtls_proxies)


def _agency_token(scope: str) -> AccessToken:
    token = require_token(scope)
    # RFC 9068 §2.2 / RFC 6749 §4.4: a client-credentials token names the client itself as
    # its subject. A token a citizen signed in for is about that citizen, never an agency's.
    if token.subject != token.client_id or "sid" in token.claims or "act" in token.claims:
        raise Forbidden("agency APIs need the agency's own client-credentials token", code="not_an_agency_token")
    return token


def require_issuer(scope: str) -> IssuerInfo:
    """The one issuer the caller's client acts for (``certstore issuers add --client-id``)."""
    token = _agency_token(scope)
    issuer = services().registry.issuer_for_client(token.client_id)
    if issuer is None:
        raise Forbidden("this client is not linked to an issuing agency", code="not_an_issuer")
    return issuer


@dataclass(frozen=True)
class LookupClient:
    client_id: str
    types: frozenset[str] | None
    """The certificate types it may read; ``None``: every type."""


def require_lookup_client(scope: str) -> LookupClient:
    """A client on certstore's lookup allow-list, holding ``scope`` in its own client-credentials token."""
    token = _agency_token(scope)
    allowed = services().settings.lookup_clients
    if token.client_id not in allowed:
        raise Forbidden("this client is not allowed to look up certificates at certstore", code="not_allowed")
    return LookupClient(token.client_id, allowed[token.client_id])
