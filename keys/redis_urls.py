"""Which Redis a URL names — one server, a Sentinel set or a Cluster — and a client for it.

The one place where ``YIWANG_REDIS_URL`` is read (docs/redis-ha.md); both
services and their job queues connect through :func:`connect`. The scheme
selects the mode:

``redis://host:port/db``, ``rediss://…``, ``unix:///path?db=0``
    one Redis server (the default, unchanged).
``redis+sentinel://[user:password@]host:port,host:port/<service>[/<db>]``
    a primary with replicas watched by Sentinel: the client asks the
    sentinels for the current primary and asks again after a failover, so a
    process keeps working without a restart.
``redis+cluster://[user:password@]host:port,host:port``
    a Redis Cluster; the hosts are startup nodes, the client learns the rest.
    Keys that one command, transaction or script touches together must share
    a hash tag (:func:`hash_tag`).

Query parameters (any mode): ``wait`` (replicas a write that must not be
lost waits for, default 1 with Sentinel or Cluster, 0 otherwise),
``wait_ms`` (how long it waits, default 200), ``sentinel_password``.

Plain library: no web framework, no settings.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis import exceptions as rx

__all__ = [
    "RedisTarget",
    "parse_redis_url",
    "connect",
    "target_of",
    "is_cluster",
    "hash_tag",
    "bucket_of",
    "wait_args",
    "durable_pipeline",
    "execute_durably",
    "run_script",
    "UNAVAILABLE",
    "is_unavailable",
]

logger = logging.getLogger(__name__)

Mode = Literal["single", "sentinel", "cluster"]

_SCHEMES: dict[str, Mode] = {
    "redis": "single",
    "rediss": "single",
    "unix": "single",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
    "rediss+cluster": "cluster",
}

UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also Sentinel's MasterNotFoundError, a demoted primary (redis-py reconnects)
    rx.TimeoutError,
    rx.ClusterDownError,  # a cluster without a primary for some slot (during a failover)
    rx.TryAgainError,  # a slot being migrated
    rx.SlotNotCoveredError,
    rx.ReadOnlyError,  # a write that reached a replica (a failover in progress)
    rx.ClusterError,
)
"""Errors that mean "Redis is away for now": answered 503, retried by the client, never half-handled."""


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL (never logged whole: it may carry a password)."""

    mode: Mode
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    """Sentinels (``sentinel``) or startup nodes (``cluster``)."""
    service: str | None = None
    """The Sentinel service (the primary's name in ``sentinel monitor``)."""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    wait_replicas: int = 0
    """Replicas a durable write waits for (:func:`execute_durably`; 0: no ``WAIT``)."""
    wait_ms: int = 200

    def __repr__(self) -> str:
        return f"RedisTarget(mode={self.mode!r}, nodes={self.nodes!r}, service={self.service!r})"


def _nodes(netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rsplit("@", 1)[-1]
    out = []
    for part in hosts.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [::1]:26379
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            out.append((host, int(port or 6379)))
        except ValueError as e:
            raise ValueError(f"bad port in Redis node {part!r}") from e
    if not out:
        raise ValueError("the Redis URL names no host")
    return tuple(out)


def _int(params: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(params[name][0]) if name in params else default
    except ValueError as e:
        raise ValueError(f"{name} in the Redis URL must be a number") from e


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a Redis URL (see the module text); raises ``ValueError`` on a malformed one."""
    text = url.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    mode = _SCHEMES.get(scheme)
    if mode is None:
        raise ValueError(f"expected a Redis URL scheme ({', '.join(_SCHEMES)})")
    params = parse_qs(urlsplit(text).query)
    ha = mode != "single"
    wait = _int(params, "wait", 1 if ha else 0)
    wait_ms = _int(params, "wait_ms", 200)
    if mode == "single":
        return RedisTarget(mode, text, wait_replicas=wait, wait_ms=wait_ms)
    # urlsplit cannot parse "h1:1,h2:2" as a netloc port: take the parts by hand.
    rest = text.split("://", 1)[1]
    netloc, _, path = rest.split("?", 1)[0].partition("/")
    userinfo = netloc.rsplit("@", 1)[0] if "@" in netloc else ""
    username, _, password = userinfo.partition(":")
    segments = [s for s in path.split("/") if s]
    service, db = None, 0
    if mode == "sentinel":
        if not segments:
            raise ValueError("a redis+sentinel URL names its service: redis+sentinel://host:port,…/<service>[/<db>]")
        service = unquote(segments[0])
        if len(segments) > 1:
            try:
                db = int(segments[1])
            except ValueError as e:
                raise ValueError("the database in a redis+sentinel URL must be a number") from e
    elif segments and segments != ["0"]:
        raise ValueError("a Redis Cluster has only database 0")
    return RedisTarget(
        mode, text, _nodes(netloc), service, db,
        username=unquote(username) or None, password=unquote(password) or None,
        sentinel_password=params.get("sentinel_password", [None])[0],
        tls=scheme.startswith("rediss"), wait_replicas=wait, wait_ms=wait_ms,
    )


def connect(url: str | RedisTarget, *, timeout: float = 5.0, health_check_interval: int = 30) -> Any:
    """A client (``bytes`` replies) for the URL: ``redis.Redis``, a Sentinel primary, or ``RedisCluster``."""
    target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
    common: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    client: Any
    if target.mode == "single":
        client = redis.Redis.from_url(target.url, health_check_interval=health_check_interval, **common)
    elif target.mode == "sentinel":
        from redis.sentinel import Sentinel

        sentinel = Sentinel(
            list(target.nodes),
            sentinel_kwargs={**common, "password": target.sentinel_password},
            db=target.db, health_check_interval=health_check_interval,
            username=target.username, password=target.password, **common,
        )
        client = sentinel.master_for(target.service or "", **common)
    else:
        from redis.cluster import ClusterNode, RedisCluster

        client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],  # type: ignore[no-untyped-call]
            username=target.username, password=target.password, ssl=target.tls,
            health_check_interval=health_check_interval, **common,
        )
    client._yiwang_target = target
    return client


def target_of(client: Any) -> RedisTarget:
    """What :func:`connect` made ``client`` for (a client made elsewhere counts as one server)."""
    target = getattr(client, "_yiwang_target", None)
    if isinstance(target, RedisTarget):
        return target
    from redis.cluster import RedisCluster

    return RedisTarget("cluster" if isinstance(client, RedisCluster) else "single", "")


def is_cluster(client: Any) -> bool:
    return target_of(client).mode == "cluster"


def hash_tag(value: str) -> str:
    """``{value}``: every key containing it lives in one Cluster slot (the first ``{…}`` counts)."""
    if "{" in value or "}" in value or not value:
        raise ValueError("a hash tag is a non-empty value without braces")
    return "{" + value + "}"


def bucket_of(value: str, buckets: int) -> int:
    """A stable bucket in ``range(buckets)`` for ``value`` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big") % buckets


def wait_args(client: Any) -> tuple[str, int, int] | None:
    """The ``WAIT`` command to queue after a write that must survive a failover, or ``None``.

    ``WAIT`` counts the writes *of its own connection*: it belongs in the same
    pipeline as the writes (:func:`durable_pipeline`), never in a call of its own.
    """
    target = target_of(client)
    if not _should_wait(target):
        return None
    return ("WAIT", target.wait_replicas, target.wait_ms)


def durable_pipeline(client: Any, key: str) -> Any:
    """A non-transactional pipeline on one connection to the primary that holds ``key``.

    Queue the writes (keys of ``key``'s slot only), then :func:`execute_durably`:
    it appends ``WAIT`` so the reply comes once the replicas have the writes
    (asynchronous replication otherwise loses, in a failover, what a replica
    had not yet received: docs/redis-ha.md, the loss bound). On a Cluster the
    pipeline runs on the node client that serves the key's slot.
    """
    target = target_of(client)
    if target.mode == "cluster" and _should_wait(target):
        node = client.get_redis_connection(client.get_node_from_key(key))
        pipe = node.pipeline(transaction=False)
        pipe._yiwang_cluster = client
    else:
        pipe = client.pipeline(transaction=False)  # a Cluster's own pipeline follows MOVED by itself
    pipe._yiwang_target = target
    return pipe


_STALE_NODE = (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError, rx.AskError, rx.ClusterDownError)
"""What a node client gets from a node that no longer serves the slot (dead, demoted, or the slot moved)."""


def _refresh_slots(cluster: Any) -> None:
    """After a node client failed: the cluster client asks the cluster for its slot map again."""
    try:
        cluster.nodes_manager.initialize()
    except Exception as e:  # noqa: BLE001 - the cluster is away: the next request tries again
        logger.info("Redis Cluster slot map not refreshed (%s)", type(e).__name__)


def execute_durably(pipe: Any) -> list[Any]:
    """Execute a :func:`durable_pipeline` with ``WAIT`` last; returns the replies of the writes.

    Fewer acknowledgements than asked are logged, not raised: the write is on
    the primary, and refusing the request would not make it safer.
    """
    target: RedisTarget | None = getattr(pipe, "_yiwang_target", None)
    if target is None or not _should_wait(target):
        return list(pipe.execute())
    pipe.execute_command("WAIT", target.wait_replicas, target.wait_ms)
    try:
        replies = list(pipe.execute())
    except _STALE_NODE as e:
        cluster = getattr(pipe, "_yiwang_cluster", None)
        if cluster is None:
            raise
        _refresh_slots(cluster)  # so that the next request goes to the slot's new primary
        if isinstance(e, rx.AskError):  # MOVED / ASK: nothing ran; the client retries (503)
            raise rx.TryAgainError(f"slot moved ({e}); slot map refreshed") from e
        raise
    _waited(target, int(replies[-1]))
    return replies[:-1]


SHORT_OF_REPLICAS_SECONDS = 5.0
"""After a ``WAIT`` that fell short (no replica: the old primary is gone after a
failover), this long without waiting: a write with no replica to reach gains
nothing from waiting, and every sign-in would pay ``wait_ms`` per write."""

_short_until: dict[str, float] = {}
_short_lock = threading.Lock()


def _should_wait(target: RedisTarget) -> bool:
    if target.wait_replicas <= 0:
        return False
    until = _short_until.get(target.url)
    return until is None or time.monotonic() >= until


def _waited(target: RedisTarget, acked: int) -> None:
    with _short_lock:
        was_short = target.url in _short_until
        if acked < target.wait_replicas:
            _short_until[target.url] = time.monotonic() + SHORT_OF_REPLICAS_SECONDS
            if not was_short:
                logger.warning("Redis WAIT: %d of %d replicas acknowledged within %d ms; writes go on "
                               "without waiting, checked again every %.0f s", acked, target.wait_replicas,
                               target.wait_ms, SHORT_OF_REPLICAS_SECONDS)
        elif was_short:
            del _short_until[target.url]
            logger.info("Redis WAIT: %d replicas acknowledge again", acked)


def run_script(client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """Run a registered Lua ``script``; with Sentinel or Cluster, ``WAIT`` for the replicas on its connection.

    Without replicas to wait for this is ``script(keys=…, args=…)``, one round
    trip. Otherwise ``EVALSHA`` and ``WAIT`` go in one pipeline on the primary
    of ``keys[0]`` (not through redis-py's pipeline scripts, which ask
    ``SCRIPT EXISTS`` first on every call); a server that does not know the
    script yet (a promoted replica) gets it loaded, and the pipeline is sent
    again: ``NOSCRIPT`` means nothing ran.
    """
    if not _should_wait(target_of(client)):
        return script(keys=keys, args=args)
    for attempt in (1, 2):
        pipe = durable_pipeline(client, keys[0])
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            return execute_durably(pipe)[0]
        except rx.NoScriptError:
            if attempt == 2:
                raise
            node = (client.get_redis_connection(client.get_node_from_key(keys[0]))
                    if is_cluster(client) else client)
            node.script_load(script.script)
        except rx.TryAgainError:  # a Cluster slot moved: the map is fresh now, nothing ran
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
