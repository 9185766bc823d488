"""The idp's Redis connection and key naming.

Redis holds what is short-lived and shared by every idp instance (docs/design.md,
state): SSO sessions, authorization and device codes, rate-limit counters,
replay caches and the job queue. With ``YIWANG_REDIS_URL`` unset (the
embedded default) a process-wide ``fakeredis`` server stands in, so a single
``idp serve`` works with nothing installed; it is not shared between
processes, which is why production sets the variable. The URL's scheme picks
one server, a Sentinel set or a Cluster (:mod:`keys.redis_urls`,
docs/redis-ha.md).

Every idp key is built by a :class:`Keyspace`, which prefixes it with
``YIWANG_REDIS_PREFIX`` (default ``yw:``) and ``idp:``: several deployments
or test runs can then share one Redis, and the test suite gives each test a
prefix of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from keys.redis_urls import connect, hash_tag, is_cluster

if TYPE_CHECKING:
    import fakeredis

    from .settings import IdpSettings

__all__ = ["connect_redis", "embedded_server", "Keyspace", "is_embedded", "slot_tag", "get_many",
           "RedisOutageLog", "REDIS_OUTAGE"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_server: fakeredis.FakeServer | None = None


def embedded_server() -> fakeredis.FakeServer:
    """The process-wide fakeredis server behind every embedded connection."""
    global _server
    with _lock:
        if _server is None:
            import fakeredis as _fakeredis

            _server = _fakeredis.FakeServer()
        return _server


def connect_redis(settings: IdpSettings) -> redis.Redis:
    """A client for the configured Redis, or for the in-process stand-in.

    Replies are ``bytes`` (``decode_responses=False``): callers decode what
    they store as text.
    """
    url = settings.common.redis_url
    if url:
        # redis://, redis+sentinel:// or redis+cluster:// (docs/redis-ha.md)
        return connect(url, timeout=5, health_check_interval=30)
    import fakeredis as _fakeredis

    return _fakeredis.FakeRedis(server=embedded_server())


def is_embedded(client: redis.Redis) -> bool:
    """True for the fakeredis stand-in (no Lua, not shared between processes)."""
    import fakeredis as _fakeredis

    return isinstance(client, _fakeredis.FakeRedis)


def slot_tag(client: Any, value: str) -> str:
    """``value`` as a hash tag on a Redis Cluster (``{value}``), ``value`` itself otherwise.

    For keys one script or transaction touches together (a code and its
    used marker: ``code:c:{h}`` and ``code:u:{h}``): on a Cluster they must
    share a slot; on one server the key names stay what they always were.
    """
    return hash_tag(value) if is_cluster(client) else value


def get_many(client: Any, keys: list[str]) -> list[Any]:
    """``MGET`` on one server; one ``GET`` per key in one pipeline on a Cluster (keys in several slots)."""
    if not is_cluster(client):
        return list(client.mget(keys))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(pipe.execute())


class RedisOutageLog:
    """One log line when Redis goes away and one when it answers again, not one per refused request.

    The web layer reports each request it answered 503 for a Redis error
    (:meth:`lost`) and each later request that went through (:meth:`answered`,
    one attribute read while Redis is up). A failover or a restart then reads
    as two lines: ``Redis unavailable (MasterNotFoundError on /authorize) …``
    and ``Redis available again after 1.9 s (31 requests answered 503)``.
    """

    def __init__(self) -> None:
        self._since: float | None = None
        self._refused = 0
        self._guard = threading.Lock()

    @property
    def down(self) -> bool:
        return self._since is not None

    def lost(self, error: str, where: str) -> None:
        with self._guard:
            self._refused += 1
            if self._since is None:
                self._since = time.monotonic()
                logger.error("Redis unavailable (%s on %s): answering 503 until it returns", error, where)

    def answered(self) -> None:
        if self._since is None:
            return
        with self._guard:
            if self._since is None:
                return
            down_for, refused = time.monotonic() - self._since, self._refused
            self._since, self._refused = None, 0
        logger.warning("Redis available again after %.1f s (%d requests answered 503)", down_for, refused)


REDIS_OUTAGE = RedisOutageLog()
"""The idp process's (web layer: ``idp.web.errors`` reports, ``idp.web`` clears)."""


@dataclass(frozen=True)
class Keyspace:
    """Builds prefixed Redis keys: ``Keyspace("yw:").key("session", sid)`` → ``yw:idp:session:<sid>``.

    ``child("session")`` gives a keyspace one level down, for a module that
    owns a family of keys.
    """

    prefix: str
    """The deployment's (or test's) prefix, ending in ``:``."""
    area: str = "idp"

    @property
    def base(self) -> str:
        return f"{self.prefix}{self.area}:"

    def key(self, *parts: str | int) -> str:
        if not parts:
            raise ValueError("a key needs at least one part")
        return self.base + ":".join(str(p) for p in parts)

    def __call__(self, *parts: str | int) -> str:
        return self.key(*parts)

    def child(self, name: str) -> Keyspace:
        return Keyspace(self.prefix, f"{self.area}:{name}")

    def pattern(self) -> str:
        """A ``SCAN`` pattern matching every key of this keyspace."""
        return self.base + "*"
