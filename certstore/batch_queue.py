"""The batch-issuance job queue: Dramatiq on Redis (as the idp's logout deliveries).

Producer (``certstore issue-batch``) and consumers (``certstore batch-worker``
processes) declare the same actor on a ``RedisBroker`` whose keys live under
``<YIWANG_REDIS_PREFIX>certstore-dramatiq``. A message names a job and a chunk
of row numbers; the rows themselves (sealed) and their outcomes are in SQL,
so a lost message only delays rows: a rerun, or another worker, picks up
whatever is still ``pending``, and ``external_ref`` keeps anything from being
issued twice. Without Redis there is no queue: the CLI issues inline.

Messages held by a worker that dies (SIGKILL, a lost machine) are back on the
queue within ``YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS`` (default 15 s) as long
as another worker runs, or as soon as one starts: :mod:`keys.jobqueue` says
how the bound is kept on Dramatiq's own heartbeat and maintenance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import AgeLimit, Callbacks, Retries, ShutdownNotifications, TimeLimit

from keys.jobqueue import BoundedRedisBroker, redis_broker

from .settings import CertstoreSettings

__all__ = ["BatchQueue", "QUEUE_NAME", "ACTOR_NAME"]

logger = logging.getLogger(__name__)

QUEUE_NAME = "certstore-batch"
ACTOR_NAME = "certstore_batch_rows"


class BatchQueue:
    """The broker and the batch actor; ``handler(job_id, row_no)`` issues one row."""

    def __init__(self, settings: CertstoreSettings, handler: Callable[[int, int], object] | None = None) -> None:
        url = settings.common.redis_url
        if not url:
            raise ValueError("the batch queue needs YIWANG_REDIS_URL")

        middleware = [
            AgeLimit(),
            TimeLimit(time_limit=600_000),
            ShutdownNotifications(),
            Callbacks(),
            Retries(max_retries=3, min_backoff=1_000, max_backoff=30_000),
        ]
        self.broker: BoundedRedisBroker = redis_broker(
            url=url,  # one server, Sentinel or Cluster (keys.redis_urls)
            namespace=f"{settings.common.redis_prefix}certstore-dramatiq",
            middleware=middleware,
            requeue_seconds=settings.queue_requeue_seconds,
        )
        self._handler = handler
        self.actor = dramatiq.Actor(
            self._run,
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=QUEUE_NAME,
            priority=0,
            options={},
        )

    def _run(self, job_id: int, rows: list[int]) -> None:
        if self._handler is None:  # pragma: no cover - producers do not consume
            raise RuntimeError("this BatchQueue has no handler")
        for row_no in rows:
            self._handler(int(job_id), int(row_no))

    def enqueue(self, job_id: int, rows: list[int]) -> None:
        self.actor.send(job_id, rows)

    def worker(self, *, threads: int = 1) -> dramatiq.Worker:
        return dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)

    def close(self) -> None:
        self.broker.close()
