"""Refresh tokens rotate on every use; reuse of a rotated one revokes the family."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _refresh(web, rp, token):
    return web.post("/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=rp.basic())


def _active(web, rp, token):
    return web.post("/introspect", data={"token": token}, headers=rp.basic()).get_json()["active"]


def test_refresh_rotates(web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"])
    assert second.status_code == 200, second.data
    body = second.get_json()
    assert body["refresh_token"] != first["refresh_token"]
    assert _active(web, rp, body["access_token"])
    assert not _active(web, rp, first["refresh_token"])  # rotated away
    assert _active(web, rp, body["refresh_token"])


def test_refresh_token_of_another_client_is_refused(web, idp_services, citizen, rp):
    from tests.idp.oidc_helpers import make_rp

    other = make_rp(idp_services, name="Other", redirect_uri="https://o.example.cn/cb")
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    assert _refresh(web, other, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    # and the rightful client can still use it (nothing was consumed)
    assert _refresh(web, rp, first["refresh_token"]).status_code == 200


def test_scope_cannot_grow_on_refresh(web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile")
    first = exchange(web, rp, q["code"], v).get_json()
    resp = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                    "scope": "openid profile email"}, headers=rp.basic())
    assert resp.get_json()["error"] == "invalid_scope"


def test_session_end_kills_session_tokens_but_not_offline(app, web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile")
    online = exchange(web, rp, q["code"], v).get_json()
    q2, v2 = authorize_code(web, rp, scope="openid offline_access")
    offline = exchange(web, rp, q2["code"], v2).get_json()
    runtime = app.extensions["yiwang"]
    sid = runtime.provider.tokens.verify_access_token(online["access_token"]).sid
    runtime.sessions.end(sid, "logout")
    assert not _active(web, rp, online["access_token"])
    assert _refresh(web, rp, online["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert _refresh(web, rp, offline["refresh_token"]).status_code == 200


def test_refresh_returns_a_consistent_id_token(web, citizen, rp):
    import base64
    import json

    def claims(jwt):
        part = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    a, b = claims(first["id_token"]), claims(second["id_token"])
    for k in ("iss", "sub", "aud", "sid", "auth_time", "acr"):
        assert a[k] == b[k]
    assert "nonce" not in b


# --------------------------------------------------- issue 20 §1: an honest retry is not reuse


def test_one_retry_of_a_rotated_token_supersedes_the_child_and_the_next_use_revokes_the_family(web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    # The client never got `second` (a crash, a timeout) and retries: a new chain, `second` is gone.
    retry = _refresh(web, rp, first["refresh_token"])
    assert retry.status_code == 200, retry.data
    third = retry.get_json()
    assert not _active(web, rp, second["refresh_token"])
    assert _active(web, rp, third["refresh_token"])
    # A further use of the parent is reuse: the whole family, the newest tokens included, is gone.
    reuse = _refresh(web, rp, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    assert not _active(web, rp, third["refresh_token"])
    assert not _active(web, rp, third["access_token"])
    assert not _active(web, rp, first["access_token"])
    assert _refresh(web, rp, third["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_without_a_grace_window_any_reuse_revokes_the_family(app_with, citizen, rp):
    web = app_with(refresh_reuse_grace_seconds=0).test_client()
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    reuse = _refresh(web, rp, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    assert not _active(web, rp, second["refresh_token"])
    assert not _active(web, rp, second["access_token"])
    assert _refresh(web, rp, second["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_superseded_child_presented_later_is_reuse(web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    third = _refresh(web, rp, first["refresh_token"]).get_json()
    # Only a party that got the response the retrying client did not can hold `second`.
    assert _refresh(web, rp, second["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert not _active(web, rp, third["refresh_token"])


def test_reuse_after_the_grace_window_revokes_the_family(web, idp_services, citizen, rp):
    import datetime as dt

    import sqlalchemy as sa

    from idp.models import TokenRecord
    from idp.oauth.tokens import refresh_hash

    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    with idp_services.db.session() as s:  # the rotation happened a minute ago
        s.execute(sa.update(TokenRecord).where(TokenRecord.jti == refresh_hash(first["refresh_token"]))
                  .values(consumed_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)))
    assert _refresh(web, rp, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert not _active(web, rp, second["refresh_token"])


def test_a_session_store_that_does_not_answer_is_a_503_and_revokes_nothing(app, web, citizen, rp, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    q, v = authorize_code(web, rp)  # session-bound (no offline_access): the refresh reads the session
    first = exchange(web, rp, q["code"], v).get_json()
    sessions = app.extensions["yiwang"].provider.sessions

    def down(*a, **kw):
        raise RedisConnectionError("Redis is away")

    with monkeypatch.context() as m:
        m.setattr(sessions, "get", down)
        for _ in range(3):  # a client retrying through the outage
            resp = _refresh(web, rp, first["refresh_token"])
            assert resp.status_code == 503, resp.data
            assert resp.headers.get("Retry-After")
    # Redis is back: the same token works, as an ordinary refresh, and the family lives.
    resp = _refresh(web, rp, first["refresh_token"])
    assert resp.status_code == 200, resp.data
    assert _active(web, rp, first["access_token"])
    assert _active(web, rp, resp.get_json()["refresh_token"])


def test_a_database_error_between_consume_and_issue_is_a_5xx_and_the_retry_succeeds(app, web, citizen, rp,
                                                                                     monkeypatch):
    import sqlalchemy.exc as sa_exc

    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    store = app.extensions["yiwang"].provider.tokens.store

    def down(*a, **kw):
        raise sa_exc.OperationalError("INSERT", {}, Exception("the database went away"))

    with monkeypatch.context() as m:  # the child cannot be stored, nor the take undone
        m.setattr(store, "add", down)
        m.setattr(store, "release_refresh", down)
        resp = _refresh(web, rp, first["refresh_token"])
        assert resp.status_code == 503, resp.data
    retry = _refresh(web, rp, first["refresh_token"])  # within the window: the one retry
    assert retry.status_code == 200, retry.data
    assert _active(web, rp, retry.get_json()["refresh_token"])
    assert _refresh(web, rp, first["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_failure_after_the_child_is_stored_leaves_the_parent_as_it_was(app, web, citizen, rp, monkeypatch):
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    provider = app.extensions["yiwang"].provider
    from redis.exceptions import ConnectionError as RedisConnectionError

    def snapshot_fails(*a, **kw):
        raise RedisConnectionError("Redis is away")

    with monkeypatch.context() as m:  # the child is committed, then Redis fails before the answer
        m.setattr(provider.tokens, "save_snapshot", snapshot_fails)
        for _ in range(3):
            assert _refresh(web, rp, first["refresh_token"]).status_code == 503
    resp = _refresh(web, rp, first["refresh_token"])
    assert resp.status_code == 200, resp.data
    second = resp.get_json()
    assert _active(web, rp, second["refresh_token"])
    # The parent was released (an ordinary refresh), so its one retry is still there.
    assert _refresh(web, rp, first["refresh_token"]).status_code == 200
    assert not _active(web, rp, second["refresh_token"])


# The store's grace logic, on the SQL store itself.


def _store_with_token(idp_services, citizen, rp, *, now):
    from idp.oauth.records import SqlTokenStore

    store = SqlTokenStore(idp_services.db)
    store.add([dict(jti="p" * 64, kind="refresh", client_id=rp.client_id, citizen_id=citizen.id, sid=None,
                    scope="openid", family_id="fam", parent_jti=None, code_hash=None, offline=True,
                    issued_at=now - 10, expires_at=now + 3600, data=None)])
    return store


def test_store_accepts_one_retry_of_the_same_client_within_the_window(idp_services, citizen, rp):
    now = 1_900_000_000
    store = _store_with_token(idp_services, citizen, rp, now=now)
    assert store.take_refresh("p" * 64, rp.client_id, now, grace_seconds=30)[0] == "ok"
    status, row = store.take_refresh("p" * 64, rp.client_id, now + 29, grace_seconds=30)
    assert status == "retry" and row["retried_at"] == now + 29 and row["consumed_at"] == now
    assert store.take_refresh("p" * 64, rp.client_id, now + 29, grace_seconds=30)[0] == "reused"


def test_store_another_client_never_gets_the_retry(idp_services, citizen, rp):
    from tests.idp.oidc_helpers import make_rp

    other = make_rp(idp_services, name="Other", redirect_uri="https://o.example.cn/cb")
    now = 1_900_000_000
    store = _store_with_token(idp_services, citizen, rp, now=now)
    # A live token in another client's hands is refused and left as it is ...
    assert store.take_refresh("p" * 64, other.client_id, now, grace_seconds=30) == ("unknown", None)
    assert store.take_refresh("p" * 64, rp.client_id, now, grace_seconds=30)[0] == "ok"
    # ... a rotated one, even inside the window, is reuse (issue 20 §1, RFC 9700 §4.14.2).
    status, row = store.take_refresh("p" * 64, other.client_id, now + 1, grace_seconds=30)
    assert status == "reused" and row is not None and row["family_id"] == "fam"


def test_a_rotated_token_presented_by_another_client_revokes_the_family(web, idp_services, citizen, rp):
    from tests.idp.oidc_helpers import make_rp

    other = make_rp(idp_services, name="Other", redirect_uri="https://o.example.cn/cb")
    q, v = authorize_code(web, rp)
    first = exchange(web, rp, q["code"], v).get_json()
    second = _refresh(web, rp, first["refresh_token"]).get_json()
    assert _active(web, rp, second["refresh_token"])
    # Within the grace window, but not its client: the family is revoked as stolen.
    assert _refresh(web, other, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert not _active(web, rp, second["refresh_token"])
    assert _refresh(web, rp, first["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_store_use_after_the_window_or_without_one_is_reuse(idp_services, citizen, rp):
    now = 1_900_000_000
    store = _store_with_token(idp_services, citizen, rp, now=now)
    assert store.take_refresh("p" * 64, rp.client_id, now, grace_seconds=30)[0] == "ok"
    assert store.take_refresh("p" * 64, rp.client_id, now + 31, grace_seconds=30)[0] == "reused"
    assert store.take_refresh("p" * 64, rp.client_id, now + 1, grace_seconds=0)[0] == "reused"
    assert store.get("p" * 64)["retried_at"] is None


def test_store_release_undoes_a_take_and_revokes_what_the_failed_request_stored(idp_services, citizen, rp):
    now = 1_900_000_000
    store = _store_with_token(idp_services, citizen, rp, now=now)
    assert store.take_refresh("p" * 64, rp.client_id, now, grace_seconds=30)[0] == "ok"
    store.add([dict(jti="c" * 64, kind="refresh", client_id=rp.client_id, citizen_id=citizen.id, sid=None,
                    scope="openid", family_id="fam", parent_jti="p" * 64, code_hash=None, offline=True,
                    issued_at=now, expires_at=now + 3600, data=None)])
    assert store.release_refresh("p" * 64, "ok", now, drop=["c" * 64])
    assert store.get("p" * 64)["consumed_at"] is None
    assert store.get("c" * 64)["revoked_at"] == now
    assert store.take_refresh("p" * 64, rp.client_id, now + 5, grace_seconds=30)[0] == "ok"
    assert store.take_refresh("p" * 64, rp.client_id, now + 6, grace_seconds=30)[0] == "retry"
    assert store.release_refresh("p" * 64, "retry", now + 6)
    assert store.take_refresh("p" * 64, rp.client_id, now + 7, grace_seconds=30)[0] == "retry"
    # superseding marks the children consumed too: presenting one is reuse
    store.add([dict(jti="d" * 64, kind="refresh", client_id=rp.client_id, citizen_id=citizen.id, sid=None,
                    scope="openid", family_id="fam", parent_jti="p" * 64, code_hash=None, offline=True,
                    issued_at=now, expires_at=now + 3600, data=None)])
    assert store.supersede_children("p" * 64, now + 7) == ["d" * 64]
    assert store.take_refresh("d" * 64, rp.client_id, now + 8, grace_seconds=30)[0] == "reused"
