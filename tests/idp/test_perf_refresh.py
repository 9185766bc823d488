"""Issue 16, round 2, the refresh grant: one pooled connection per token request, snapshots
and audit records batched; the answers and the failure rules stay those of the slow path."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import sqlalchemy as sa

from idp.oauth.snapshots import SnapshotWriter
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _postgres_only(services):
    if services.db.dialect != "postgresql":
        pytest.skip("the direct path is PostgreSQL's")


def _checkouts_in_this_thread(engine):
    seen: list[int] = []
    me = threading.get_ident()

    def count(*_args):
        if threading.get_ident() == me:
            seen.append(1)

    sa.event.listen(engine, "checkout", count)
    return seen, lambda: sa.event.remove(engine, "checkout", count)


def _direct_checkouts(monkeypatch):
    """Checkouts made for the direct path's statements (the ORM's own, such as a client look-up, aside)."""
    from idp.oauth import pgdirect

    seen: list[int] = []
    take = pgdirect._Slot.take

    def counting(self):
        if self.fairy is None:
            seen.append(1)
        return take(self)

    monkeypatch.setattr(pgdirect._Slot, "take", counting)
    return seen


def test_statements_in_one_block_share_one_connection_and_it_goes_back_as_the_pool_hands_it_out(idp_services):
    from idp.db import make_engine
    from idp.oauth.pgdirect import Direct, one_connection

    _postgres_only(idp_services)
    engine = make_engine(idp_services.db.url, pool_size=2, max_overflow=0)
    try:
        backend = Direct(sa.select(sa.func.pg_backend_pid()), engine)
        seen, stop = _checkouts_in_this_thread(engine)
        with one_connection(engine):
            first = backend.rows(engine, {})[1][0][0]
            with one_connection(engine):  # a nested block joins the outer one
                second = backend.rows(engine, {})[1][0][0]
        stop()
        assert first == second and len(seen) == 1
        with engine.connect() as c:
            assert c.connection.driver_connection.autocommit is False
        with one_connection(engine):
            pass  # nothing ran: nothing was checked out
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


def test_a_lost_connection_in_a_block_is_sqlalchemys_error_and_the_next_statement_gets_another(idp_services):
    from idp.db import make_engine
    from idp.oauth.pgdirect import Direct, one_connection

    _postgres_only(idp_services)
    engine = make_engine(idp_services.db.url, pool_size=1, max_overflow=0)
    try:
        backend = Direct(sa.select(sa.func.pg_backend_pid()), engine)
        with one_connection(engine):
            pid = backend.rows(engine, {})[1][0][0]
            with idp_services.db.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(sa.exc.OperationalError):  # the web layer's 503, as outside a block
                backend.rows(engine, {})
            again = backend.rows(engine, {})[1][0][0]
            assert again != pid
        assert engine.pool.checkedout() == 0  # the pool of one was not leaked
    finally:
        engine.dispose()


def test_a_refresh_checks_out_one_connection_and_answers_as_before(app, web, citizen, rp, idp_services,
                                                                    monkeypatch):
    _postgres_only(idp_services)
    q, v = authorize_code(web, rp, scope="openid profile offline_access")
    rt = exchange(web, rp, q["code"], v).get_json()["refresh_token"]
    seen = _direct_checkouts(monkeypatch)
    resp = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=rp.basic())
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert body["refresh_token"] != rt and body["id_token"] and body["access_token"]
    assert len(seen) == 1  # the take and the new records on one checkout
    # The chain goes on from the new token, again on one checkout.
    seen.clear()
    newer = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                     headers=rp.basic())
    assert newer.status_code == 200 and len(seen) == 1


class _CountingRedis:
    """Records what each pipeline sent."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str, int]]] = []

    def pipeline(self, transaction: bool = True):
        outer = self

        class _Pipe:
            def __init__(self) -> None:
                self.sets: list[tuple[str, str, int]] = []

            def set(self, key, value, ex):
                self.sets.append((key, value, ex))

            def execute(self):
                outer.batches.append(self.sets)
                return [True] * len(self.sets)

        return _Pipe()


def test_snapshots_put_within_the_linger_go_out_in_one_round_trip():
    redis = _CountingRedis()
    writer = SnapshotWriter(redis, linger_seconds=0.3)
    writer.put("a", "1", 60)
    writer.put("b", "2", 60)
    writer.put("c", "3", 0)
    assert writer.flush(timeout=5)
    assert redis.batches == [[("a", "1", 60), ("b", "2", 60), ("c", "3", 1)]]


def test_a_snapshot_is_written_within_the_linger_without_a_flush():
    redis = _CountingRedis()
    writer = SnapshotWriter(redis, linger_seconds=0.05)
    writer.put("a", "1", 60)
    deadline = time.monotonic() + 5
    while not redis.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert redis.batches == [[("a", "1", 60)]]


def test_the_audit_chain_appended_by_the_prebuilt_statements_verifies(idp_services):
    from idp.audit import AuditLog

    log = AuditLog(idp_services.db, keyring=idp_services.keyring, background=True, linger_seconds=0.01)
    try:
        for i in range(30):
            log.record("token.grant", client_id="c1", detail={"grant_type": "refresh_token", "n": i})
        log.flush()
        log.record("token.grant", client_id="c1", detail={"n": 30})  # a batch of one after the batches
        log.flush()
    finally:
        log.close()
    report = log.verify()
    assert report.intact, report
    with idp_services.db.session() as s:
        head = s.execute(sa.text("SELECT seq FROM audit_head")).scalar_one()
        last = s.execute(sa.text("SELECT max(seq) FROM audit_event")).scalar_one()
        grants = s.execute(sa.text("SELECT count(*) FROM audit_event WHERE kind = 'token.grant'")).scalar_one()
    assert grants == 31 and head == last


class _NoDatabase:
    """What BatchWriter needs of a database: a session to pass to ``append``."""

    @contextlib.contextmanager
    def session(self):
        yield None


def test_audit_records_put_within_the_linger_are_one_batch_and_close_writes_them():
    from idp.audit.records import checked
    from idp.audit.writer import BatchWriter

    batches: list[int] = []

    def append(_session, batch):
        batches.append(len(batch))
        return [{"seq": i, "hash": "0" * 64} for i in range(len(batch))]

    writer = BatchWriter(_NoDatabase(), append, lambda *_a: None, linger_seconds=0.3)  # type: ignore[arg-type]
    for i in range(5):
        writer.put(checked("token.grant", actor=None, subject=None, client_id="c1", ip=None, detail={"n": i}))
    writer.flush()
    assert batches == [5]
    writer.put(checked("token.grant", actor=None, subject=None, client_id="c1", ip=None, detail={"n": 5}))
    started = time.monotonic()
    writer.close()  # what is queued is written, within about one linger
    assert batches == [5, 1] and time.monotonic() - started < 5


def test_the_take_commits_without_waiting_for_the_flush_and_only_its_own_transaction(app, web, citizen, rp,
                                                                                        idp_services):
    """The take's consumption is made durable by the grant's synchronous INSERT right after it
    (a WAL flush covers what came before it); its own commit does not wait, and the setting
    does not leak into the connection's next transaction."""
    from idp.models import TokenRecord
    from idp.oauth.records import _take_statement, _ts

    _postgres_only(idp_services)
    q, v = authorize_code(web, rp, scope="openid profile offline_access")
    assert exchange(web, rp, q["code"], v).status_code == 200
    with idp_services.db.engine.connect() as conn:
        jti = conn.execute(sa.select(TokenRecord.jti).where(
            TokenRecord.kind == "refresh", TokenRecord.client_id == rp.client_id)).scalar_one()
        conn.rollback()
        with conn.begin():
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "on"
            taken = conn.execute(_take_statement(False, False), {
                "t_jti": jti, "t_client": rp.client_id, "t_now": _ts(int(time.time()))}).all()
            assert len(taken) == 1
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "off"
        with conn.begin():
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "on"
