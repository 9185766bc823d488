"""Every Redis user of both services on a real Redis Cluster and a real Sentinel set.

Each test runs twice (``redis_mode``: cluster, sentinel). On the cluster, a
command, transaction or script that touched keys of two slots would fail with
CROSSSLOT: these tests go through each store's multi-key paths.
"""

from __future__ import annotations

import time

import dramatiq
import pytest
from dramatiq import Worker

from idp.device import DeviceApproval, DeviceCodeStore
from idp.oauth.codes import AuthorizationCode, CodeStore
from idp.redis import Keyspace, get_many
from idp.sessions import SESSION_SHARDS, SessionStore
from keys.jobqueue import redis_broker
from keys.redis_urls import is_cluster


def _store(client, prefix, clock=time.time):
    return SessionStore(client, Keyspace(prefix), idle_seconds=600, max_seconds=3600, clock=clock)


def _slot(client, key: str) -> int:
    return int(client.keyslot(key)) if is_cluster(client) else 0


def test_a_sessions_keys_move_together_and_sessions_spread_over_the_cluster(ha_client, redis_prefix):
    store = _store(ha_client, redis_prefix)
    sessions = [store.create(f"c{i}", 1, "acr", ["pwd"], "browser", "127.0.0.1", "UA")[0] for i in range(24)]
    for s in sessions:
        store.add_client(s.sid, "portal-a")
        store.add_cas_ticket(s.sid, "cas-b", "ST-" + s.sid)
        keys = [store._k(s.sid), store._kc(s.sid), store._kt(s.sid), store._kexp(s.sid)]
        assert len({_slot(ha_client, k) for k in keys}) == 1, keys
    if is_cluster(ha_client):
        nodes = {ha_client.get_node_from_key(store._k(s.sid)).name for s in sessions}
        assert len(nodes) == 3, "24 sessions over 256 tags land on every node of the cluster"
        assert len(store._expiry_indexes()) == SESSION_SHARDS
    else:
        assert store._k("x") == f"{redis_prefix}idp:sso:s:x"  # one server / Sentinel: the old names


def test_session_life_cycle(ha_client, redis_prefix):
    now = [1_800_000_000]
    store = _store(ha_client, redis_prefix, clock=lambda: now[0])
    ended: list[tuple[str, str]] = []
    store.on_session_end(lambda s, reason: ended.append((s.sid, reason)))
    a, cookie = store.create("citizen-1", now[0], "acr", ["pwd"], "browser", "127.0.0.1", "UA")
    b, _ = store.create("citizen-1", now[0], "acr", ["pwd"], "app", "127.0.0.1", "UA")
    c, _ = store.create("citizen-2", now[0], "acr", ["pwd"], "browser", "127.0.0.1", "UA")
    store.add_client(a.sid, "portal-a")
    store.add_client(a.sid, "portal-b")
    store.add_cas_ticket(a.sid, "cas-c", "ST-1")

    assert store.get_by_cookie(cookie).sid == a.sid
    assert store.get_by_cookie(cookie[:-2] + "xx") is None
    assert {s.sid for s in store.list_for_citizen("citizen-1")} == {a.sid, b.sid}
    assert set(store.all_sids()) == {a.sid, b.sid, c.sid}
    stepped = store.update_auth(a.sid, auth_time=now[0] + 5, acr="acr2", amr=["pwd", "otp"])
    assert stepped.acr == "acr2"

    gone = store.end(a.sid, "logout")
    assert gone.clients == frozenset({"portal-a", "portal-b", "cas-c"})
    assert gone.cas_tickets == (("cas-c", "ST-1"),)
    assert store.end(a.sid, "logout") is None  # exactly once
    assert [s.sid for s in store.list_for_citizen("citizen-1")] == [b.sid]
    assert {s.sid for s in store.end_all_for_citizen("citizen-1", "sign_out_everywhere")} == {b.sid}

    now[0] += 601  # c is idle past its deadline: the sweep ends it through end()
    assert [s.sid for s in store.sweep_expired()] == [c.sid]
    assert store.all_sids() == []
    assert ended == [(a.sid, "logout"), (b.sid, "sign_out_everywhere"), (c.sid, "idle_timeout")]


def test_codes_are_single_use_and_replays_are_recognised(ha_client, redis_prefix):
    codes = CodeStore(ha_client, redis_prefix)
    code = codes.issue(AuthorizationCode("rp", "https://rp/cb", "openid", "1", "sid", 1, "acr", ["pwd"]),
                       also=lambda pipe: pipe.set(redis_prefix + "elsewhere", "1"))
    assert codes.consume(code).status == "ok"
    assert codes.consume(code).status == "replayed"
    assert codes.consume("nonsense").status == "unknown"


def test_device_codes_are_decided_and_taken_once(ha_client, redis_prefix):
    store = DeviceCodeStore(ha_client, redis_prefix)
    store.save("kiosk", "openid", {"device_code": "dev-1", "user_code": "BCDF-GHJK", "expires_in": 600,
                                   "interval": 5})
    assert store.pending_for_user_code("bcdf ghjk")["client_id"] == "kiosk"
    approval = DeviceApproval(citizen_id=1, public_id="p", sid="s", auth_time=1, acr="a", amr=("pwd",))
    assert store.decide("BCDF-GHJK", approval=approval) == "kiosk"
    assert store.decide("BCDF-GHJK", approval=None) is None
    dh = store.credential("dev-1")["device_code_hash"]
    assert store.take_approved(dh, "BCDF-GHJK").citizen_id == 1
    assert store.take_approved(dh, "BCDF-GHJK") is None
    assert store.pending_for_user_code("BCDF-GHJK") is None
    for _ in range(10):
        store.miss("sid-1", account="acct", ip="10.0.0.1")
    assert store.locked_out("sid-1", account="other", ip="10.0.0.2")
    assert get_many(ha_client, [redis_prefix + "none-1", redis_prefix + "none-2"]) == [None, None]


def test_throttle_counts_and_clears(ha_client, redis_prefix, yiwang_env):
    from idp.settings import IdpSettings
    from idp.throttle import Throttle, make_throttle_storage

    settings = IdpSettings.from_env(yiwang_env)
    throttle = Throttle(make_throttle_storage(settings, ha_client, Keyspace(redis_prefix)), redis=ha_client)
    assert throttle.check("acct", "10.0.0.9").allowed
    for _ in range(5):
        throttle.hit("acct", "10.0.0.9")
    decision = throttle.check("acct", "10.0.0.9")
    assert not decision.allowed and decision.scope == "account"
    throttle.reset("acct")
    assert throttle.check("acct", "10.0.0.9").allowed


def test_wallet_sessions_end_by_idp_session(ha_client, redis_prefix):
    from certstore.wallet_sessions import WalletSessions

    wallet = WalletSessions(ha_client, prefix=redis_prefix)
    one = wallet.create({"name": "x"}, sid="idp-sid", sub="sub-1")
    two = wallet.create({"name": "y"}, sid="idp-sid", sub="sub-1")
    assert wallet.get(one)["name"] == "x"
    assert wallet.end(sid="idp-sid", sub="sub-1") == 2
    assert wallet.get(two) is None
    assert wallet.first_use_of_jti("jti-1", 60) and not wallet.first_use_of_jti("jti-1", 60)


def test_the_job_queue_runs_its_jobs(redis_url, redis_prefix):
    broker = redis_broker(url=redis_url, namespace=f"{redis_prefix}dramatiq", middleware=[],
                          requeue_seconds=3)
    if is_cluster(broker.client):
        assert broker.namespace == "{" + redis_prefix + "dramatiq}"  # one slot for Dramatiq's scripts
    done: list[int] = []
    actor = dramatiq.Actor(lambda n: done.append(n), broker=broker, actor_name="ha_job", queue_name="ha",
                           priority=0, options={})
    for n in range(5):
        actor.send(n)
    worker = Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(done) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.maintain()  # the forced heartbeat-and-maintenance round works on this Redis too
    finally:
        worker.stop()
        broker.close()
    assert sorted(done) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("url", ["redis+sentinel://h:1/svc", "redis+cluster://h:1"])
def test_bad_urls_are_refused_early(url):
    from keys.redis_urls import parse_redis_url

    parse_redis_url(url)  # well-formed
    with pytest.raises(ValueError):
        parse_redis_url(url.replace("/svc", "") if "sentinel" in url else url + "/3")
