"""The idp's error hierarchy (non-protocol errors).

OAuth/OIDC protocol errors are Authlib's ``OAuth2Error`` subclasses and are
mapped to HTTP in the web layer; these are the domain and operational errors
that the CLI shows as one line and the web layer as a problem JSON.
"""

from __future__ import annotations

__all__ = ["IdpError", "NotFound", "Conflict", "InvalidInput", "ServiceUnavailable"]


class IdpError(Exception):
    """Base of the idp's own errors. ``status`` is the HTTP status it maps to."""

    status = 400
    code = "invalid_request"


class InvalidInput(IdpError):
    status = 400
    code = "invalid_input"


class NotFound(IdpError):
    status = 404
    code = "not_found"


class Conflict(IdpError):
    status = 409
    code = "conflict"


class ServiceUnavailable(IdpError):
    """The database or Redis cannot be reached."""

    status = 503
    code = "service_unavailable"
