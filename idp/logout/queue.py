"""The idp's job queue: a Dramatiq broker with the idp's actors declared on it.

docs/design.md, State: background work runs on a real job queue on Redis, never a
hand-made loop. With ``YIWANG_REDIS_URL`` set the broker is Dramatiq's
``RedisBroker`` (keys under ``<prefix>dramatiq``), consumed by ``idp worker``
processes — or, with ``YIWANG_IDP_INPROCESS_WORKER=true``, by a worker
thread inside the web process. In the embedded default (no Redis server) the
broker is Dramatiq's in-process ``StubBroker`` and ``create_app`` starts a
worker thread beside the web server.

A worker that dies (SIGKILL, a lost machine) holding jobs gives them back
within ``YIWANG_IDP_QUEUE_REQUEUE_SECONDS`` (default 15 s) while another
worker runs, or as soon as one starts (issue 20 §5): the broker is
:func:`keys.jobqueue.redis_broker`, which keeps that bound on Dramatiq's
heartbeat and maintenance (the same setting and semantics as certstore's
batch queue). A delivery the dead worker had begun also waits out its lock
(:func:`delivery_lock_ms`, 11 s with the defaults).

Actors are declared per :class:`JobQueue` (not at import time on a global
broker) so that a test can throw a broker and its worker away and build fresh
ones on the same database and Redis — which is what an idp restart is.

The actors:

``logout.deliver(delivery_id)``
    one back-channel logout POST (:meth:`idp.logout.delivery.Deliverer.attempt`);
    a transient failure raises :class:`TransientDelivery` and the ``Retries``
    middleware re-enqueues it with exponential backoff (``min_backoff`` doubling
    up to ``max_backoff``) until the delivery's retry window has passed.
``idp.sweep()``
    ends sessions past their idle or absolute deadline through
    ``SessionStore.end`` (so back-channel logout fires on expiry), re-enqueues
    pending deliveries whose job was lost, and re-enqueues itself with a delay.
    A Redis lease keeps one sweep chain alive however many workers start one.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from ..faults import fault_point
from ..settings import IdpSettings

__all__ = [
    "DELIVER_ACTOR",
    "SWEEP_ACTOR",
    "QUEUE_NAME",
    "TransientDelivery",
    "JobHandlers",
    "JobQueue",
    "build_broker",
    "delivery_lock_ms",
    "POLL_MS",
]

logger = logging.getLogger(__name__)

QUEUE_NAME = "idp"
DELIVER_ACTOR = "logout_deliver"
SWEEP_ACTOR = "idp_sweep"


_TAKEN = -10
_TAKE_LOCK = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return -10
end
return redis.call('PTTL', KEYS[1])
"""
"""KEYS: a delivery's lock and marker. Takes the lock and refreshes the marker, answering
``_TAKEN``; or answers the held lock's remaining milliseconds (PTTL: negative when it has none)."""


class TransientDelivery(Exception):
    """The relying party could not be reached or answered 5xx: retry later.

    Carries no token, URL query or response body (they may hold secrets).
    """


class JobHandlers(Protocol):
    """What the actors call; :class:`idp.logout.delivery.LogoutService` implements it."""

    def attempt(self, delivery_id: str) -> None: ...

    def sweep(self) -> None: ...


def _retry_when(retries: int, exc: BaseException) -> bool:
    # Only transient delivery failures are retried; anything else is a bug
    # and must not loop. The actor itself gives up once the retry window of
    # the delivery has passed (it then records the row as failed).
    return isinstance(exc, TransientDelivery)


def build_broker(settings: IdpSettings) -> dramatiq.Broker:
    """The broker for ``settings``: Redis when configured, in-process otherwise."""
    middleware = [
        AgeLimit(),
        TimeLimit(time_limit=120_000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        UnqueuedRetries(
            max_retries=None,  # type: ignore[arg-type]
            min_backoff=settings.logout_min_backoff_ms,
            max_backoff=settings.logout_max_backoff_ms,
            retry_when=_retry_when,
        ),
    ]
    url = settings.common.redis_url
    if url:
        from keys.jobqueue import redis_broker

        namespace = f"{settings.common.redis_prefix}dramatiq"
        # Issue 20 §5: jobs held by a worker that died are back on the queue within
        # queue_requeue_seconds (Dramatiq's own heartbeat timeout alone: a minute or more).
        # The URL may name a Sentinel set or a Cluster (keys.redis_urls, docs/redis-ha.md).
        return redis_broker(url=url, namespace=namespace, middleware=middleware,
                            requeue_seconds=settings.queue_requeue_seconds)
    return StubBroker(middleware=middleware)


POLL_MS = 100
"""Dramatiq's ``worker_timeout``: an idle worker looks for jobs every 50-100 ms (its consumers back
off to between half of this and this; Redis has no blocking fetch for Dramatiq's queues).

A session end waits for that look before its first logout token goes out: 0.39 x this on
average, 39 ms, a quarter of a 50-portal fan-out's time since issue 16. 30 ms would save 27 ms
on average and cost an idle ``idp worker`` 2.7 % instead of 1.4 % of a core and about 90
instead of 27 fetch scripts a second on Redis (measured); kept at 100 while a blocking fetch
in the broker, which would remove both the wait and the polling, is discussed. (At 30 ms the
failover test first showed the held-retry case :meth:`JobQueue.keep_going` now recovers.)"""


def delivery_lock_ms(settings: IdpSettings) -> int:
    """How long one delivery attempt holds its lock: the POST's whole deadline twice, plus a second.

    The lock outlives a worker killed mid-attempt by at most this; a requeued
    job that finds it waits it out (:meth:`JobQueue._deliver`), so a delivery
    held by a dead worker is attempted again within
    ``max(queue_requeue_seconds, this)`` — 15 s with the defaults.
    """
    return (settings.logout_timeout_seconds * 2 + 1) * 1000


class UnqueuedRetries(Retries):
    """Dramatiq's ``Retries``; a retry it could not queue (Redis away, a failover) is reported,
    and so is a job that failed on Redis itself.

    Dramatiq logs such a failure and drops the retry; the delivery's marker
    (in Redis, unreachable then) would keep the sweep away from its row for
    the marker's lifetime. :class:`JobQueue` takes the report and queues the
    delivery again once Redis answers (:meth:`JobQueue.keep_going`).
    """

    on_unqueued: Any = None

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        from keys.redis_urls import is_unavailable

        if exception is not None and is_unavailable(exception) and self.on_unqueued is not None:
            # The job itself failed on Redis (its lock, its marker): not a bug, not retried
            # by _retry_when; it is queued again once Redis answers.
            self.on_unqueued(message)
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except Exception:
            if self.on_unqueued is not None:
                self.on_unqueued(message)
            raise


@dataclass
class _Lease:
    """A Redis lease: only the holder of the sweep chain re-enqueues it."""

    redis: Any
    key: str
    token: str = ""

    def take(self, ttl_ms: int) -> bool:
        self.token = secrets.token_hex(8)
        return bool(self.redis.set(self.key, self.token, nx=True, px=ttl_ms))

    def renew(self, ttl_ms: int) -> None:
        self.redis.set(self.key, self.token, px=ttl_ms)


class JobQueue:
    """A broker, the idp's actors on it, and (optionally) an in-process worker.

    ``handlers`` does the work; ``redis``/``prefix`` hold the sweep lease.
    """

    def __init__(
        self,
        settings: IdpSettings,
        handlers: JobHandlers,
        *,
        redis: Any,
        prefix: str,
        broker: dramatiq.Broker | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.broker = broker if broker is not None else build_broker(settings)
        self._redis = redis
        self._marker_prefix = f"{prefix}logout:job:"
        namespace = getattr(self.broker, "namespace", "")
        if namespace.startswith("{"):  # a Cluster: the markers in the queue's slot (enqueue_delivery's order)
            self._marker_prefix = f"{namespace}:logout-job:"
        self._parked = f"{prefix}logout:parked"
        self._sweep_lease = _Lease(redis, f"{prefix}sweep-lease")
        self._take_lock = redis.register_script(_TAKE_LOCK)
        self._worker: dramatiq.Worker | None = None
        self._lock = threading.Lock()
        self._unqueued: set[str] = set()
        self._away = False
        """Redis was seen away (a job failed on it, or a keeper round): recover pending rows after."""
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()
        for middleware in self.broker.middleware:
            if isinstance(middleware, UnqueuedRetries):
                middleware.on_unqueued = self._note_unqueued

        self.deliver = dramatiq.Actor(
            self._deliver,
            broker=self.broker,
            actor_name=DELIVER_ACTOR,
            queue_name=QUEUE_NAME,
            priority=0,
            options={"retry_when": _retry_when, "time_limit": 120_000},
        )
        self.sweep = dramatiq.Actor(
            self._sweep,
            broker=self.broker,
            actor_name=SWEEP_ACTOR,
            queue_name=QUEUE_NAME,
            priority=10,
            options={"max_retries": 0},
        )

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, StubBroker)

    # enqueueing ---------------------------------------------------------
    def _marker_ttl_ms(self) -> int:
        # A job waits at most max_backoff between attempts; the marker says
        # "a job for this delivery exists" a little longer than that.
        return self.settings.logout_max_backoff_ms * 2 + 60_000

    def enqueue_delivery(self, delivery_id: str) -> None:
        """Queue one attempt of ``delivery_id`` (its SQL row must already be committed).

        The job first, then its marker: a primary replicates its writes in the
        order it applied them, so a replica promoted by a failover (Sentinel,
        Cluster) that has the marker has the job too. A job lost with its marker
        is re-queued by the sweep (``resend_pending``); a marker without its job
        would have hidden the row from it (docs/redis-ha.md).
        """
        self.deliver.send(delivery_id)
        self._redis.set(self._marker_prefix + delivery_id, "1", px=self._marker_ttl_ms())

    def enqueue_deliveries(self, delivery_ids: list[str]) -> None:
        """Queue one attempt of each delivery: the jobs one by one, then their markers in one round trip.

        A session's fan-out queues up to one job per relying party; the markers
        follow all of its jobs (so the order of :meth:`enqueue_delivery` holds for
        each) as one pipeline instead of a round trip each. A marker set after its
        job already ran outlives a delivered row harmlessly: recovery only looks at
        pending rows, and treats a row overdue by minutes as lost whatever its marker.
        """
        for delivery_id in delivery_ids:
            self.deliver.send(delivery_id)
        pipe = self._redis.pipeline(transaction=False)
        for delivery_id in delivery_ids:
            pipe.set(self._marker_prefix + delivery_id, "1", px=self._marker_ttl_ms())
        pipe.execute()

    def has_job(self, delivery_id: str) -> bool:
        """Whether a job for ``delivery_id`` is believed to be queued (its marker lives)."""
        return bool(self._redis.exists(self._marker_prefix + delivery_id))

    def forget_job(self, delivery_id: str) -> None:
        self._redis.delete(self._marker_prefix + delivery_id)

    # parked session ends (the database was down when they ended) ---------
    def park(self, item: dict[str, Any], *, front: bool = False) -> None:
        data = json.dumps(item)
        if front:
            self._redis.lpush(self._parked, data)
        else:
            self._redis.rpush(self._parked, data)

    def take_parked(self) -> dict[str, Any] | None:
        raw = self._redis.lpop(self._parked)
        return None if raw is None else dict(json.loads(raw))

    def start_sweep_chain(self) -> None:
        """Send the first sweep message (each worker does at start; the lease dedups)."""
        self.sweep.send()

    # actors -------------------------------------------------------------
    def _deliver(self, delivery_id: str) -> None:
        # One attempt at a time per delivery: a duplicate job (recovery after a
        # restart, an operator's resend) that finds another attempt running
        # drops out; one that runs later finds the row delivered and stops.
        marker = self._marker_prefix + delivery_id
        lock = f"{marker}:lock"
        # The lock and, when taken, the marker's refresh (while retries go on,
        # recovery leaves this row alone) in one round trip; on a Cluster both
        # keys carry the queue's hash tag (__init__).
        left = self._take_lock(keys=[lock, marker], args=[delivery_lock_ms(self.settings), self._marker_ttl_ms()])
        if left != _TAKEN:
            # Held: an attempt runs, or ran on a worker that died holding it (the
            # broker gave this job back). Come back when the lock is free, or the
            # dead worker's delivery would wait for the recovery sweep.
            if isinstance(left, int) and left > 0:
                self.deliver.send_with_options(args=(delivery_id,), delay=left + 100)
            return
        fault_point("logout.after_fetch")
        forget = False
        try:
            self.handlers.attempt(delivery_id)
            forget = True
        except TransientDelivery:
            raise
        except Exception:
            forget = True  # not retried (a bug): without its marker the row is the sweep's again
            raise
        finally:
            # Lock and marker in one DEL; a retry (TransientDelivery) keeps its marker.
            if forget:
                self._redis.delete(lock, marker)
            else:
                self._redis.delete(lock)

    def _sweep(self) -> None:
        period_ms = max(1, self.settings.session_sweep_seconds) * 1000
        lease_ms = period_ms * 3
        holds = self._sweep_lease.take(lease_ms)
        if not holds:
            current = self._redis.get(self._sweep_lease.key)
            holds = current is not None and _text(current) == self._sweep_lease.token
        if not holds:
            return  # another sweep chain is alive; let this one end
        try:
            self.handlers.sweep()
        except Exception:
            logger.exception("sweep failed; the next run tries again")
        self._sweep_lease.renew(lease_ms)
        self.sweep.send_with_options(delay=period_ms)

    # in-process worker --------------------------------------------------
    def start_worker(self, *, threads: int = 2, sweep: bool = True) -> dramatiq.Worker:
        """Start a Dramatiq worker in this process (embedded default, tests)."""
        with self._lock:
            if self._worker is None:
                worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=POLL_MS)
                worker.start()
                self._worker = worker
                if sweep:
                    self.start_sweep_chain()
                    if not self.in_process:  # Redis: keep the sweep chain and retries alive across outages
                        self._stop.clear()
                        self._keeper = threading.Thread(target=self._keep_going, name="job-queue-keeper",
                                                        daemon=True)
                        self._keeper.start()
            return self._worker

    def stop_worker(self, timeout_ms: int = 5_000) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
            keeper, self._keeper = self._keeper, None
        self._stop.set()
        if keeper is not None:
            keeper.join(timeout=5)
        if worker is not None:
            worker.stop(timeout=timeout_ms)

    # after a Redis failover -------------------------------------------------
    def _note_unqueued(self, message: Any) -> None:
        self._away = True
        if message.actor_name == DELIVER_ACTOR and message.args:
            self._unqueued.add(str(message.args[0]))
            logger.warning("logout delivery %s: interrupted by Redis being away (its job or its retry); "
                           "queued again when Redis answers", message.args[0])

    def keep_going(self) -> None:
        """One round of what a Redis outage or failover can have broken (docs/redis-ha.md).

        Retries that could not be queued are queued again; a sweep chain whose
        self-sent message was lost (its lease ran out) is started again (the
        lease keeps it one chain however many workers do this).

        After Redis was seen away, every pending delivery is queued again once, its
        marker notwithstanding: a Dramatiq consumer that loses its connection forgets
        the delayed messages (retries) it had already fetched, and they stay held under
        this live worker's id, out of the broker's requeue, while their markers keep the
        recovery sweep away for minutes. The failover test caught it once attempts got
        fast enough to queue their retry just before the primary died (7 failures in 14
        runs with a 30 ms poll, 1 in 20 at 100 ms; none in 14 since). A duplicate job
        is harmless: it finds the row settled, or makes one early attempt.
        """
        for delivery_id in sorted(self._unqueued):
            self.enqueue_delivery(delivery_id)
            self._unqueued.discard(delivery_id)
        if self._redis.get(self._sweep_lease.key) is None:
            self.start_sweep_chain()
        if self._away:
            resend = getattr(self.handlers, "resend_pending", None)  # LogoutService's
            if resend is not None:
                resend(only_lost=False)
            self._away = False

    def _keep_going(self) -> None:
        period = max(1, self.settings.session_sweep_seconds)
        while not self._stop.wait(period):
            try:
                self.keep_going()
            except Exception as e:  # Redis still away: the next round tries again
                self._away = True
                logger.debug("job queue keeper: %s", type(e).__name__)

    def join(self, timeout_ms: int = 10_000) -> None:
        """Wait until the queue is empty (in-process broker; for tests and the CLI)."""
        if isinstance(self.broker, StubBroker):
            self.broker.join(QUEUE_NAME, timeout=timeout_ms, fail_fast=False)
        else:
            self.broker.join(QUEUE_NAME, timeout=timeout_ms)

    def close(self) -> None:
        self.stop_worker()
        self.broker.close()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)

