"""A Redis Cluster primary killed under the session store: its replica takes over, nothing answered is lost.

A cluster of this test's own (three primaries, a replica each, ``wait=1``).
The sessions are spread over every shard by their hash tags; the primary
holding some of them is SIGKILLed. While the cluster fails over, the store's
calls fail only with errors the services answer 503 for
(``keys.redis_urls.UNAVAILABLE``); afterwards the same client — its slot map
refreshed by the failure — reads and writes the promoted replica: the
sessions created before survive (they WAITed), the ended ones stay ended.
"""

from __future__ import annotations

import time

import pytest

from idp.redis import Keyspace
from idp.sessions import SessionStore
from keys.redis_urls import UNAVAILABLE, connect
from tests.redis_ha.ha_support import PrivateCluster


@pytest.fixture
def cluster():
    c = PrivateCluster().start()
    yield c
    c.close()


def test_a_killed_cluster_primary_loses_no_session(cluster):
    client = connect(cluster.url)
    store = SessionStore(client, Keyspace("ha:"), idle_seconds=600, max_seconds=3600)
    sessions = [store.create(f"citizen-{i % 7}", 1, "acr", ["pwd"], "browser", "127.0.0.1", "UA")[0]
                for i in range(40)]
    for s in sessions[:20]:
        store.add_client(s.sid, "portal-a")
    ended = {s.sid for s in sessions[:6]}
    for sid in ended:
        assert store.end(sid, "logout") is not None

    def port_of(sid: str) -> int:
        return int(client.get_node_from_key(store._k(sid)).port)

    victim = port_of(sessions[10].sid)
    on_victim = [s.sid for s in sessions if port_of(s.sid) == victim and s.sid not in ended]
    assert on_victim, "the killed primary holds some of the sessions"
    cluster.kill(victim)
    killed_at = time.monotonic()

    refused: list[str] = []
    deadline = killed_at + 30
    while True:  # a sign-out on the dead primary's slot, again and again (as clients retry a 503)
        try:
            # The end WAITs, so it runs on the slot's node client: the failure must refresh the map.
            assert store.end(on_victim[0], "logout") is not None
            break
        except UNAVAILABLE as e:
            refused.append(type(e).__name__)
        assert time.monotonic() < deadline, f"the cluster did not recover: {refused[-5:]}"
        time.sleep(0.1)
    ended.add(on_victim[0])
    back = store.get(on_victim[-1], touch=False)
    print(f"cluster failover: store answers again {time.monotonic() - killed_at:.2f} s after the kill; "
          f"{len(refused)} calls refused ({sorted(set(refused))})")

    assert back is not None and back.sid == on_victim[-1]
    for s in sessions:
        got = store.get(s.sid, touch=False)
        assert (got is None) == (s.sid in ended), s.sid
    assert store.end(sessions[12].sid, "logout").clients == frozenset({"portal-a"})
    # New sessions land on every shard again, the promoted replica included.
    more = [store.create("citizen-y", 1, "acr", ["pwd"], "browser", "127.0.0.1", "UA")[0] for _ in range(30)]
    assert all(store.get(s.sid, touch=False) is not None for s in more)
    assert len(store.all_sids()) == 40 - len(ended) - 1 + 30
    client.close()
