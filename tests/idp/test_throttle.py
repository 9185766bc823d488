"""Failed-login throttling: tiers, per-IP limits, resets, and what the keys reveal."""

from __future__ import annotations

import pytest
from limits.storage import MemoryStorage

from idp.services import Services
from idp.throttle import ACCOUNT_TIERS, IP_TIERS, Throttle
from tests.conftest import TEST_REDIS_URL
from tests.idp.data_helpers import *  # noqa: F403
from tests.idp.data_helpers import make_id

ALICE = make_id("11010519491231002")


def _throttle(services: Services, account: str, ip: str) -> Throttle:
    """A throttle on the same storage as the services' (real Redis in CI), other tiers."""
    return Throttle(services.throttle.storage, account_tiers=account, ip_tiers=ip)


def test_default_tiers_grow() -> None:
    t = Throttle(MemoryStorage())
    assert [(i.amount, i.get_expiry()) for i in t.account_tiers] == [(5, 60), (10, 900), (20, 3600)]
    assert [(i.amount, i.get_expiry()) for i in t.ip_tiers] == [(30, 60), (100, 3600)]
    assert ACCOUNT_TIERS and IP_TIERS


def test_an_account_is_locked_after_its_limit_and_says_how_long(services: Services) -> None:
    t = _throttle(services, "3/minute;5/hour", "1000/hour")
    for _ in range(3):
        assert t.check("idx-a", "192.0.2.1").allowed
        t.hit("idx-a", "192.0.2.1")
    decision = t.check("idx-a", "192.0.2.1")
    assert not decision.allowed and decision.scope == "account"
    assert 0 < decision.retry_after_seconds <= 60
    # another account from the same address is not affected
    assert t.check("idx-b", "192.0.2.1").allowed


def test_a_longer_tier_gives_a_longer_lock(services: Services) -> None:
    t = _throttle(services, "50/minute;4/hour", "1000/hour")
    for _ in range(4):
        t.hit("idx-a", None)
    decision = t.check("idx-a", None)
    assert not decision.allowed and 60 < decision.retry_after_seconds <= 3600


def test_an_address_guessing_many_accounts_is_locked(services: Services) -> None:
    t = _throttle(services, "5/minute", "4/minute")
    for n in range(4):
        assert t.check(f"idx-{n}", "198.51.100.7").allowed
        t.hit(f"idx-{n}", "198.51.100.7")
    decision = t.check("idx-fresh", "198.51.100.7")
    assert not decision.allowed and decision.scope == "ip"
    assert t.check("idx-fresh", "198.51.100.8").allowed


def test_success_resets_the_account_but_not_the_address(services: Services) -> None:
    t = _throttle(services, "2/minute", "3/minute")
    t.hit("idx-a", "192.0.2.5")
    t.hit("idx-a", "192.0.2.5")
    assert not t.check("idx-a", None).allowed
    t.reset("idx-a")
    assert t.check("idx-a", None).allowed
    t.hit("idx-b", "192.0.2.5")
    decision = t.check("idx-c", "192.0.2.5")
    assert not decision.allowed and decision.scope == "ip"


def test_the_lock_is_keyed_on_what_was_typed_not_on_an_account(services: Services) -> None:
    """A number with no account and one with an account lock identically."""
    services.accounts.add(ALICE, "张三", "correct horse")
    missing = make_id("44030019900101123")
    t = _throttle(services, "3/minute", "1000/hour")
    decisions = {}
    for number in (ALICE, missing):
        index = services.accounts.index_of(number)
        for _ in range(3):
            t.hit(index, "192.0.2.9")
        d = t.check(index, "192.0.2.9")
        decisions[number] = (d.allowed, d.scope)
    assert decisions[ALICE] == decisions[missing] == (False, "account")


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs YIWANG_TEST_REDIS_URL")
def test_counters_live_in_redis_under_the_prefix_without_the_number(
    services: Services, redis_prefix: str
) -> None:
    import redis

    for _ in range(2):
        services.accounts.login(ALICE, "wrong horse", ip="192.0.2.44")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        keys = [k.decode() for k in client.scan_iter(match=redis_prefix + "*")]
    finally:
        client.close()
    assert keys, "no throttle counters in Redis"
    assert all(k.startswith(redis_prefix + "idp:throttle") for k in keys)
    index = services.accounts.index_of(ALICE)
    assert any(index in k for k in keys)
    for k in keys:
        assert ALICE not in k and ALICE[6:14] not in k
    # a second idp instance (another Throttle on the same Redis) sees the same counts
    other = Services.build(services.settings, pii=services.pii, db=services.db)
    try:
        for _ in range(3):
            other.accounts.login(ALICE, "wrong horse", ip="192.0.2.45")
        assert services.accounts.login(ALICE, "wrong horse", ip="192.0.2.46").status == "throttled"
    finally:
        other.redis.close()


def test_with_redis_a_clean_record_costs_one_lookup_and_failures_still_count(services: Services, monkeypatch) -> None:
    if TEST_REDIS_URL is None:
        pytest.skip("the shortcut is for the Redis storage")
    t = Throttle(services.throttle.storage, account_tiers="2/minute", ip_tiers="1000/hour", redis=services.redis)
    asked: list[str] = []
    original = t.limiter.get_window_stats
    monkeypatch.setattr(t.limiter, "get_window_stats", lambda item, *ids: asked.append(ids[0]) or original(item, *ids))
    decision = t.check("idx-clean", "192.0.2.9")
    assert decision.allowed and not decision.account_failures
    assert asked == []  # one EXISTS, not a window per tier
    t.hit("idx-clean", "192.0.2.9")
    decision = t.check("idx-clean", "192.0.2.9")
    assert decision.allowed and decision.account_failures and asked  # the limiter decides now
    t.hit("idx-clean", "192.0.2.9")
    assert not t.check("idx-clean", "192.0.2.9").allowed
    t.reset("idx-clean")
    assert t.check("idx-clean", "192.0.2.10").allowed


def test_remaining_counts_down_on_the_tightest_tier_and_names_its_window(services: Services) -> None:
    t = _throttle(services, "3/minute;5/hour", "1000/hour")
    assert t.remaining("idx-r") == (3, 60)
    t.hit("idx-r", "192.0.2.1")
    assert t.remaining("idx-r") == (2, 60)
    t.hit("idx-r", None)
    t.hit("idx-r", None)
    assert t.remaining("idx-r") == (0, 60)
    t.reset("idx-r")
    assert t.remaining("idx-r") == (3, 60)
    loose = _throttle(services, "50/minute;2/hour", "1000/hour")
    loose.hit("idx-h", None)
    assert loose.remaining("idx-h") == (1, 3600)
