"""The embedded notifier: a citizen's signed-in idp pages show a pending request without reload.

:class:`LiveNotifier` keeps each :class:`~idp.ciba.notify.PendingApproval` in
Redis beside the citizen's account (a sorted set of display ids by expiry and
one JSON item each). The account page's script (``idp/web/static/ciba_live.js``)
asks ``GET /ciba/pending`` every few seconds, which reads
:meth:`LiveNotifier.pending_for` (two round trips, no SQL) and shows each
request with a link to its approval page. A decided request is withdrawn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ..redis import get_many
from .notify import ActorDisplay, PendingApproval

__all__ = ["LiveNotifier", "MAX_PENDING"]

MAX_PENDING = 20
"""At most this many pending requests are listed for one citizen."""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class LiveNotifier:
    """A :class:`~idp.ciba.notify.Notifier` whose deliveries the citizen's own pages pick up."""

    def __init__(self, redis: Any, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self._r = redis
        self._p = f"{prefix}ciba:live:"
        self._clock = clock

    # One hash tag per citizen: the list and its items share a Redis Cluster slot.
    def _ks(self, account_id: int) -> str:
        return f"{self._p}{{{account_id}}}"

    def _ki(self, account_id: int, display_id: str) -> str:
        return f"{self._p}{{{account_id}}}:i:{display_id}"

    def notify(self, pending: PendingApproval) -> None:
        ttl = max(1, pending.expires_at - int(self._clock()))
        pipe = self._r.pipeline(transaction=False)
        item = json.dumps(asdict(pending), ensure_ascii=False)
        pipe.set(self._ki(pending.account_id, pending.display_id), item, ex=ttl)
        pipe.zadd(self._ks(pending.account_id), {pending.display_id: pending.expires_at})
        pipe.expire(self._ks(pending.account_id), ttl + 60)
        pipe.execute()

    def withdraw(self, account_id: int, display_id: str) -> None:
        """The request was decided (or is gone): no page shows it any more."""
        pipe = self._r.pipeline(transaction=False)
        pipe.zrem(self._ks(account_id), display_id)
        pipe.delete(self._ki(account_id, display_id))
        pipe.execute()

    def pending_for(self, account_id: int) -> list[PendingApproval]:
        """The citizen's pending requests, soonest to expire first."""
        now = int(self._clock())
        key = self._ks(account_id)
        pipe = self._r.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrange(key, 0, MAX_PENDING - 1)
        _, ids = pipe.execute()
        if not ids:
            return []
        out = []
        for raw in get_many(self._r, [self._ki(account_id, _text(i)) for i in ids]):
            if raw is None:
                continue
            data = json.loads(raw)
            actor = data.pop("actor", None)
            data["scopes"] = tuple(data.get("scopes") or ())
            out.append(PendingApproval(actor=ActorDisplay(**actor) if actor else None, **data))
        return out
