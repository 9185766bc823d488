"""Helpers every view shares: the services, the caller's token."""

from __future__ import annotations

from flask import current_app, g, request

from ..errors import Forbidden, Unauthorized
from ..registry import IssuerInfo
from ..tokens import AccessToken
from ..wiring import Services

__all__ = ["services", "require_token", "require_issuer"]


def services() -> Services:
    svc: Services = current_app.extensions["certstore"]
    return svc


def require_token(scope: str) -> AccessToken:
    """The caller's validated Bearer token (RFC 6750 §2.1) carrying ``scope``."""
    header = request.headers.get("Authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise Unauthorized("a Bearer access token from the identity provider is required")
    token = services().tokens.validate(value.strip(), scope=scope)
    g.token = token
    return token


def require_issuer(scope: str) -> IssuerInfo:
    """The issuer the caller's client acts for (``certstore issuers add --client-id``)."""
    token = require_token(scope)
    issuer = services().registry.issuer_for_client(token.client_id)
    if issuer is None:
        raise Forbidden("this client is not linked to an issuing agency", code="not_an_issuer")
    return issuer
