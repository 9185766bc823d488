"""Issue 16's fast paths keep their answers: caches see a rotated key or a changed client,
the refresh grant's one-statement take sees the citizen as it is now, discovery is Flask's."""

from __future__ import annotations

import time

import sqlalchemy as sa
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from idp.models import Citizen
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange


def _tokens(web, rp, scope="openid profile offline_access"):
    q, v = authorize_code(web, rp, scope=scope)
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 200, resp.data
    return resp.get_json()


def _refresh(web, rp, rt):
    return web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=rp.basic())


def test_a_retired_signing_key_empties_the_verified_token_cache(app, web, citizen, rp, idp_services):
    provider = app.extensions["yiwang"].provider
    at = _tokens(web, rp)["access_token"]
    bearer = {"Authorization": "Bearer " + at}
    assert web.get("/userinfo", headers=bearer).status_code == 200
    assert at in provider.tokens._verified  # the second request is answered from the cache
    assert web.get("/userinfo", headers=bearer).status_code == 200
    keyset = idp_services.keyring.keyset("idp-token")
    keyset.rotate()  # active → retiring: still published, the token still verifies
    provider.tokens.keys_reload_seconds = 0
    time.sleep(0.01)
    assert web.get("/userinfo", headers=bearer).status_code == 200
    keyset.rotate()  # retiring → retired: the key leaves the JWKS
    time.sleep(0.01)
    gone = web.get("/userinfo", headers=bearer)
    assert gone.status_code == 401 and 'error="invalid_token"' in gone.headers["WWW-Authenticate"]
    intro = web.post("/introspect", data={"token": at}, headers=rp.basic())
    assert intro.get_json() == {"active": False}
    assert at not in provider.tokens._verified


def test_a_cached_token_is_still_checked_for_revocation_and_expiry(app, web, citizen, rp, monkeypatch):
    provider = app.extensions["yiwang"].provider
    at = _tokens(web, rp)["access_token"]
    bearer = {"Authorization": "Bearer " + at}
    first = web.get("/userinfo", headers=bearer)
    again = web.get("/userinfo", headers=bearer)
    assert first.status_code == again.status_code == 200 and first.get_json() == again.get_json()
    exp = jose_jwt.decode(at, KeySet.import_key_set(provider.tokens.jwks())).claims["exp"]
    monkeypatch.setattr(provider.tokens, "_clock", lambda: exp + 1)
    assert web.get("/userinfo", headers=bearer).status_code == 401  # expired, though cached
    monkeypatch.undo()
    assert web.post("/revoke", data={"token": at}, headers=rp.basic()).status_code == 200
    assert web.get("/userinfo", headers=bearer).status_code == 401
    assert web.post("/introspect", data={"token": at}, headers=rp.basic()).get_json() == {"active": False}


def test_a_forged_token_is_never_cached(app, web, citizen, rp):
    provider = app.extensions["yiwang"].provider
    at = _tokens(web, rp)["access_token"]
    head, body, sig = at.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    for _ in range(2):
        assert web.get("/userinfo", headers={"Authorization": "Bearer " + forged}).status_code == 401
    assert forged not in provider.tokens._verified


def test_a_changed_client_is_seen_once_its_cache_entry_ages(app, web, citizen, rp, idp_services, monkeypatch):
    import idp.oauth.provider as provider_module

    ok = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert ok.status_code == 200
    new_secret = idp_services.clients.rotate_secret(rp.client_id)
    ttl = app.extensions["yiwang"].provider.config.client_cache_seconds
    later = time.monotonic() + ttl + 1
    monkeypatch.setattr(provider_module.time, "monotonic", lambda: later)
    old = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    rp.secret = new_secret
    assert web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic()).status_code == 200


def test_refresh_reads_the_citizen_as_it_is_now(web, citizen, rp, idp_services):
    tokens = _tokens(web, rp)
    with idp_services.db.session() as s:
        s.execute(sa.update(Citizen).where(Citizen.id == citizen.id).values(name="李四"))
    fresh = _refresh(web, rp, tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.data
    body = fresh.get_json()
    info = web.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.get_json()["name"] == "李四"
    jwks = KeySet.import_key_set(web.get("/jwks.json").get_json())
    assert jose_jwt.decode(body["id_token"], jwks).claims["name"] == "李四"


def test_refresh_of_an_account_disabled_meanwhile_gives_nothing(web, citizen, rp, idp_services):
    tokens = _tokens(web, rp)
    # Disabled in the database only (no revocation): the take's own row must stop the grant.
    with idp_services.db.session() as s:
        s.execute(sa.update(Citizen).where(Citizen.id == citizen.id).values(disabled=True))
    refused = _refresh(web, rp, tokens["refresh_token"])
    # Authlib's answer when the grant finds no user ("invalid_request"), as before the fast path.
    assert refused.status_code == 400 and "access_token" not in refused.get_json()


def test_discovery_is_flasks_first_answer_replayed_with_an_etag(app, web):
    reached: list[str] = []
    original = app.view_functions["wellknown.openid_configuration"]

    def tripwire(*a, **kw):
        reached.append("flask")
        return original(*a, **kw)

    app.view_functions["wellknown.openid_configuration"] = tripwire
    path = "/.well-known/openid-configuration"
    first = web.get(path)
    assert reached == ["flask"] and first.status_code == 200 and first.headers["ETag"]
    again = web.get(path)
    assert reached == ["flask"], "the second plain request is answered without Flask"
    assert again.data == first.data
    same = [(k, v) for k, v in first.headers.items() if k != "X-Request-Id"]  # one per request
    assert sorted((k, v) for k, v in again.headers.items() if k != "X-Request-Id") == sorted(same)
    via_flask = web.get(path + "?via=flask")
    assert reached == ["flask", "flask"] and via_flask.data == first.data
    assert via_flask.headers["ETag"] == first.headers["ETag"]
    # A client that has the document gets a 304 (from the view), nothing else.
    cached = web.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304 and cached.data == b"" and cached.headers["ETag"] == first.headers["ETag"]
    stale = web.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.data == first.data
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.headers["X-Content-Type-Options"] == "nosniff"


def test_a_refreshed_tokens_snapshot_is_written_in_the_background(app, web, citizen, rp):
    provider = app.extensions["yiwang"].provider
    fresh = _refresh(web, rp, _tokens(web, rp)["refresh_token"]).get_json()
    at = fresh["access_token"]
    jti = provider.tokens.verify_access_token(at).jti
    bearer = {"Authorization": "Bearer " + at}
    assert provider.tokens.snapshots.flush()
    _revoked, snap = provider.tokens.snapshot_if_live(jti)
    assert snap is not None and snap["name"] == "张三"
    from_snapshot = web.get("/userinfo", headers=bearer)
    # Without it (lost to a Redis failure), userinfo reads the database: the same answer.
    provider.redis.delete(provider.tokens._p + "ui:" + jti)  # the app's own Redis (embedded without one)
    assert provider.tokens.snapshot_if_live(jti) == (False, None)
    from_database = web.get("/userinfo", headers=bearer)
    assert from_snapshot.status_code == from_database.status_code == 200
    assert from_snapshot.get_json() == from_database.get_json()


def test_a_lost_connection_on_the_direct_path_is_sqlalchemys_error_and_leaves_the_pool(idp_services):
    import pytest

    from idp.db import make_engine
    from idp.oauth.pgdirect import Direct

    if idp_services.db.dialect != "postgresql":
        pytest.skip("the direct path is PostgreSQL's")
    engine = make_engine(idp_services.db.url, pool_size=1, max_overflow=0)
    try:
        backend = Direct(sa.select(sa.func.pg_backend_pid()), engine)
        names, rows = backend.rows(engine, {})
        pid = rows[0][0]
        with idp_services.db.engine.connect() as other:  # end that one connection, as a restart would
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.OperationalError):  # the web layer's 503, as on the SQLAlchemy path
            backend.rows(engine, {})
        _, again = backend.rows(engine, {})  # the dead connection left the pool
        assert again[0][0] != pid
        plus = Direct(sa.select(sa.bindparam("x", type_=sa.Integer()) + 1), engine)
        assert plus.rows(engine, {"x": 41})[1] == [(42,)]
        with engine.connect() as c:  # the pooled connection went back as the pool hands it out
            assert c.connection.driver_connection.autocommit is False
    finally:
        engine.dispose()
