"""Service tickets (CAS 3.0 §3.1): ``ST-`` + 256 random bits, single-use, bound to a service, seconds long.

A ticket is kept in Redis under the SHA-256 of its value (a dump of Redis
holds no ticket a service would accept) with the facts validation releases:
the service it was issued for, the session, the citizen, the scopes the
citizen's consent allowed, whether the login was fresh. Validation takes it
with ``GETDEL``: of two validations of one ticket, exactly one gets it
(§3.1.1 "MUST only be valid for one ticket validation attempt"), and a
failed validation consumes it too (§2.5.3: a mismatching service
invalidates the ticket). Its lifetime is ``YIWANG_IDP_CAS_TICKET_SECONDS``
(10 s by default; the specification recommends no more than five minutes).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TICKET_PREFIX", "Ticket", "TicketStore", "looks_like_service_ticket"]

TICKET_PREFIX = "ST-"
_MAX_TICKET = 256  # CAS 3.0 §3.7: services must accept tickets of up to 256 characters


def looks_like_service_ticket(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(TICKET_PREFIX) and 3 < len(value) <= _MAX_TICKET


@dataclass(frozen=True)
class Ticket:
    """What a service ticket stands for (never the ticket value itself)."""

    client_id: str
    service: str
    """The registered service URL the ticket was issued for (exact match at validation)."""
    sid: str
    citizen_id: int
    auth_time: int
    issued_at: int
    scopes: list[str] = field(default_factory=list)
    """The scopes whose claims are released as attributes (consent applied)."""
    fresh: bool = False
    """Issued right after the citizen gave credentials (``renew``: CAS 3.0 §2.5.1)."""


class TicketStore:
    """Issue and take service tickets in Redis.

    ``keyspace`` is an :class:`idp.redis.Keyspace` (or a prefix string).
    """

    def __init__(self, redis: Any, keyspace: Any, *, lifetime_seconds: int) -> None:
        self._r = redis
        base = getattr(keyspace, "base", keyspace)
        self._p = f"{base}cas:st:"
        self.lifetime_seconds = lifetime_seconds

    def _key(self, ticket: str) -> str:
        return self._p + hashlib.sha256(ticket.encode()).hexdigest()

    def issue(self, ticket: Ticket, *, pipe: Any = None) -> str:
        """Store ``ticket`` and return its value (``ST-…``); with ``pipe``, only queued on it."""
        value = TICKET_PREFIX + secrets.token_urlsafe(32)
        target = pipe if pipe is not None else self._r
        target.set(self._key(value), json.dumps(asdict(ticket), separators=(",", ":")),
                   px=self.lifetime_seconds * 1000)
        return value

    def take(self, value: str | None) -> Ticket | None:
        """The ticket, consumed (one caller ever gets it); ``None`` if unknown, used or expired."""
        if not looks_like_service_ticket(value):
            return None
        assert value is not None
        raw = self._r.getdel(self._key(value))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Ticket(**data)
        except (ValueError, TypeError):
            return None
