"""CIBA requests on a real Redis Cluster and Sentinel set: the redemption waits for a replica.

A poll that takes an approved request writes its ``used`` marker; were that
write lost in a failover (asynchronous replication), the same approval could
be redeemed a second time. The poll's script therefore goes through
``keys.redis_urls.run_script``, which sends ``WAIT`` on the script's own
connection when the URL names replicas.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import keys.redis_urls as redis_urls
from idp.ciba.store import Approval, CibaStore, StoredRequest, auth_req_hash


def test_a_redemption_waits_for_a_replica_and_happens_once(ha_client: Any, redis_prefix: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    acks: list[int] = []
    real = redis_urls._waited
    monkeypatch.setattr(redis_urls, "_waited", lambda target, acked: (acks.append(acked), real(target, acked)))
    store = CibaStore(ha_client, redis_prefix)
    rid, display, _ = store.create(StoredRequest(client_id="counter", citizen_id=7, public_id="p-7",
                                                 scope="openid", expires_in=300, interval=5))
    h, _ = store.by_display_id(display)  # type: ignore[misc]
    assert h == auth_req_hash(rid)
    assert store.decide(h, 7, Approval("sid", 1, "acr", ("pwd",), "openid")) is not None

    acks.clear()
    results: list[str] = []
    polls = [threading.Thread(target=lambda: results.append(store.poll(rid, "counter").status)) for _ in range(6)]
    for t in polls:
        t.start()
    for t in polls:
        t.join()
    assert sorted(results) == ["approved"] + ["used"] * 5
    if redis_urls.target_of(ha_client).wait_replicas:  # the Sentinel set (the shared Cluster has no replicas)
        assert len(acks) == 6 and all(a >= 1 for a in acks), "every poll's script waited for a replica"
    else:
        assert acks == []
