"""Redis Sentinel and Redis Cluster for the tests in this directory (issue 16, docs/redis-ha.md).

``.ci/prepare`` starts both on loopback from the system redis-server: a 3-node
Cluster on 7000-7002 and a Sentinel set (primary 6380, replica 6381, sentinels
26380-26382, service ``yiwang-ha``). Every test here that takes ``redis_url``
runs once on each (the fixture overrides the suite's), under a key prefix of
its own that is removed afterwards. Absent, the tests are skipped on a
developer's machine and FAIL in CI (``CI=true``): the cluster tests must not
silently stop running.

The failover test starts a Sentinel set of its own (:mod:`tests.redis_ha.ha_support`):
it kills a primary, which must not disturb the shared set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from keys.redis_urls import connect

CLUSTER_URL = os.environ.get(
    "YIWANG_TEST_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002?wait=0")
"""The CI cluster has no replicas: nothing to WAIT for (``wait=0``)."""
SENTINEL_URL = os.environ.get(
    "YIWANG_TEST_REDIS_SENTINEL_URL", "redis+sentinel://127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382/yiwang-ha/0")
URLS = {"cluster": CLUSTER_URL, "sentinel": SENTINEL_URL}


def _answers(url: str) -> str | None:
    try:
        client = connect(url, timeout=1)
        try:
            client.ping()
            if "cluster" in url and client.cluster_info().get("cluster_state") != "ok":
                return "the cluster state is not ok"
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - any failure means "not there"
        return f"{type(e).__name__}: {e}"
    return None


def require(mode: str) -> str:
    """The URL of the shared ``mode`` set; skip (fail in CI) when it does not answer."""
    url = URLS[mode]
    why = _answers(url)
    if why is not None:
        message = f"Redis {mode} not running on loopback ({why}); run .ci/prepare"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def drop_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (on every node of a cluster)."""
    client = connect(url)
    try:
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)
        # The job queue's namespace is a hash tag on a cluster: "{<prefix>dramatiq}…".
        for key in list(client.scan_iter(match="{" + prefix + "*", count=1000)):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(params=["cluster", "sentinel"])
def redis_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url(redis_mode: str, redis_prefix: str) -> Iterator[str]:
    """Overrides the suite's: this test's Redis is the shared Cluster or Sentinel set."""
    url = require(redis_mode)
    yield url
    drop_prefix(url, redis_prefix)


@pytest.fixture
def ha_client(redis_url: str) -> Iterator[object]:
    client = connect(redis_url)
    yield client
    client.close()
