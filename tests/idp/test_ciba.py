"""OpenID CIBA Core 1.0, poll mode: request, the citizen's approval on their own session, tokens, errors."""

from __future__ import annotations

import pytest

from tests.idp.ciba_helpers import (
    CIBA,
    approval_page,
    claims,
    decide,
    make_ciba_rp,
    pending_ids,
    poll,
    signed_in_phone,
    start,
)
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, make_id, make_rp


@pytest.fixture
def counter(idp_services, citizen):
    return make_ciba_rp(idp_services)


def test_discovery_advertises_ciba(web):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["backchannel_authentication_endpoint"].endswith("/bc-authorize")
    assert doc["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert "ES256" in doc["backchannel_authentication_request_signing_alg_values_supported"]
    assert doc["backchannel_user_code_parameter_supported"] is True
    assert CIBA in doc["grant_types_supported"]


def test_poll_flow_pending_slow_down_approve_tokens_replay(web, app, counter):
    resp = start(web, counter, login_hint=ID_NUMBER, binding_message="窗口 3 号 A7")
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"} and body["interval"] == 5
    rid = body["auth_req_id"]
    first = poll(web, counter, rid)
    assert first.status_code == 400 and first.get_json()["error"] == "authorization_pending"
    second = poll(web, counter, rid)  # sooner than the interval
    assert second.status_code == 400 and second.get_json()["error"] == "slow_down"

    phone = signed_in_phone(app)
    [display_id] = pending_ids(phone)
    assert display_id not in rid and rid not in phone.get("/ciba/pending").get_data(as_text=True)
    page = approval_page(phone, display_id).get_data(as_text=True)
    assert "窗口 3 号 A7" in page and "市民服务窗口" in page
    done = decide(phone, display_id)
    assert done.status_code == 200 and 'data-outcome="approved"' in done.get_data(as_text=True)
    assert pending_ids(phone) == []

    tokens = poll(web, counter, rid)
    assert tokens.status_code == 200, tokens.data
    got = tokens.get_json()
    assert {"access_token", "id_token", "refresh_token"} <= set(got)
    idt, at = claims(got["id_token"]), claims(got["access_token"])
    assert idt["aud"] == counter.client_id and idt["sid"] == at["sid"] and "act" not in at
    sessions = app.extensions["yiwang"].sessions
    assert counter.client_id in sessions.clients(idt["sid"])

    again = poll(web, counter, rid)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_denied_is_access_denied(web, app, counter):
    rid = start(web, counter, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    [display_id] = pending_ids(phone)
    assert 'data-outcome="denied"' in decide(phone, display_id, "deny").get_data(as_text=True)
    resp = poll(web, counter, rid)
    assert resp.status_code == 400 and resp.get_json()["error"] == "access_denied"


def test_another_clients_auth_req_id_is_invalid_grant(web, idp_services, counter):
    other = make_ciba_rp(idp_services, name="另一个窗口")
    rid = start(web, counter, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    resp = poll(web, other, rid)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    # ... and the owner's request is untouched by it
    assert poll(web, counter, rid).get_json()["error"] == "authorization_pending"


def test_expired_request_is_expired_token(web, app, counter, idp_services):
    rid = start(web, counter, login_hint=ID_NUMBER, requested_expiry="30").get_json()["auth_req_id"]
    store = app.extensions["yiwang"].server.ciba.store
    from idp.ciba.store import auth_req_hash

    store._r.hset(store._kr(auth_req_hash(rid)), "expires_at", store.now() - 1)
    resp = poll(web, counter, rid)
    assert resp.status_code == 400 and resp.get_json()["error"] == "expired_token"


def test_unknown_citizen_is_unknown_user_id(web, counter):
    resp = start(web, counter, login_hint=make_id("11010519800101123"))
    assert resp.status_code == 400 and resp.get_json()["error"] == "unknown_user_id"


@pytest.mark.parametrize("message", ["x" * 65, "请核对\n代码", "tab\there", "zero\u200bwidth"])
def test_bad_binding_message_is_invalid_binding_message(web, counter, message):
    resp = start(web, counter, login_hint=ID_NUMBER, binding_message=message)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_binding_message"


def test_only_the_named_citizen_sees_the_request(web, app, counter, idp_services):
    start(web, counter, login_hint=ID_NUMBER)
    owner = signed_in_phone(app)
    [display_id] = pending_ids(owner)
    other_id = make_id("11010519900307456")
    idp_services.accounts.add(other_id, "李四", PASSWORD)  # noqa: F405
    stranger = app.test_client()
    first = stranger.get("/account")
    login(stranger, first.headers["Location"], id_number=other_id)  # noqa: F405
    assert pending_ids(stranger) == []
    assert stranger.get(f"/ciba/{display_id}").status_code == 404
    assert stranger.post(f"/ciba/{display_id}", data={"decision": "approve"}).status_code in (400, 404)


def test_approval_needs_csrf(web, app, counter):
    start(web, counter, login_hint=ID_NUMBER)
    phone = signed_in_phone(app)
    [display_id] = pending_ids(phone)
    resp = phone.post(f"/ciba/{display_id}", data={"decision": "approve", "csrf_token": "0" * 64})
    assert resp.status_code == 400 and pending_ids(phone) == [display_id]


def test_client_without_the_grant_and_public_clients_are_refused(web, idp_services, citizen):
    portal = make_rp(idp_services)
    resp = start(web, portal, login_hint=ID_NUMBER)
    assert resp.status_code == 400 and resp.get_json()["error"] == "unauthorized_client"
    app_rp = make_rp(idp_services, public=True, grant_types=("authorization_code",), redirect_uri="cn.gov.app:/cb")
    resp = web.post("/bc-authorize", data={"scope": "openid", "login_hint": ID_NUMBER,
                                           "client_id": app_rp.client_id})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_scope_policy_and_openid_required(web, counter):
    resp = start(web, counter, login_hint=ID_NUMBER, scope="profile")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    resp = start(web, counter, login_hint=ID_NUMBER, scope="openid email")  # not registered
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"
    resp = start(web, counter, login_hint=ID_NUMBER, scope="openid certs:issue")  # an agency scope
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


def test_exactly_one_hint(web, counter):
    assert start(web, counter).get_json()["error"] == "invalid_request"
    from werkzeug.datastructures import MultiDict

    repeated = web.post("/bc-authorize", data=MultiDict([("scope", "openid"), ("login_hint", ID_NUMBER),
                                                         ("login_hint", ID_NUMBER)]), headers=counter.basic())
    assert repeated.status_code == 400 and repeated.get_json()["error"] == "invalid_request"
    both = start(web, counter, login_hint=ID_NUMBER, login_hint_token="a.b.c")  # noqa: S106 - not a secret
    assert both.status_code == 400 and both.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("expiry", ["0", "29", "1801", "abc", "-5"])
def test_requested_expiry_bounds(web, counter, expiry):
    resp = start(web, counter, login_hint=ID_NUMBER, requested_expiry=expiry)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_signing_out_everywhere_ends_the_ciba_grant(web, app, counter):
    rid = start(web, counter, login_hint=ID_NUMBER, scope="openid profile offline_access").get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    [display_id] = pending_ids(phone)
    decide(phone, display_id)
    got = poll(web, counter, rid).get_json()
    page = phone.get("/account").get_data(as_text=True)
    phone.post("/account/sign-out-everywhere", data={"csrf_token": csrf_of(page)})  # noqa: F405
    refreshed = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": got["refresh_token"]},
                         headers=counter.basic())
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    intro = web.post("/introspect", data={"token": got["access_token"]}, headers=counter.basic()).get_json()
    assert intro["active"] is False


def test_a_pending_poll_costs_no_sql(web, app, counter, idp_services):
    """Issue 13: a pending poll is answered from Redis (and the client cache), never the database."""
    import sqlalchemy as sa

    rids = [start(web, counter, login_hint=ID_NUMBER).get_json()["auth_req_id"] for _ in range(3)]
    poll(web, counter, rids[0])  # the client is in the provider's cache now
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(idp_services.db.engine, "before_cursor_execute", count)
    try:
        answers = [poll(web, counter, rid).get_json()["error"] for rid in rids * 2]
    finally:
        sa.event.remove(idp_services.db.engine, "before_cursor_execute", count)
    assert set(answers) <= {"authorization_pending", "slow_down"} and "slow_down" in answers
    assert statements == []


def test_the_id_number_is_never_logged(web, app, counter, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    rid = start(web, counter, login_hint=ID_NUMBER, binding_message="A1").get_json()["auth_req_id"]
    start(web, counter, login_hint=make_id("11010519800101123"))  # unknown
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    poll(web, counter, rid)
    assert ID_NUMBER not in caplog.text and ID_NUMBER[:17] not in caplog.text
    assert rid not in caplog.text  # nor the auth_req_id


def test_the_client_is_told_when_the_approving_session_ends(web, app, idp_services, citizen):
    """Single sign-out: the CIBA client is one of the session's clients (back-channel logout, tokens revoked)."""
    import sqlalchemy as sa

    from idp.models import LogoutDelivery

    counter = make_ciba_rp(idp_services, backchannel_logout_uri="https://counter.example.cn/backchannel-logout")
    rid = start(web, counter, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    got = poll(web, counter, rid).get_json()
    sid = claims(got["id_token"])["sid"]
    page = phone.get("/account").get_data(as_text=True)
    phone.post("/account/sign-out-everywhere", data={"csrf_token": csrf_of(page)})  # noqa: F405
    with idp_services.db.session() as db:
        rows = db.scalars(sa.select(LogoutDelivery).where(LogoutDelivery.sid == sid)).all()
    assert [r.client_id for r in rows] == [counter.client_id]
    intro = web.post("/introspect", data={"token": got["access_token"]}, headers=counter.basic()).get_json()
    assert intro["active"] is False


def test_a_failure_while_issuing_gives_the_approval_back(web, app, counter, monkeypatch):
    """A backing service failing after the approval was taken: a 5xx, and the next poll gets the tokens."""
    rid = start(web, counter, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    provider = app.extensions["yiwang"].provider
    real = provider.save_token
    calls = []

    def failing(token, request):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        return real(token, request)

    monkeypatch.setattr(provider, "save_token", failing)
    first = poll(web, counter, rid)
    assert first.status_code >= 500
    second = poll(web, counter, rid)
    assert second.status_code == 200, second.data
    assert poll(web, counter, rid).get_json()["error"] == "invalid_grant"
