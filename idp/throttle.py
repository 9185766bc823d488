"""Failed-login throttling per account and per client IP (issue 3 §7).

Counters live in Redis through the ``limits`` library's moving-window
limiter (never a hand-written rate limiter), so every idp instance sees the
same counts. Several tiers per key give growing delays: after 5 failures in
a minute an account waits out that minute, after 10 in a quarter of an hour
up to 15 minutes, after 20 in an hour up to an hour — a temporary lock that
the login page explains with ``retry_after_seconds``.

The account key is the blind index of the number that was typed, computed
whether or not an account exists, so a locked number and its retry time
tell an attacker nothing about the account (OWASP Authentication Cheat
Sheet, "account enumeration"). A success clears the account's counters; the
per-IP counters only ever run out, so one valid account cannot be used to
reset an address that is guessing others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

if TYPE_CHECKING:
    import redis

    from .redis import Keyspace
    from .settings import IdpSettings

__all__ = [
    "Throttle",
    "ThrottleDecision",
    "ACCOUNT_TIERS",
    "IP_TIERS",
    "make_throttle_storage",
]

logger = logging.getLogger(__name__)

ACCOUNT_TIERS = "5/minute;10/15 minutes;20/hour"
IP_TIERS = "30/minute;100/hour"


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    retry_after_seconds: int = 0
    """Seconds until a new attempt will be considered (0 when allowed)."""
    scope: str | None = None
    """``account`` or ``ip``: which counter ran out (the page words its message with it)."""
    account_failures: bool = True
    """False when the account's counters are known to be empty (no reset needed after success)."""


def make_throttle_storage(
    settings: IdpSettings, client: redis.Redis | None, keyspace: Keyspace
) -> Storage:
    """``limits`` storage on the configured Redis, or in memory for the embedded default."""
    url = settings.common.redis_url
    if url and client is not None:
        from keys.redis_urls import is_cluster

        if is_cluster(client):
            # limits' scripts touch one key each: on a Cluster the storage simply
            # runs on the idp's own RedisCluster client (docs/redis-ha.md).
            import redis as redis_lib

            storage = RedisStorage("redis://", connection_pool=redis_lib.ConnectionPool(),
                                   key_prefix=keyspace.key("throttle"))
            storage.storage = client
            storage.initialize_storage(url)
            return storage
        return RedisStorage(
            "redis://",  # the pool below decides where (one server or the Sentinel primary)
            connection_pool=client.connection_pool,
            key_prefix=keyspace.key("throttle"),
        )
    return MemoryStorage()


class Throttle:
    """Counts failed logins and decides whether another attempt may be made."""

    def __init__(
        self,
        storage: Storage,
        *,
        account_tiers: str | Sequence[RateLimitItem] = ACCOUNT_TIERS,
        ip_tiers: str | Sequence[RateLimitItem] = IP_TIERS,
        redis: redis.Redis | None = None,
    ) -> None:
        self.storage = storage
        self._redis = redis if isinstance(storage, RedisStorage) else None
        """With the Redis storage: one EXISTS over every window first (see :meth:`check`)."""
        self.limiter = MovingWindowRateLimiter(storage)
        self.account_tiers = _tiers(account_tiers)
        self.ip_tiers = _tiers(ip_tiers)

    def _keys(self, id_index: str | None, ip: str | None) -> list[tuple[str, RateLimitItem, str]]:
        keys: list[tuple[str, RateLimitItem, str]] = []
        if id_index:
            keys += [("account", item, id_index) for item in self.account_tiers]
        if ip:
            keys += [("ip", item, ip) for item in self.ip_tiers]
        return keys

    def check(self, id_index: str | None, ip: str | None) -> ThrottleDecision:
        """May a login for this (blind-indexed) number from this address be tried now?"""
        keys = self._keys(id_index, ip)
        if self._redis is not None and keys:
            # The usual login has no failures on record: then no window
            # exists and one round trip says so, where asking the limiter
            # window by window costs one per tier (five). Any window present
            # and the limiter decides, as always.
            storage = self.storage
            assert isinstance(storage, RedisStorage)
            names = [storage.prefixed_key(item.key_for(scope, ident)) for scope, item, ident in keys]
            if not self._redis.exists(*names):
                return ThrottleDecision(True, account_failures=False)
        now = time.time()
        worst: tuple[float, str] | None = None
        account_failures = False
        for scope, item, ident in keys:
            stats = self.limiter.get_window_stats(item, scope, ident)
            if scope == "account" and stats.remaining < item.amount:
                account_failures = True
            if stats.remaining <= 0:
                wait = stats.reset_time - now
                if worst is None or wait > worst[0]:
                    worst = (wait, scope)
        if worst is None:
            return ThrottleDecision(True, account_failures=account_failures)
        return ThrottleDecision(False, max(1, math.ceil(worst[0])), worst[1], account_failures)

    def hit(self, id_index: str | None, ip: str | None) -> None:
        """Count one failed attempt."""
        for scope, item, ident in self._keys(id_index, ip):
            self.limiter.hit(item, scope, ident)

    def remaining(self, id_index: str) -> tuple[int, int]:
        """Failures the account may still have before a lock, and how long that lock lasts at most.

        The tightest account tier decides (fewest failures left; its window
        is the longest the lock can last). Only the account counters count:
        they exist for any number typed, known or not, so the answer says
        nothing about whether an account exists.
        """
        tightest: tuple[int, int] | None = None
        for scope, item, ident in self._keys(id_index, None):
            left = max(0, self.limiter.get_window_stats(item, scope, ident).remaining)
            if tightest is None or left < tightest[0]:
                tightest = (left, item.get_expiry())
        return tightest if tightest is not None else (0, 0)

    def reset(self, id_index: str) -> None:
        """Forget an account's failures (after a successful login, or an operator's unlock)."""
        for scope, item, ident in self._keys(id_index, None):
            self.limiter.clear(item, scope, ident)


def _tiers(spec: str | Sequence[RateLimitItem]) -> list[RateLimitItem]:
    if isinstance(spec, str):
        return list(parse_many(spec))
    return list(spec)
