"""The logout queue's multi-key steps on a real Redis Cluster and Sentinel set (issue 16).

An attempt takes its lock and refreshes its marker in one script and clears
both with one DEL; a fan-out sets its markers in one pipeline. On the cluster
those touch two keys at once: both must sit in the queue's slot (CROSSSLOT
otherwise).
"""

from __future__ import annotations

import pytest

from idp.logout.queue import JobQueue, TransientDelivery
from idp.settings import IdpSettings
from keys.redis_urls import connect, is_cluster


class _Handlers:
    def __init__(self) -> None:
        self.outcome: BaseException | None = None
        self.attempted: list[str] = []

    def attempt(self, delivery_id: str) -> None:
        self.attempted.append(delivery_id)
        if self.outcome is not None:
            raise self.outcome

    def sweep(self) -> None:
        pass


@pytest.fixture
def queue(redis_url, redis_prefix, tmp_path):
    settings = IdpSettings.from_env({
        "YIWANG_HOME": str(tmp_path / "home"), "YIWANG_REDIS_URL": redis_url, "YIWANG_REDIS_PREFIX": redis_prefix,
    })
    client = connect(redis_url)
    handlers = _Handlers()
    q = JobQueue(settings, handlers, redis=client, prefix=redis_prefix)
    yield q, handlers, client
    q.close()
    client.close()


def test_a_fanout_and_its_attempts_keep_their_keys_in_one_slot(queue):
    q, handlers, client = queue
    q.enqueue_deliveries(["1", "2", "3"])
    assert [q.has_job(i) for i in ("1", "2", "3")] == [True, True, True]
    if is_cluster(client):
        slots = {client.keyslot(q._marker_prefix + i) for i in ("1", "2", "3")}
        assert slots == {client.keyslot(q._marker_prefix + "1:lock")}

    q._deliver("1")  # delivered: lock and marker gone
    assert handlers.attempted == ["1"] and not q.has_job("1")
    assert not client.exists(q._marker_prefix + "1:lock")

    handlers.outcome = TransientDelivery("HTTP 503")
    with pytest.raises(TransientDelivery):
        q._deliver("2")  # to be retried: the marker stays, the lock goes
    assert q.has_job("2") and not client.exists(q._marker_prefix + "2:lock")

    client.set(q._marker_prefix + "3:lock", "1", px=60_000)  # another attempt holds it
    handlers.attempted.clear()
    q._deliver("3")
    assert handlers.attempted == []
