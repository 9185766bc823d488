"""Authorization codes and pushed requests in Redis: single use, atomic, expiring."""

from __future__ import annotations

import threading
import time

from idp.oauth.codes import AuthorizationCode, CodeStore
from idp.oauth.par import PushedRequestStore
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _code() -> AuthorizationCode:
    return AuthorizationCode(client_id="c", redirect_uri="https://x/cb", scope="openid", citizen_id="1",
                             sid="s", auth_time=1, acr="a", amr=["pwd"], nonce="n")


def test_code_is_consumed_once_even_under_concurrency(redis_client, redis_prefix):
    store = CodeStore(redis_client, redis_prefix)
    code = store.issue(_code())
    results: list[str] = []
    barrier = threading.Barrier(8)

    def take():
        barrier.wait()
        results.append(store.consume(code).status)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["replayed"] * 7


def test_unknown_and_expired_codes(redis_client, redis_prefix):
    store = CodeStore(redis_client, redis_prefix, ttl_seconds=1)
    assert store.consume("nope").status == "unknown"
    code = store.issue(_code())
    time.sleep(1.2)
    assert store.consume(code).status == "unknown"


def test_code_round_trips_its_data_and_is_stored_hashed(redis_client, redis_prefix):
    store = CodeStore(redis_client, redis_prefix)
    code = store.issue(_code())
    assert not any(code in k.decode() for k in redis_client.scan_iter(match=redis_prefix + "*"))
    got = store.consume(code).code
    assert got.nonce == "n" and got.get_amr() == ["pwd"] and got.code_hash


def test_pushed_request_single_use_and_bound_to_client(redis_client, redis_prefix):
    store = PushedRequestStore(redis_client, redis_prefix)
    uri = store.push("c1", {"scope": "openid"})
    assert store.take(uri, "c2") is None  # another client's: refused (and burnt)
    uri = store.push("c1", {"scope": "openid"})
    assert store.take(uri, "c1") == {"scope": "openid"}
    assert store.take(uri, "c1") is None
    assert store.take("urn:other:x", "c1") is None


def test_expired_code_at_token_endpoint_is_invalid_grant(app_with, citizen, rp):
    web = app_with(code_seconds=1).test_client()
    q, v = authorize_code(web, rp)
    time.sleep(1.2)
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
