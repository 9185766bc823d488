"""A citizen's Web Push subscriptions (the ``push_subscription`` table): add, list, remove.

The account page's script posts the browser's ``PushSubscription`` (W3C Push
API ``toJSON()``: ``endpoint``, ``keys.p256dh``, ``keys.auth``). The endpoint
is a URL the idp will POST to, supplied by a browser: it is checked like any
outbound URL (https to a public host, :func:`idp.netpolicy.check_outbound_url`),
and checked again, address by address, when a push is sent
(:func:`keys.http.bounded_request`). The keys must be a P-256 point and a
16-byte secret (RFC 8291 §3). At most :data:`MAX_PER_CITIZEN` devices are kept
per citizen (the oldest goes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import InvalidInput
from ..models import utcnow
from ..netpolicy import OutboundUrlRefused, check_outbound_url
from .models import PushSubscription

__all__ = ["Subscription", "SubscriptionStore", "MAX_PER_CITIZEN", "parse_subscription"]

MAX_PER_CITIZEN = 10


@dataclass(frozen=True)
class Subscription:
    """What a push needs (the ``subscription_info`` of pywebpush)."""

    id: int
    citizen_id: int
    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def __repr__(self) -> str:  # the endpoint is a capability: not in logs
        return f"Subscription(id={self.id}, citizen={self.citizen_id})"


def _b64url(value: Any, length: int, name: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidInput(f"keys.{name} is missing")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(f"keys.{name} is not base64url") from None
    if len(raw) != length or (name == "p256dh" and raw[0] != 4):
        raise InvalidInput(f"keys.{name} is not a {'P-256 public key' if name == 'p256dh' else '16-byte secret'}")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_subscription(data: Any, *, allow_loopback: bool) -> tuple[str, str, str]:
    """``(endpoint, p256dh, auth)`` from a ``PushSubscription.toJSON()``, or ``InvalidInput``."""
    if not isinstance(data, dict):
        raise InvalidInput("a subscription is a JSON object")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str):
        raise InvalidInput("endpoint is missing")
    try:
        check_outbound_url(endpoint, allow_loopback=allow_loopback)
    except OutboundUrlRefused as e:
        raise InvalidInput(f"endpoint: {e}") from None
    keys = data.get("keys")
    if not isinstance(keys, dict):
        raise InvalidInput("keys is missing")
    return endpoint, _b64url(keys.get("p256dh"), 65, "p256dh"), _b64url(keys.get("auth"), 16, "auth")


def _hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


class SubscriptionStore:
    def __init__(self, db: Any, *, allow_loopback: bool = False) -> None:
        self.db = db
        self.allow_loopback = allow_loopback

    def add(self, citizen_id: int, data: Any, *, user_agent: str | None = None) -> Subscription:
        """Keep (or refresh) a subscription for ``citizen_id``; ``InvalidInput`` for a bad one.

        An endpoint already kept for another citizen (a shared device, a new
        sign-in) moves to this one: a push service endpoint reaches one browser.
        """
        endpoint, p256dh, auth = parse_subscription(data, allow_loopback=self.allow_loopback)
        h = _hash(endpoint)
        with self.db.session() as s:
            s.execute(sa.delete(PushSubscription).where(PushSubscription.endpoint_hash == h))
            row = PushSubscription(citizen_id=citizen_id, endpoint=endpoint, endpoint_hash=h, p256dh=p256dh,
                                   auth=auth, user_agent=(user_agent or "")[:200] or None, created_at=utcnow())
            s.add(row)
            s.flush()
            ids = list(s.scalars(sa.select(PushSubscription.id).where(PushSubscription.citizen_id == citizen_id)
                                 .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())))
            if len(ids) > MAX_PER_CITIZEN:
                s.execute(sa.delete(PushSubscription).where(PushSubscription.id.in_(ids[MAX_PER_CITIZEN:])))
            return Subscription(row.id, citizen_id, endpoint, p256dh, auth)

    def get(self, subscription_id: int) -> Subscription | None:
        with self.db.single_statement() as s:
            r = s.get(PushSubscription, subscription_id)
            return Subscription(r.id, r.citizen_id, r.endpoint, r.p256dh, r.auth) if r is not None else None

    def for_citizen(self, citizen_id: int) -> list[Subscription]:
        with self.db.single_statement() as s:
            rows = s.scalars(sa.select(PushSubscription).where(PushSubscription.citizen_id == citizen_id))
            return [Subscription(r.id, r.citizen_id, r.endpoint, r.p256dh, r.auth) for r in rows]

    def count(self, citizen_id: int) -> int:
        with self.db.single_statement() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(PushSubscription)
                                .where(PushSubscription.citizen_id == citizen_id)) or 0)

    def remove(self, citizen_id: int, endpoint: str | None = None, *, subscription_id: int | None = None) -> int:
        """Forget one subscription of ``citizen_id`` (by endpoint or id), or all of them; how many went."""
        query = sa.delete(PushSubscription).where(PushSubscription.citizen_id == citizen_id)
        if endpoint is not None:
            query = query.where(PushSubscription.endpoint_hash == _hash(endpoint))
        if subscription_id is not None:
            query = query.where(PushSubscription.id == subscription_id)
        with self.db.session() as s:
            return int(getattr(s.execute(query), "rowcount", 0) or 0)

    def sent(self, subscription_id: int) -> None:
        with self.db.single_statement() as s:
            s.execute(sa.update(PushSubscription).where(PushSubscription.id == subscription_id)
                      .values(last_sent_at=utcnow()))
