"""idp.ciba.store on Redis with a clock of the test's: slow_down and the longer interval, expiry, one redemption."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from idp.ciba.store import Approval, CibaStore, StoredRequest, auth_req_hash


def _store(redis_client: Any, now: list[int]) -> CibaStore:
    return CibaStore(redis_client, f"t{uuid.uuid4().hex[:8]}:", clock=lambda: now[0])


def _request(**kw: Any) -> StoredRequest:
    return StoredRequest(client_id="counter", citizen_id=7, public_id="p-7", scope="openid", expires_in=300,
                         interval=5, **kw)


def test_slow_down_grows_the_interval_of_that_request_only(redis_client: Any) -> None:
    now = [1000]
    store = _store(redis_client, now)
    rid, _, _ = store.create(_request())
    other, _, _ = store.create(_request())
    assert store.poll(rid, "counter").status == "pending"
    now[0] += 1
    assert store.poll(rid, "counter").status == "slow_down"  # 1 s < 5 s; the interval is 10 s now
    assert store.poll(other, "counter").status == "pending"  # another request keeps its own interval
    now[0] += 7
    assert store.poll(rid, "counter").status == "slow_down"  # 7 s < 10 s: 15 s now
    now[0] += 15
    assert store.poll(rid, "counter").status == "pending"
    now[0] += 15
    assert store.poll(rid, "counter").status == "pending"


def test_expiry_other_client_and_single_redemption(redis_client: Any) -> None:
    now = [1000]
    store = _store(redis_client, now)
    rid, display, _ = store.create(_request())
    assert store.poll(rid, "someone-else").status == "wrong_client"
    h, data = store.by_display_id(display)  # type: ignore[misc]
    assert h == auth_req_hash(rid) and "auth_req_id" not in data  # poll mode keeps only its hash
    assert store.decide(h, 8, Approval("sid", 1, "acr", (), "openid")) is None  # another citizen
    assert store.decide(h, 7, Approval("sid", 1, "acr", ("pwd",), "openid")) is not None
    assert store.decide(h, 7, None) is None  # decided once
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.poll(rid, "counter").status)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["approved"] + ["used"] * 7
    late, _, _ = store.create(_request())
    now[0] += 301
    assert store.poll(late, "counter").status == "expired"
    assert store.poll("never-issued", "counter").status == "unknown"
