"""The back-channel fan-out's lean statements and Redis steps (issue 16) do what the ORM path did."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from idp.logout.queue import JobQueue, TransientDelivery
from idp.logout.rows import DeliveryRows, insert_oidc_deliveries, retry_delay_ms
from idp.models import Citizen, Client, LogoutDelivery, utcnow
from idp.oauth.subject import sector_of, subject_for
from tests.idp.logout_helpers import make_stack, seed


@pytest.fixture
def stack(yiwang_env):
    s = make_stack(yiwang_env, create_schema=True)
    yield s
    s.close()


def _pending(stack, client_id: str, created: dt.datetime) -> int:
    with stack.database.session() as db:
        row = LogoutDelivery(sid="s" * 43, client_id=client_id, sub="sub-1", uri="http://127.0.0.1:9/bcl",
                             status="pending", attempts=0, reason="logout", created_at=created,
                             next_attempt_at=created)
        db.add(row)
        db.flush()
        return row.id


def _row(stack, delivery_id: int) -> tuple:
    with stack.database.session() as db:
        r = db.get(LogoutDelivery, delivery_id)
        return (r.status, r.attempts, r.last_error, r.next_attempt_at, r.delivered_at)


def _paths(stack) -> list[DeliveryRows]:
    """The rows' statements as the service runs them, and (PostgreSQL) through SQLAlchemy as well."""
    native = DeliveryRows(stack.database)
    if stack.database.dialect != "postgresql":
        return [native]
    through_sqlalchemy = DeliveryRows(stack.database)
    through_sqlalchemy._direct = None
    return [native, through_sqlalchemy]


def test_an_attempt_reads_the_row_and_its_client_the_same_on_every_path(stack):
    seed(stack.database, backchannel={"portal-a": "http://127.0.0.1:9/bcl"})
    with stack.database.session() as db:
        client = db.get(Client, "portal-a")
        client.id_token_signed_response_alg = "RS256"  # noqa: S105 - an algorithm name
        client.attributes = {"cas": {"service": "x"}, "other": 1}
    created = utcnow()
    known = _pending(stack, "portal-a", created)
    gone = _pending(stack, "deleted-client", created)
    reads = []
    for rows in _paths(stack):
        a, b = rows.read(known), rows.read(gone)
        assert (a.id, a.status, a.client_id, a.sub, a.uri, a.attempts) == (
            known, "pending", "portal-a", "sub-1", "http://127.0.0.1:9/bcl", 0)
        assert a.created_at == created and a.created_at.utcoffset() == dt.timedelta(0)
        assert (a.registered, a.alg, a.attributes) == ("portal-a", "RS256", {"cas": {"service": "x"}, "other": 1})
        # A deleted client still leaves its row deliverable (outer join), as the two reads did.
        assert (b.registered, b.alg, b.attributes) == (None, None, None)
        assert rows.read(10**9) is None
        reads.append((a, b))
    assert all(r == reads[0] for r in reads)


@pytest.mark.parametrize("result", ["delivered", "failed", "retry"])
def test_settling_an_attempt_is_the_same_on_every_path_and_only_once(stack, result):
    now = utcnow()
    later = now + dt.timedelta(milliseconds=retry_delay_ms(1, min_ms=100, max_ms=300))
    outcomes = []
    for rows in _paths(stack):
        delivery_id = _pending(stack, "portal-a", now)
        assert rows.settle(delivery_id, result, now=now, error="HTTP 503" + "x" * 600, next_attempt_at=later)
        settled = _row(stack, delivery_id)
        expected = {
            "delivered": ("delivered", 1, None, None, now),
            "failed": ("failed", 1, "HTTP 503" + "x" * 492, None, None),
            "retry": ("pending", 1, "HTTP 503" + "x" * 492, later, None),
        }[result]
        assert settled == expected
        if result == "retry":  # still pending: the next attempt counts on
            assert rows.settle(delivery_id, "delivered", now=now)
            assert _row(stack, delivery_id)[:2] == ("delivered", 2)
        else:  # settled rows are left alone, as the ORM path's re-read left them
            assert not rows.settle(delivery_id, "retry", now=now, error="late", next_attempt_at=later)
            assert _row(stack, delivery_id) == settled
        outcomes.append(settled)
    assert all(o == outcomes[0] for o in outcomes)


def test_the_retry_delay_doubles_up_to_its_cap():
    assert [retry_delay_ms(n, min_ms=100, max_ms=1000) for n in (1, 2, 3, 4, 5, 40)] == [
        100, 200, 400, 800, 1000, 1000]


def test_a_fanouts_rows_carry_what_the_orm_rows_carried(stack):
    seed(stack.database, backchannel={"portal-a": "http://127.0.0.1:9/a", "portal-b": "http://127.0.0.1:9/b",
                                      "portal-c": None, "portal-d": ""})
    with stack.database.session() as db:
        db.get(Client, "portal-b").subject_type = "public"
        citizen = db.scalars(sa.select(Citizen)).one()
        citizen_id, public_id = citizen.id, citizen.public_id
        salt = stack.keyring.secret("pairwise-salt")
        ids = insert_oidc_deliveries(db, sid="sid-1", citizen_id=str(citizen_id), reason="logout", now=(now := utcnow()),
                                     client_ids=["portal-a", "portal-b", "portal-c", "portal-d", "nobody"], salt=salt)
        orphan = insert_oidc_deliveries(db, sid="sid-2", citizen_id="", reason="admin", now=now,
                                        client_ids=["portal-a"], salt=salt)
    with stack.database.session() as db:
        rows = {r.id: r for r in db.scalars(sa.select(LogoutDelivery)).all()}
    assert sorted(ids + orphan) == sorted(rows)
    told = {rows[i].client_id: rows[i] for i in ids}
    assert sorted(told) == ["portal-a", "portal-b"]  # only clients with a back-channel URI
    pairwise = subject_for(subject_type="pairwise", sector=sector_of(None, ["https://portal-a.example/cb"], "portal-a"),
                           public_id=public_id, salt=salt)
    assert told["portal-a"].sub == pairwise != public_id
    assert told["portal-b"].sub == public_id
    for r in told.values():
        assert (r.sid, r.status, r.attempts, r.reason, r.created_at, r.next_attempt_at, r.delivered_at) == (
            "sid-1", "pending", 0, "logout", now, now, None)
        assert r.uri == f"http://127.0.0.1:9/{r.client_id[-1]}"
    assert rows[orphan[0]].sub is None  # no citizen: sid only, as before


class _Handlers:
    def __init__(self, queue_box: list, outcome: BaseException | None) -> None:
        self.queue_box = queue_box
        self.outcome = outcome
        self.seen: list[tuple[bool, bool]] = []

    def attempt(self, delivery_id: str) -> None:
        q = self.queue_box[0]
        marker = q._marker_prefix + delivery_id
        self.seen.append((bool(q._redis.exists(marker + ":lock")), q._redis.pttl(marker) > 0))
        if self.outcome is not None:
            raise self.outcome

    def sweep(self) -> None:
        pass


@pytest.mark.parametrize(
    ("outcome", "marker_left"),
    [(None, False), (TransientDelivery("HTTP 503"), True), (RuntimeError("a bug"), False)],
)
def test_an_attempt_holds_its_lock_and_marker_and_leaves_the_marker_only_for_a_retry(tmp_path, outcome, marker_left):
    import fakeredis

    from idp.settings import IdpSettings

    settings = IdpSettings.from_env({"YIWANG_HOME": str(tmp_path / "home")})
    box: list = []
    handlers = _Handlers(box, outcome)
    r = fakeredis.FakeRedis()
    queue = JobQueue(settings, handlers, redis=r, prefix="t:")
    box.append(queue)
    try:
        if outcome is None:
            queue._deliver("7")
        else:
            with pytest.raises(type(outcome)):
                queue._deliver("7")
        assert handlers.seen == [(True, True)]  # locked, and the marker refreshed, during the attempt
        assert not r.exists("t:logout:job:7:lock")
        assert bool(r.exists("t:logout:job:7")) is marker_left
        assert queue.has_job("7") is marker_left
    finally:
        queue.close()


def test_a_fanout_queues_one_job_and_one_marker_per_delivery(tmp_path):
    import fakeredis

    from idp.settings import IdpSettings

    settings = IdpSettings.from_env({"YIWANG_HOME": str(tmp_path / "home")})
    r = fakeredis.FakeRedis()
    queue = JobQueue(settings, SimpleNamespace(attempt=lambda _: None, sweep=lambda: None), redis=r, prefix="t:")
    try:
        queue.enqueue_deliveries(["1", "2", "3"])
        assert queue.broker.queues["idp"].qsize() == 3  # type: ignore[attr-defined]
        assert [queue.has_job(i) for i in ("1", "2", "3", "4")] == [True, True, True, False]
        assert 0 < r.pttl("t:logout:job:2") <= queue._marker_ttl_ms()
    finally:
        queue.close()


def test_after_redis_was_away_the_keeper_queues_every_pending_delivery_again_once(tmp_path):
    # A Dramatiq consumer that lost its connection forgets the retries it had fetched; their
    # markers would hide the rows from the recovery sweep for minutes (queue.keep_going).
    import fakeredis

    from idp.settings import IdpSettings

    settings = IdpSettings.from_env({"YIWANG_HOME": str(tmp_path / "home")})
    resent: list[bool] = []
    handlers = SimpleNamespace(attempt=lambda _: None, sweep=lambda: None,
                               resend_pending=lambda *, only_lost: resent.append(only_lost))
    queue = JobQueue(settings, handlers, redis=fakeredis.FakeRedis(), prefix="t:")
    try:
        queue.keep_going()
        assert resent == []  # Redis never away: the markers are trusted
        queue._note_unqueued(SimpleNamespace(actor_name="logout_deliver", args=("4",)))
        queue.keep_going()
        assert resent == [False] and queue.has_job("4")  # everything pending, markers notwithstanding
        queue.keep_going()
        assert resent == [False]  # once per outage
    finally:
        queue.close()
