"""A whole sign-in through the idp application on the Cluster and on the Sentinel set.

Flows, codes, sessions, the portal set, the throttle, the refresh and userinfo
snapshots, the job queue: everything the idp keeps in Redis is on the
``redis_url`` of this directory's conftest (cluster, then sentinel).
"""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, csrf_of, exchange, login_action, make_rp


def test_sign_in_sso_refresh_userinfo_and_sign_out(app, web, citizen, rp, idp_services, redis_mode):
    query, verifier = authorize_code(web, rp, scope="openid profile offline_access")
    assert "code" in query, query
    tokens = exchange(web, rp, query["code"], verifier)
    assert tokens.status_code == 200, tokens.data
    body = tokens.get_json()

    info = web.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.get_json()["name"] == "张三"

    refreshed = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                         headers=rp.basic())
    assert refreshed.status_code == 200, refreshed.data

    # A second portal in the same browser: single sign-on, no password.
    second = make_rp(idp_services, name="第二个门户", redirect_uri="https://second.example.cn/cb")
    query2, verifier2 = authorize_code(web, second)
    assert exchange(web, second, query2["code"], verifier2).status_code == 200

    sessions = app.extensions["yiwang"].sessions
    [session] = sessions.list_for_citizen(str(citizen.id))
    assert session.clients == frozenset({rp.client_id, second.client_id})
    ended = sessions.end(session.sid, "logout")
    assert ended.clients == frozenset({rp.client_id, second.client_id})
    assert sessions.list_for_citizen(str(citizen.id)) == []
    assert exchange(web, rp, query["code"], verifier).status_code == 400  # a used code is a replay


def test_wrong_passwords_are_throttled(app, web, citizen, rp, idp_services):
    from tests.idp.oidc_helpers import ID_NUMBER, pkce_pair

    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
              "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    page = web.get("/authorize", query_string=params)
    for attempt in range(5):
        page = web.post(login_action(page), data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                                  "id_number": ID_NUMBER, "password": "wrong password"})
        assert page.status_code in (401, 429), (attempt, page.status_code)
    # The counters live on this Redis: the sixth attempt waits, however right its password.
    index = idp_services.accounts.index_of(ID_NUMBER)
    assert not idp_services.throttle.check(index, None).allowed
