"""The job queue's Redis broker with a stated bound on how long a dead worker holds messages.

Shared by every Yiwang job queue on Redis (certstore's batch issuance; the
idp's back-channel logout deliveries can use it the same way). Issue 20 §5:
messages held by a killed worker came back only after Dramatiq's own timeout.

How Dramatiq's ``RedisBroker`` (2.x, ``brokers/redis/dispatch.lua``) works:

- a worker process's fetched-but-unacknowledged messages sit in a set
  ``<ns>:__acks__.<broker id>.<queue>``; every dispatch call (fetch, enqueue,
  ack, qsize…) stamps ``<ns>:__heartbeats__`` with that broker id and time;
- a held message goes back to its queue only during *maintenance*: a dispatch
  call that finds broker ids whose last heartbeat is older than
  ``heartbeat_timeout`` (default 60 s) and pushes their held messages back —
  for the one queue that call names;
- maintenance runs on a call with probability ``maintenance_chance`` per
  million (default 1,000: one fetch in a thousand), never on ack/nack;
- a worker whose threads are all busy (prefetch full) fetches nothing, so it
  stamps no heartbeat: with a short timeout it would be taken for dead.

So a killed worker's messages came back after 60 s plus the wait for the dice
to land on that queue: about a minute in practice, unbounded in principle.

:func:`redis_broker` states a bound ``B`` (``requeue_seconds``) and keeps it:

- ``heartbeat_timeout`` ``H = 0.8 B``;
- every process that runs a Dramatiq ``Worker`` on the broker runs one more
  thread (:class:`RequeueBeat`, Dramatiq middleware, so it lives exactly as
  long as the worker) that every ``M = 0.2 B`` stamps this process's
  heartbeat and runs maintenance on every queue the broker declares (its
  delay queues too). A live worker is thus never more than ``M`` behind on
  its heartbeat, however busy, and a dead one's messages are pushed back at
  most ``M`` after it is due;
- a worker killed at ``t0`` stamped its heartbeat last at or before ``t0``: it
  counts as dead by ``t0 + H``, and its messages are back on the queue by
  ``t0 + H + M = t0 + B`` — provided some worker of the namespace is running
  (one started later runs maintenance at once, when it boots). A free worker
  then takes them within its poll interval (``worker_timeout``, 0.1–0.2 s
  here).

A live worker stalled longer than ``H`` (a frozen VM, a debugger) is taken
for dead and its messages may run twice: every actor on these queues must be
idempotent (batch rows and logout deliveries are).

Plain library: no web framework, no settings; callers pass the bound.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from dramatiq import Middleware, Worker
from dramatiq.brokers.redis import RedisBroker

from .redis_urls import connect, is_cluster

__all__ = ["RequeueBound", "RequeueBeat", "BoundedRedisBroker", "redis_broker", "cluster_namespace"]

logger = logging.getLogger(__name__)

_HEARTBEAT_SHARE = 0.8


@dataclass(frozen=True)
class RequeueBound:
    """``B`` seconds, split into the heartbeat timeout ``H`` and the maintenance period ``M``."""

    seconds: float
    """``B``: a dead worker's messages are back on their queue at most this long after it died."""

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError("the requeue bound must be a positive number of seconds")

    @property
    def heartbeat_timeout(self) -> float:
        """``H``: seconds without a heartbeat after which a worker counts as dead."""
        return self.seconds * _HEARTBEAT_SHARE

    @property
    def period(self) -> float:
        """``M``: seconds between a worker process's heartbeat-and-maintenance rounds."""
        return self.seconds - self.heartbeat_timeout


class BoundedRedisBroker(RedisBroker):
    """``RedisBroker`` whose :meth:`maintain` stamps the heartbeat and runs maintenance now."""

    def __init__(self, *, bound: RequeueBound, **kwargs: Any) -> None:
        self._forced = threading.local()
        self.bound = bound
        super().__init__(heartbeat_timeout=int(bound.heartbeat_timeout * 1000), **kwargs)  # type: ignore[no-untyped-call]

    def _should_do_maintenance(self, command: str) -> int:
        if getattr(self._forced, "on", False):
            return 1
        return int(super()._should_do_maintenance(command))

    def maintain(self) -> None:
        """One round: on every declared queue, stamp our heartbeat and requeue dead workers' messages."""
        self._forced.on = True
        try:
            for queue_name in sorted(self.get_declared_queues() | self.get_declared_delay_queues()):
                # qsize only reads; the dispatch script stamps the heartbeat and, forced, maintains.
                self.do_qsize(queue_name)
        finally:
            self._forced.on = False


class RequeueBeat(Middleware):
    """While a Worker runs on the broker: a thread calling :meth:`BoundedRedisBroker.maintain` every ``M``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Any, worker: Worker) -> None:
        if not isinstance(broker, BoundedRedisBroker) or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="requeue-beat", daemon=True)
        self._thread.start()

    def after_worker_shutdown(self, broker: Any, worker: Worker) -> None:
        # Not before: Dramatiq keeps heartbeats going while workers finish their messages.
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=5)

    def _run(self, broker: BoundedRedisBroker) -> None:
        failing = False
        while True:
            try:
                broker.maintain()
                if failing:
                    logger.info("job queue heartbeat: Redis answers again")
                failing = False
            except Exception as e:  # Redis away: the consumers report it too; keep beating
                if not failing:
                    logger.warning("job queue heartbeat failed (%s); retrying every %.1f s",
                                   type(e).__name__, broker.bound.period)
                failing = True
            if self._stop.wait(broker.bound.period):
                return


def cluster_namespace(namespace: str) -> str:
    """``namespace`` as one hash tag: every key of the broker in one Cluster slot.

    Dramatiq's dispatch script is called with the namespace as its only key and
    builds the others (``<ns>:<queue>``, ``<ns>:__acks__…``, ``<ns>:__heartbeats__``)
    itself; on a Cluster they must all hash to that key's slot, which a
    namespace in braces guarantees. The queue is then one slot's load (one
    primary): ample for logout deliveries and batch chunks (docs/redis-ha.md).
    """
    if "{" in namespace:
        return namespace
    return "{" + namespace + "}"


def redis_broker(
    *,
    namespace: str,
    middleware: list[Middleware],
    requeue_seconds: float,
    client: Any = None,
    url: str | None = None,
) -> BoundedRedisBroker:
    """A Redis broker on which a dead worker's messages are back on their queue within ``requeue_seconds``.

    ``client``, or ``url`` (one server, ``redis+sentinel://`` or ``redis+cluster://``,
    :mod:`keys.redis_urls`). On a Cluster the namespace becomes a hash tag
    (:func:`cluster_namespace`).
    """
    if client is None:
        if not url:
            raise ValueError("a Redis broker needs a client or a URL")
        client = connect(url)
    if is_cluster(client):
        namespace = cluster_namespace(namespace)
    return BoundedRedisBroker(
        bound=RequeueBound(requeue_seconds),
        client=client,
        namespace=namespace,
        middleware=[*middleware, RequeueBeat()],
    )
