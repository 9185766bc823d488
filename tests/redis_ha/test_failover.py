"""Issue 16: a Redis primary is killed in the middle of sign-ins (Sentinel, then Cluster).

A Sentinel set or a Cluster of this test's own (:mod:`tests.redis_ha.ha_support`,
``wait=1``): the idp application keeps signing citizens in from a thread
while a primary is SIGKILLed and its replica is promoted. It shows:

- every sign-in the idp answered before, during and after the failover has its
  session after it (creating a session WAITs for the replica), and the
  sessions ended before it stay ended (the end WAITs too);
- during the failover a sign-in is answered 503 (never 500) — on a Cluster,
  redis-py's client mostly waits the failover out instead —, and sign-ins
  succeed again on the same application object: no restart;
- every ended session's back-channel logout reaches the portal, including
  deliveries being retried (the portal answered 503) when the primary died:
  the jobs are on the job queue in the same Redis, and one lost in the
  failover is re-queued by the worker's sweep from its SQL row.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
import sqlalchemy as sa

from idp.models import Client
from idp.settings import IdpSettings
from tests.idp.logout_helpers import LocalRP, wait_until
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import FAST_HASH, ISSUER, authorize_code, exchange, make_rp
from tests.redis_ha.ha_support import PrivateCluster, PrivateSentinelSet


@pytest.fixture(params=["sentinel", "cluster"])
def ha_set(request):
    """A Sentinel set or a Cluster (three primaries with a replica each) of this test's own."""
    ha = (PrivateSentinelSet() if request.param == "sentinel" else PrivateCluster()).start()
    yield ha
    ha.close()


@pytest.fixture
def redis_url(ha_set):  # overrides the directory's shared Cluster / Sentinel
    return ha_set.url


@pytest.fixture
def idp_settings(yiwang_env):
    env = dict(yiwang_env, YIWANG_ISSUER=ISSUER, YIWANG_IDP_SESSION_SWEEP_SECONDS="1",
               YIWANG_IDP_LOGOUT_MIN_BACKOFF_MS="100", YIWANG_IDP_LOGOUT_MAX_BACKOFF_MS="300",
               YIWANG_IDP_LOGOUT_TIMEOUT_SECONDS="2")
    return IdpSettings.from_env(env).with_(**FAST_HASH, allow_loopback_callbacks=True)


def _claims(jwt: str) -> dict:
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class Unavailable(Exception):
    """A 503: Redis is away (the failover), nothing was handed out."""


class Interrupted(Exception):
    """A sign-in that could not go on: its flow, written just before the kill, was not on the replica yet."""


def test_sign_ins_survive_a_failover_and_no_logout_is_lost(app, idp_services, citizen, ha_set):
    portal = LocalRP().start()
    rp = make_rp(idp_services)
    with idp_services.db.session() as s:
        s.execute(sa.update(Client).where(Client.client_id == rp.client_id)
                  .values(backchannel_logout_uri=portal.uri))
    runtime = app.extensions["yiwang"]
    sessions = runtime.sessions
    runtime.logout.start_worker(threads=2, sweep=True)

    def sign_in() -> str:
        web = app.test_client()  # a new browser: a new session
        try:
            query, verifier = authorize_code(web, rp)
        except AssertionError as e:
            if "(503," in str(e):
                raise Unavailable from e
            raise Interrupted(str(e)[:300]) from e
        answer = exchange(web, rp, query["code"], verifier)
        if answer.status_code == 503:
            raise Unavailable
        assert answer.status_code == 200, answer.data
        return str(_claims(answer.get_json()["id_token"])["sid"])

    try:
        before = [sign_in() for _ in range(4)]
        ended = before[:2]
        for sid in ended:
            assert sessions.end(sid, "logout") is not None
        wait_until(lambda: {_claims(t)["sid"] for t in portal.tokens} >= set(ended), timeout=30)

        signed_in: list[tuple[float, str]] = []
        refused: list[float] = []
        interrupted: list[tuple[float, str]] = []
        broken: list[str] = []
        stop = threading.Event()

        def keep_signing_in() -> None:
            while not stop.is_set():
                try:
                    signed_in.append((time.monotonic(), sign_in()))
                except Unavailable:
                    refused.append(time.monotonic())
                    time.sleep(0.05)
                except Interrupted as e:
                    interrupted.append((time.monotonic(), str(e)))
                except Exception as e:  # noqa: BLE001 - reported below
                    broken.append(repr(e)[:300])

        thread = threading.Thread(target=keep_signing_in, daemon=True)
        thread.start()
        wait_until(lambda: len(signed_in) >= 3, timeout=30)
        # Deliveries in flight across the failover: the portal answers 503, so their retry
        # jobs sit on the queue (in this Redis) when the primary dies.
        portal.status = 503
        in_flight = [sign_in() for _ in range(2)]
        for sid in in_flight:
            assert sessions.end(sid, "logout") is not None
        ended = ended + in_flight
        wait_until(lambda: portal.requests >= 2, timeout=30)
        old = ha_set.kill_primary()
        killed_at = time.monotonic()
        ha_set.wait_for_promotion(old)
        promoted_at = time.monotonic()
        portal.status = 200  # the portal is back too: the retried deliveries must arrive
        # Sign-ins resume on the same application: no restart.
        wait_until(lambda: sum(1 for t, _ in signed_in if t > promoted_at) >= 3, timeout=30)
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

        assert broken == [], "a sign-in failed otherwise than with 503 or a lost flow"
        # A sign-in cut short by the failover is one that began just before it (at most
        # the replication lag of its flow is lost: the citizen starts again).
        assert all(killed_at <= t <= promoted_at + 5 for t, _ in interrupted), interrupted
        assert not any("(500," in why for _, why in interrupted), interrupted
        # Every sign-in that was answered has its session after the failover.
        answered = before + in_flight + [sid for _, sid in signed_in]
        for sid in answered:
            if sid in ended:
                assert sessions.get(sid, touch=False) is None, "a sign-out came back after the failover"
            else:
                assert sessions.get(sid, touch=False) is not None, "a session was lost in the failover"
        outage = [t for t in refused if t >= killed_at]
        print(f"failover: {len(outage)} sign-ins answered 503, promoted {promoted_at - killed_at:.2f} s "
              f"after the kill, first sign-in after it "
              f"{min(t for t, _ in signed_in if t > killed_at) - killed_at:.2f} s")

        # Sign everybody out: every portal session gets its back-channel logout, none lost.
        for sid in answered:
            if sid not in ended:
                assert sessions.end(sid, "logout") is not None
        told = lambda: {_claims(t)["sid"] for t in portal.tokens}  # noqa: E731
        wait_until(lambda: told() >= set(answered), timeout=30)
        assert told() == set(answered)
    finally:
        portal.stop()
