"""keys.redis_urls: the URL's scheme picks one server, a Sentinel set or a Cluster (no Redis needed)."""

from __future__ import annotations

import fakeredis
import pytest

from keys.redis_urls import bucket_of, hash_tag, is_cluster, parse_redis_url, target_of, wait_args


def test_one_server_is_the_default_and_waits_for_nothing():
    t = parse_redis_url("redis://127.0.0.1:6379/2")
    assert (t.mode, t.wait_replicas) == ("single", 0)
    assert parse_redis_url("unix:///run/redis.sock?db=1").mode == "single"
    assert parse_redis_url("rediss://h:6380/0").mode == "single"


def test_sentinel_urls_name_the_sentinels_the_service_and_the_database():
    t = parse_redis_url("redis+sentinel://app:s3cret@s1:26379,s2:26380,[::1]:26381/yiwang/3?wait_ms=50")
    assert t.mode == "sentinel"
    assert t.nodes == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    assert (t.service, t.db, t.username, t.password) == ("yiwang", 3, "app", "s3cret")
    assert (t.wait_replicas, t.wait_ms) == (1, 50)
    assert "s3cret" not in repr(t)  # a URL's password never reaches a log through repr


def test_cluster_urls_name_startup_nodes_and_may_turn_waiting_off():
    t = parse_redis_url("redis+cluster://n1:7000,n2:7001?wait=0")
    assert (t.mode, t.nodes, t.wait_replicas) == ("cluster", (("n1", 7000), ("n2", 7001)), 0)
    assert parse_redis_url("rediss+cluster://n1:7000").tls


@pytest.mark.parametrize("url", [
    "redis+sentinel://s1:26379",  # no service
    "redis+sentinel://s1:26379/svc/x",  # database not a number
    "redis+cluster://n1:7000/3",  # a cluster has database 0 only
    "redis+cluster://n1:port",
    "redis+cluster://",
    "memcached://h:11211",
    "redis+cluster://n1:7000?wait=many",
])
def test_malformed_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_redis_url(url)


def test_hash_tags_and_buckets():
    assert hash_tag("sso:7") == "{sso:7}"
    with pytest.raises(ValueError):
        hash_tag("a{b")
    assert bucket_of("sid-1", 256) == bucket_of("sid-1", 256)  # the same in every process
    assert len({bucket_of(f"sid-{i}", 256) for i in range(2000)}) > 250  # and spread


def test_a_client_made_elsewhere_counts_as_one_server():
    client = fakeredis.FakeRedis()
    assert target_of(client).mode == "single" and not is_cluster(client)
    assert wait_args(client) is None
