"""SSO session store: create, read, step up, end exactly once, expire with notice."""

from __future__ import annotations

import pytest

from idp.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(redis_client, redis_prefix, clock) -> SessionStore:
    return SessionStore(redis_client, redis_prefix, idle_seconds=600, max_seconds=3600, clock=clock)


def _create(store: SessionStore, citizen: str = "c1"):
    return store.create(citizen, 1_800_000_000, "urn:yiwang:acr:pwd", ["pwd"], "browser", "127.0.0.1", "UA")


def test_create_and_get_round_trip(store):
    session, cookie = _create(store)
    got = store.get(session.sid)
    assert got is not None
    assert (got.citizen_id, got.acr, got.amr, got.channel) == ("c1", "urn:yiwang:acr:pwd", ("pwd",), "browser")
    assert store.get_by_cookie(cookie).sid == session.sid


def test_cookie_is_not_the_sid_and_a_forged_secret_is_refused(store):
    session, cookie = _create(store)
    assert cookie != session.sid
    assert store.get_by_cookie(session.sid) is None
    assert store.get_by_cookie(session.sid + ".forged") is None


def test_idle_timeout_ends_session_and_fires_hook(store, clock):
    ended = []
    store.on_session_end(lambda s, reason: ended.append((s.sid, reason, s.clients)))
    session, _ = _create(store)
    store.add_client(session.sid, "portal-a")
    clock.now += 601
    assert store.get(session.sid) is None
    assert ended == [(session.sid, "idle_timeout", frozenset({"portal-a"}))]


def test_use_extends_idle_but_not_absolute_lifetime(store, clock):
    session, _ = _create(store)
    for _ in range(5):
        clock.now += 500
        assert store.get(session.sid) is not None
    clock.now += 1200  # past 3600 s since creation
    assert store.get(session.sid) is None


def test_end_returns_session_once_with_clients(store):
    calls = []
    store.on_session_end(lambda s, reason: calls.append(reason))
    session, _ = _create(store)
    store.add_client(session.sid, "a")
    store.add_client(session.sid, "b")
    assert store.clients(session.sid) == {"a", "b"}
    first = store.end(session.sid, "logout")
    second = store.end(session.sid, "logout")
    assert first is not None and first.clients == {"a", "b"}
    assert second is None
    assert calls == ["logout"]
    assert store.get(session.sid) is None
    assert store.list_for_citizen("c1") == []


def test_failing_hook_does_not_stop_others(store):
    seen = []

    def bad(s, reason):
        raise RuntimeError("listener down")

    store.on_session_end(bad)
    store.on_session_end(lambda s, reason: seen.append(s.sid))
    session, _ = _create(store)
    assert store.end(session.sid, "admin") is not None
    assert seen == [session.sid]


def test_sweep_ends_overdue_sessions_only(store, clock):
    reasons = []
    store.on_session_end(lambda s, reason: reasons.append((s.sid, reason)))
    old, _ = _create(store, "c1")
    clock.now += 400
    fresh, _ = _create(store, "c2")
    clock.now += 300  # old is 700 s idle, fresh 300 s
    ended = store.sweep_expired()
    assert [s.sid for s in ended] == [old.sid]
    assert reasons == [(old.sid, "idle_timeout")]
    assert store.get(fresh.sid) is not None


def test_step_up_keeps_sid(store, clock):
    session, _ = _create(store)
    clock.now += 10
    updated = store.update_auth(session.sid, auth_time=int(clock.now), acr="urn:yiwang:acr:2fa", amr=["pwd", "otp"])
    assert updated.sid == session.sid
    assert updated.acr == "urn:yiwang:acr:2fa" and updated.amr == ("pwd", "otp")
    assert updated.auth_time == int(clock.now)


def test_list_and_end_all_for_citizen(store):
    a, _ = _create(store, "c1")
    b, _ = _create(store, "c1")
    _create(store, "c2")
    assert {s.sid for s in store.list_for_citizen("c1")} == {a.sid, b.sid}
    ended = store.end_all_for_citizen("c1", "sign_out_everywhere")
    assert {s.sid for s in ended} == {a.sid, b.sid}
    assert store.list_for_citizen("c1") == []
    assert len(store.list_for_citizen("c2")) == 1
