"""certstore's error hierarchy, mapped to ``application/problem+json`` in one place
(``certstore.web.errors``) and to one-line CLI messages in ``certstore.cli``."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CertstoreError",
    "InvalidInput",
    "NotFound",
    "Forbidden",
    "Conflict",
    "ServiceUnavailable",
    "StoreUnavailable",
    "Unauthorized",
    "PayloadTooLargeError",
]


class CertstoreError(Exception):
    """Base of certstore's errors; ``status`` and ``code`` feed the problem JSON."""

    status = 400
    code = "invalid_request"
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.field = field
        self.extra = extra


class InvalidInput(CertstoreError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(CertstoreError):
    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(CertstoreError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(CertstoreError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ServiceUnavailable(CertstoreError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class StoreUnavailable(ServiceUnavailable):
    """The database (or Redis) is away: restarting, unreachable, or read-only for a write.

    Carries ``retry_after`` (seconds) for the ``Retry-After`` header (RFC 9110
    §10.2.3). Nothing was stored: a retry with the same ``Idempotency-Key``
    is safe (issue 20 §2).
    """


class Unauthorized(CertstoreError):
    """No access token, or one that fails validation (RFC 6750 §3.1 ``invalid_token``)."""

    status = 401
    code = "invalid_token"
    title = "Unauthorized"


class PayloadTooLargeError(CertstoreError):
    """An upload above the size limit."""

    status = 413
    code = "too_large"
    title = "Payload too large"
