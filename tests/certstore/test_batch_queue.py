"""The batch queue's requeue bound (issue 20 §5): setting, split, and Dramatiq's maintenance forced on time.

The end-to-end measurement (a worker SIGKILLed holding messages) is in
tests/faults/test_batch_faults.py; these pin the parts.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.batch_queue import BatchQueue
from certstore.settings import CertstoreSettings
from keys.errors import ConfigurationError
from keys.jobqueue import BoundedRedisBroker, RequeueBound, redis_broker

from .conftest import make_settings

REDIS = os.environ.get("YIWANG_TEST_REDIS_URL")


def test_the_setting_is_read_checked_and_defaults_to_15_seconds(tmp_path: Path) -> None:
    base = {"YIWANG_HOME": str(tmp_path)}
    assert CertstoreSettings.from_env(base).queue_requeue_seconds == 15.0
    assert CertstoreSettings.from_env({**base, "YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS": "3"}).queue_requeue_seconds == 3.0
    for bad in ("1", "0", "-5", "4000", "soon"):
        with pytest.raises(ConfigurationError, match="YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS is malformed"):
            CertstoreSettings.from_env({**base, "YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS": bad})


def test_the_bound_is_heartbeat_timeout_plus_one_maintenance_period() -> None:
    bound = RequeueBound(15)
    assert bound.heartbeat_timeout == pytest.approx(12.0) and bound.period == pytest.approx(3.0)
    assert bound.heartbeat_timeout + bound.period == pytest.approx(15.0)
    assert bound.heartbeat_timeout / bound.period >= 3  # a live worker beats several times per timeout
    with pytest.raises(ValueError):
        RequeueBound(0)


def test_the_batch_queue_broker_carries_the_configured_bound(tmp_path: Path) -> None:
    common = make_settings(tmp_path, "sqlite://").common
    settings = CertstoreSettings(common=type(common)(**{**common.__dict__, "redis_url": "redis://127.0.0.1:1/0"}),
                                 queue_requeue_seconds=5)
    queue = BatchQueue(settings)  # builds the broker; nothing is sent to Redis yet
    try:
        assert isinstance(queue.broker, BoundedRedisBroker)
        assert queue.broker.heartbeat_timeout == 4000 and queue.broker.bound.period == pytest.approx(1.0)
    finally:
        queue.close()


@pytest.fixture
def broker() -> Iterator[BoundedRedisBroker]:
    if not REDIS:
        pytest.skip("needs Redis (YIWANG_TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(REDIS)
    ns = f"t{uuid.uuid4().hex[:10]}:q"
    b = redis_broker(client=client, namespace=ns, middleware=[], requeue_seconds=2)
    b.declare_queue("jobs")
    yield b
    keys = list(client.scan_iter(match=f"{ns}*"))
    if keys:
        client.delete(*keys)
    b.close()


def _hold(client: Any, ns: str, worker_id: str, message_id: str, *, last_beat_ms: int, data: bytes = b"{}") -> str:
    """What a worker that fetched ``message_id`` and then died leaves in Redis."""
    client.hset(f"{ns}:jobs.msgs", message_id, data)
    client.sadd(f"{ns}:__acks__.{worker_id}.jobs", message_id)
    client.zadd(f"{ns}:__heartbeats__", {worker_id: last_beat_ms})
    return f"{ns}:__acks__.{worker_id}.jobs"


def test_maintain_requeues_a_dead_workers_messages_and_spares_a_live_one(broker: BoundedRedisBroker) -> None:
    client, ns = broker.client, broker.namespace
    now_ms = int(time.time() * 1000)
    dead = _hold(client, ns, "dead-worker", "m-dead", last_beat_ms=now_ms - 1700)  # older than H = 1.6 s
    alive = _hold(client, ns, "live-worker", "m-live", last_beat_ms=now_ms - 500)

    broker.maintain()
    assert [m.decode() for m in client.lrange(f"{ns}:jobs", 0, -1)] == ["m-dead"]
    assert not client.exists(dead) and client.sismember(alive, "m-live")
    beat = client.zscore(f"{ns}:__heartbeats__", broker.broker_id)
    assert beat is not None and abs(beat - time.time() * 1000) < 2000  # maintain() is also our heartbeat


def test_a_running_worker_runs_the_beat_and_stops_it_with_itself(broker: BoundedRedisBroker) -> None:
    import dramatiq

    client, ns = broker.client, broker.namespace
    ran = threading.Event()
    dramatiq.Actor(ran.set, broker=broker, actor_name="job", queue_name="jobs", priority=0, options={})
    held = dramatiq.Message(queue_name="jobs", actor_name="job", args=(), kwargs={},
                            options={"redis_message_id": "m-dead"})
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert any(t.name == "requeue-beat" for t in threading.enumerate())
        t0 = time.monotonic()
        _hold(client, ns, "dead-worker", "m-dead", last_beat_ms=int(time.time() * 1000) - 10_000,
              data=held.encode())
        # Dead long since: the next round (at most M = 0.4 s away) requeues it, the worker runs it.
        assert ran.wait(broker.bound.period + 2), "the dead worker's message never ran"
        assert time.monotonic() - t0 <= broker.bound.period + 1
    finally:
        worker.stop(timeout=5_000)
    assert not any(t.name == "requeue-beat" for t in threading.enumerate())

