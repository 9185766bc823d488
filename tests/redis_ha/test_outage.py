"""Redis unreachable: the idp answers 503 with a clear message, logs the outage once, and recovers by itself."""

from __future__ import annotations

import logging

import pytest

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import is_login_page, pkce_pair
from tests.support.private_services import PrivateRedis


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(private_redis):  # overrides the directory's shared Cluster / Sentinel
    return private_redis.url


def test_redis_away_is_503_once_in_the_log_and_recovers(app, rp, private_redis, caplog):
    web = app.test_client()
    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
              "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    assert is_login_page(web.get("/authorize", query_string=params))

    private_redis.stop(kill=True)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            page = web.get("/authorize", query_string=params)
            assert page.status_code == 503 and page.headers["Retry-After"]
        # (A query string takes the Flask view; the WSGI hot path, idp.web.hotpaths, answers 503 too.)
        problem = web.post("/token?via=flask", data={"grant_type": "authorization_code", "code": "x"},
                           headers=rp.basic())
        assert problem.status_code == 503
        assert "Redis" in problem.get_json()["detail"]
        down = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(down) == 1, [r.getMessage() for r in caplog.records]

        private_redis.start()  # the same port: no restart of the idp
        assert is_login_page(web.get("/authorize", query_string=params))
        back = [r.getMessage() for r in caplog.records if "Redis available again" in r.getMessage()]
    assert len(back) == 1 and "requests answered 503" in back[0], back
