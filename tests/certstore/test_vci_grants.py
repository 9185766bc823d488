"""certstore.vci.grants on a real Redis (the in-process stand-in without one): a pre-authorized code
redeems once even when many wallets race for it; tx_code attempts are counted; nothing readable is kept."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from certstore.vci.errors import InvalidGrant, InvalidToken
from certstore.vci.grants import MAX_TX_ATTEMPTS, GrantStore


@pytest.fixture
def store(redis_url: str | None, redis_prefix: str) -> Any:
    if redis_url:
        import redis

        client: Any = redis.Redis.from_url(redis_url)
    else:
        import fakeredis

        client = fakeredis.FakeRedis()
    yield GrantStore(b"k" * 32, redis=lambda: client, prefix=redis_prefix + "vci:"), client, redis_prefix


def test_racing_redemptions_of_one_code_give_one_token(store: Any) -> None:
    grants, _client, _prefix = store
    offer = grants.create_offer("CERT-1", "JZZM_sd_jwt")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def redeem() -> None:
        barrier.wait()
        try:
            grants.redeem(offer.code, offer.tx_code)
            results.append("ok")
        except InvalidGrant:
            results.append("refused")

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7


def test_wrong_tx_codes_are_counted_and_the_last_one_withdraws_the_code(store: Any) -> None:
    grants, _client, _prefix = store
    offer = grants.create_offer("CERT-2", "JZZM_sd_jwt")
    for left in range(MAX_TX_ATTEMPTS - 1, -1, -1):
        with pytest.raises(InvalidGrant, match=f"{left} attempts left" if left else "no attempts are left"):
            grants.redeem(offer.code, "wrong!")
    with pytest.raises(InvalidGrant, match="unknown, expired or already used"):
        grants.redeem(offer.code, offer.tx_code)


def test_redis_holds_no_code_tx_code_or_token_in_clear(store: Any) -> None:
    grants, client, prefix = store
    offer = grants.create_offer("CERT-3", "JZZM_sd_jwt")
    grant = grants.redeem(offer.code, offer.tx_code)
    token = grants.issue_token(grant)
    assert grants.token(token).identifier == "CERT-3"
    dump = b""
    for key in client.scan_iter(match=prefix + "vci:*"):
        dump += key + (client.get(key) or b"" if client.type(key) == b"string" else b"")
    assert offer.code.encode() not in dump and token.encode() not in dump and offer.tx_code.encode() not in dump
    with pytest.raises(InvalidToken):
        grants.token("ywvci_made-up")
    with pytest.raises(InvalidGrant):
        grants.redeem(None, offer.tx_code)
