"""Back-channel logout: logout tokens, durable deliveries, retries, restarts, expiry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp.logout.tokens import BACKCHANNEL_LOGOUT_EVENT
from idp.models import LogoutDelivery, TokenRecord, utcnow
from tests.idp.logout_helpers import LocalRP, make_stack, seed, verify_logout_token, wait_until

FAST = {
    "YIWANG_IDP_LOGOUT_MIN_BACKOFF_MS": "100",
    "YIWANG_IDP_LOGOUT_MAX_BACKOFF_MS": "300",
    "YIWANG_IDP_LOGOUT_TIMEOUT_SECONDS": "2",
}


@pytest.fixture
def env(yiwang_env):
    return {**yiwang_env, **FAST}


@pytest.fixture
def rp():
    server = LocalRP()
    yield server
    server.stop()


def _rows(stack):
    with stack.database.session() as db:
        return db.scalars(sa.select(LogoutDelivery).order_by(LogoutDelivery.id)).all()


def _sign_in(stack, citizen_id, *client_ids):
    session, _cookie = stack.sessions.create(
        str(citizen_id), 1_800_000_000, "urn:yiwang:acr:pwd", ["pwd"], "browser", "127.0.0.1", "UA"
    )
    for c in client_ids:
        stack.sessions.add_client(session.sid, c)
    return session


def test_logout_token_has_every_claim_and_validates_with_the_jwks(env, rp):
    stack = make_stack(env, create_schema=True)
    try:
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri, "portal-b": None})
        session = _sign_in(stack, citizen, "portal-a", "portal-b")
        stack.logout.start_worker(sweep=False)
        stack.sessions.end(session.sid, "logout")
        wait_until(lambda: rp.tokens)
        claims = verify_logout_token(
            rp.tokens[0],
            stack.keyring.keyset("idp-token").jwks(),
            issuer=stack.settings.issuer,
            client_id="portal-a",
        )
        assert claims["sid"] == session.sid
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert claims["exp"] - claims["iat"] == 120
        assert claims["sub"] and claims["sub"] != str(citizen)  # pairwise, not the row id
        assert rp.content_types[0].startswith("application/x-www-form-urlencoded")
        wait_until(lambda: _rows(stack)[0].status == "delivered")
        # Only the client with a back-channel URI gets a delivery.
        assert [r.client_id for r in _rows(stack)] == ["portal-a"]
    finally:
        stack.close()


def test_rp_down_then_back_gets_its_token_across_a_restart(env, rp):
    first = make_stack(env, create_schema=True)
    citizen = seed(first.database, backchannel={"portal-a": rp.uri})
    session = _sign_in(first, citizen, "portal-a")
    first.logout.start_worker(sweep=False)
    first.sessions.end(session.sid, "logout")
    # The RP is not listening: attempts fail and are retried with backoff.
    wait_until(lambda: _rows(first)[0].attempts >= 2)
    row = _rows(first)[0]
    assert row.status == "pending" and "connection failed" in row.last_error
    first.close()  # the idp stops; its in-process queue (or its worker) goes away

    # Lose the queued job as a Redis flush or a restarted embedded idp would.
    for key in first.redis.scan_iter(match=first.prefix.split("idp:")[0] + "*"):
        if b"dramatiq" in key or b"logout:job:" in key:
            first.redis.delete(key)

    rp.start()
    second = make_stack(env)  # a fresh process: new broker, new worker, same DB and Redis
    try:
        second.logout.start_worker(sweep=False)  # start-up recovery re-queues the lost job
        wait_until(lambda: _rows(second)[0].status == "delivered")
        assert len(rp.tokens) == 1
        claims = verify_logout_token(
            rp.tokens[0],
            second.keyring.keyset("idp-token").jwks(),
            issuer=second.settings.issuer,
            client_id="portal-a",
        )
        assert claims["sid"] == session.sid
    finally:
        second.close()


def test_retry_keeps_the_same_jti(env, rp):
    stack = make_stack(env, create_schema=True)
    try:
        rp.status = 503
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri})
        session = _sign_in(stack, citizen, "portal-a")
        stack.logout.start_worker(sweep=False)
        stack.sessions.end(session.sid, "logout")
        wait_until(lambda: rp.requests >= 2)
        assert _rows(stack)[0].last_error == "HTTP 503"
        rp.status = 200
        wait_until(lambda: _rows(stack)[0].status == "delivered")
        row = _rows(stack)[0]
        assert row.attempts >= 3
        from idp.logout.delivery import delivery_jti

        claims = verify_logout_token(
            rp.tokens[0], stack.keyring.keyset("idp-token").jwks(), issuer=stack.settings.issuer, client_id="portal-a"
        )
        assert claims["jti"] == delivery_jti(stack.settings.issuer, row)
    finally:
        stack.close()


def test_4xx_is_failed_and_not_retried(env, rp):
    stack = make_stack(env, create_schema=True)
    try:
        rp.status = 400
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri})
        session = _sign_in(stack, citizen, "portal-a")
        stack.logout.start_worker(sweep=False)
        stack.sessions.end(session.sid, "logout")
        wait_until(lambda: _rows(stack)[0].status == "failed")
        stack.logout.queue.join()
        row = _rows(stack)[0]
        assert (row.attempts, row.last_error, rp.requests) == (1, "HTTP 400", 1)
        # The recovery sweep leaves failed rows alone.
        assert stack.logout.service.resend_pending(only_lost=False) == 0
    finally:
        stack.close()


def test_gives_up_after_the_retry_window(env, rp):
    stack = make_stack({**env, "YIWANG_IDP_LOGOUT_RETRY_SECONDS": "0"}, create_schema=True)
    try:
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri})  # never listening
        session = _sign_in(stack, citizen, "portal-a")
        stack.logout.start_worker(sweep=False)
        stack.sessions.end(session.sid, "logout")
        wait_until(lambda: _rows(stack)[0].status == "failed")
        assert _rows(stack)[0].last_error.startswith("gave up")
    finally:
        stack.close()


def test_expiry_sweep_fires_back_channel_logout(env, rp):
    stack = make_stack({**env, "YIWANG_IDP_SESSION_IDLE_SECONDS": "1"}, create_schema=True)
    try:
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri})
        session = _sign_in(stack, citizen, "portal-a")
        # Redis expiry alone would fire nothing; the worker's sweep ends it.
        stack.sessions._clock = lambda: utcnow().timestamp() + 5  # two seconds past idle
        stack.logout.start_worker(sweep=True)
        wait_until(lambda: rp.tokens)
        row = _rows(stack)[0]
        assert row.reason == "idle_timeout"
        claims = verify_logout_token(
            rp.tokens[0], stack.keyring.keyset("idp-token").jwks(), issuer=stack.settings.issuer, client_id="portal-a"
        )
        assert claims["sid"] == session.sid
        assert stack.sessions.get(session.sid) is None
    finally:
        stack.close()


def _token(citizen, sid, jti, *, offline=False, kind="refresh"):
    return TokenRecord(
        jti=jti,
        kind=kind,
        client_id="portal-a",
        citizen_id=citizen,
        sid=sid,
        offline=offline,
        expires_at=utcnow().replace(year=utcnow().year + 1),
    )


def test_ending_a_session_revokes_its_tokens_and_sign_out_everywhere_offline_ones(env):
    stack = make_stack(env, create_schema=True)
    try:
        citizen = seed(stack.database, backchannel={"portal-a": None})
        one = _sign_in(stack, citizen, "portal-a")
        two = _sign_in(stack, citizen, "portal-a")
        with stack.database.session() as db:
            db.add_all(
                [
                    _token(citizen, one.sid, "a1", kind="access"),
                    _token(citizen, one.sid, "r1"),
                    _token(citizen, two.sid, "r2"),
                    _token(citizen, one.sid, "off1", offline=True),
                ]
            )

        def revoked():
            with stack.database.session() as db:
                return {t.jti for t in db.scalars(sa.select(TokenRecord)) if t.revoked_at is not None}

        stack.sessions.end(one.sid, "logout")
        assert revoked() == {"a1", "r1"}  # the other session's and the offline token live on
        assert stack.logout.service.tokens.is_revoked("a1")  # JWT access tokens refused at once
        stack.sessions.end_all_for_citizen(str(citizen), "sign_out_everywhere")
        assert revoked() == {"a1", "r1", "r2", "off1"}
        assert _rows(stack) == []  # no back-channel URI registered: nothing to deliver
    finally:
        stack.close()


def test_rs256_client_gets_an_rs256_logout_token(env, rp):
    from idp.models import Client

    stack = make_stack(env, create_schema=True)
    try:
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-rs": rp.uri})
        with stack.database.session() as db:
            db.get(Client, "portal-rs").id_token_signed_response_alg = "RS256"  # noqa: S105
        session = _sign_in(stack, citizen, "portal-rs")
        stack.logout.start_worker(sweep=False)
        stack.sessions.end(session.sid, "logout")
        wait_until(lambda: rp.tokens)
        jwks = {"keys": stack.keyring.keyset("idp-token").jwks()["keys"]
                + stack.keyring.keyset("idp-token-rs256", algorithm="RS256").jwks()["keys"]}
        import base64
        import json

        header = json.loads(base64.urlsafe_b64decode(rp.tokens[0].split(".")[0] + "=="))
        assert header["alg"] == "RS256"
        claims = verify_logout_token(rp.tokens[0], jwks, issuer=stack.settings.issuer, client_id="portal-rs")
        assert claims["sid"] == session.sid
    finally:
        stack.close()


class _DownDatabase:
    def session(self):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_session_ending_while_the_database_is_down_is_told_later(env, rp):
    stack = make_stack(env, create_schema=True)
    try:
        rp.start()
        citizen = seed(stack.database, backchannel={"portal-a": rp.uri})
        session = _sign_in(stack, citizen, "portal-a")
        service = stack.logout.service
        real = service.database
        service.database = _DownDatabase()
        assert stack.sessions.end(session.sid, "logout") is not None  # the sign-out itself works
        assert service.record_parked() == 0  # still down: stays parked
        service.database = real
        assert _rows(stack) == []
        stack.logout.start_worker(sweep=False)
        service.sweep()
        wait_until(lambda: rp.tokens)
        claims = verify_logout_token(
            rp.tokens[0], stack.keyring.keyset("idp-token").jwks(), issuer=stack.settings.issuer, client_id="portal-a"
        )
        assert claims["sid"] == session.sid
        assert [r.reason for r in _rows(stack)] == ["logout"]
    finally:
        stack.close()
