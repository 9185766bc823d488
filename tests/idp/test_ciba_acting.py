"""CIBA acting for a citizen (issue 13 §1): a clerk's actor_token, act in the tokens, audit, account page."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from idp.ciba.registration import CibaRegistration
from idp.models import AuditEvent
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
from tests.idp.oidc_helpers import ID_NUMBER
from tests.idp.test_staff import make_staff, redeem, staff_sign_in


@pytest.fixture
def counter(idp_services: Any, citizen: Any) -> Any:
    """A counter system: its staff sign in through it (audience staff), and it asks citizens through CIBA."""
    return make_ciba_rp(idp_services, name="朝阳区政务服务中心", grant_types=("authorization_code", CIBA),
                        scopes=("openid", "profile"), audience="staff", first_party=True,
                        reg=CibaRegistration(acting="clerk"))


def _clerk_token(web: Any, services: Any, counter: Any) -> str:
    _, totp = make_staff(services)
    resp, verifier = staff_sign_in(web, counter, totp)
    return str(redeem(web, counter, resp.headers["Location"], verifier)["id_token"])


def test_a_clerk_acts_for_the_citizen_act_everywhere(web: Any, app: Any, idp_services: Any, counter: Any) -> None:
    clerk = _clerk_token(app.test_client(), idp_services, counter)
    resp = start(web, counter, login_hint=ID_NUMBER, actor_token=clerk, binding_message="A7")
    assert resp.status_code == 200, resp.data
    rid = resp.get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    live = phone.get("/ciba/pending").get_json()["pending"]
    assert live[0]["actor"] == {"kind": "clerk", "name": "王芳", "office": "朝阳区政务服务中心 3 号窗口"}
    page = approval_page(phone, live[0]["id"]).get_data(as_text=True)
    assert "王芳" in page and "3 号窗口" in page and 'id="ciba-actor"' in page
    decide(phone, live[0]["id"])
    got = poll(web, counter, rid).get_json()
    at, idt = claims(got["access_token"]), claims(got["id_token"])
    assert at["act"]["sub"].startswith("staff:") and at["act"]["office"] == "朝阳区政务服务中心 3 号窗口"
    assert idt["act"] == at["act"] and not at["sub"].startswith("staff:")
    intro = web.post("/introspect", data={"token": got["access_token"]}, headers=counter.basic()).get_json()
    assert intro["active"] and intro["act"] == at["act"]
    # the audit trail has both the citizen and the clerk
    idp_services.audit.flush()
    with idp_services.db.session() as s:
        rows = s.execute(sa.select(AuditEvent.kind, AuditEvent.actor, AuditEvent.subject)
                         .where(AuditEvent.kind.like("ciba.%")).order_by(AuditEvent.seq)).all()
    kinds = [r.kind for r in rows]
    assert kinds == ["ciba.requested", "ciba.approved", "ciba.token"], kinds
    assert all(r.actor and r.actor.startswith("clerk:staff:") for r in rows) and all(r.subject for r in rows)
    assert ID_NUMBER not in str(rows)
    # the account page: "counter X, clerk Y, at time T, scopes S"
    account = phone.get("/account").get_data(as_text=True)
    assert 'id="ciba-acting-list"' in account and "王芳" in account and "3 号窗口" in account


def test_acting_client_needs_an_actor_token(web: Any, counter: Any) -> None:
    resp = start(web, counter, login_hint=ID_NUMBER)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    resp = start(web, counter, login_hint=ID_NUMBER, actor_token="not.a.token")  # noqa: S106 - not a secret
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_a_citizens_id_token_is_not_an_actor_token(web: Any, app: Any, idp_services: Any, counter: Any) -> None:
    other = make_ciba_rp(idp_services, name="普通窗口")
    rid = start(web, other, login_hint=ID_NUMBER).get_json()["auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    citizen_token = poll(web, other, rid).get_json()["id_token"]
    resp = start(web, counter, login_hint=ID_NUMBER, actor_token=citizen_token)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_a_client_that_does_not_act_may_not_send_an_actor_token(web: Any, app: Any, idp_services: Any,
                                                               counter: Any) -> None:
    plain = make_ciba_rp(idp_services, name="普通窗口")
    resp = start(web, plain, login_hint=ID_NUMBER, actor_token=_clerk_token(app.test_client(), idp_services, counter))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
