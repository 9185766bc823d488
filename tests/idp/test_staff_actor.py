"""resolve_actor: the clerk or agent behind a CIBA actor_token (issue 13 §1, RFC 8693 §4.1)."""

from __future__ import annotations

from typing import Any

import pytest

from idp.staff.accounts import StaffService
from idp.staff.actor import ActorTokenError, resolve_actor
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP, authorize_code, exchange
from tests.idp.test_staff import make_portal, make_staff, redeem, staff_sign_in


def _staff_id_token(web: Any, services: Any, portal: RP) -> str:
    _, totp = make_staff(services)
    resp, verifier = staff_sign_in(web, portal, totp)
    return str(redeem(web, portal, resp.headers["Location"], verifier)["id_token"])


def _now(app: Any) -> int:
    return int(app.extensions["yiwang"].provider.tokens.now())


def test_a_staff_id_token_of_the_same_client_resolves_to_the_actor(app: Any, web: Any, idp_services: Any) -> None:
    portal = make_portal(idp_services)
    token = _staff_id_token(web, idp_services, portal)
    actor = resolve_actor(token, client_id=portal.client_id, now=_now(app))
    assert actor.kind == "clerk" and actor.name == "王芳" and actor.office == "朝阳区政务服务中心 3 号窗口"
    act = actor.act_claim()
    assert act["sub"] == actor.sub and actor.sub.startswith("staff:") and act["iss"] == "http://idp.test"
    assert act["staff_kind"] == "clerk" and act["office"] == actor.office and act["name"] == "王芳"
    # the container's resolver is the one installed for the process
    assert app.extensions["yiwang"].provider is not None


def test_another_client_an_expired_token_or_a_disabled_account_is_refused(app: Any, web: Any,
                                                                         idp_services: Any) -> None:
    portal = make_portal(idp_services)
    other = make_portal(idp_services, name="热线系统", redirect_uri="https://hotline.example.cn/cb")
    token = _staff_id_token(web, idp_services, portal)
    now = _now(app)
    with pytest.raises(ActorTokenError, match="another client"):
        resolve_actor(token, client_id=other.client_id, now=now)
    with pytest.raises(ActorTokenError, match="expired"):
        resolve_actor(token, client_id=portal.client_id, now=now + 3600)
    StaffService.of(idp_services).set_disabled("clerk.wang", reason="left")
    with pytest.raises(ActorTokenError, match="disabled"):
        resolve_actor(token, client_id=portal.client_id, now=now)


def test_forged_malformed_and_citizen_tokens_are_refused(app: Any, web: Any, idp_services: Any, citizen: Any,
                                                         rp: RP) -> None:
    portal = make_portal(idp_services)
    token = _staff_id_token(web, idp_services, portal)
    now = _now(app)
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for bad in (f"{header}.{payload}.{flipped}", "not a token", "", "a.b.c", token + "x" * 9000):
        with pytest.raises(ActorTokenError):
            resolve_actor(bad, client_id=portal.client_id, now=now)
    query, verifier = authorize_code(web, rp)
    citizen_token = exchange(web, rp, query["code"], verifier).get_json()["id_token"]
    with pytest.raises(ActorTokenError, match="staff"):
        resolve_actor(citizen_token, client_id=rp.client_id, now=now)


def test_the_access_token_of_a_staff_sign_in_works_until_revoked(app: Any, web: Any, idp_services: Any) -> None:
    portal = make_portal(idp_services)
    _, totp = make_staff(idp_services)
    resp, verifier = staff_sign_in(web, portal, totp)
    access = redeem(web, portal, resp.headers["Location"], verifier)["access_token"]
    now = _now(app)
    assert resolve_actor(access, client_id=portal.client_id, now=now).kind == "clerk"
    revoked = web.post("/revoke", data={"token": access}, headers=portal.basic())
    assert revoked.status_code == 200
    with pytest.raises(ActorTokenError, match="revoked"):
        resolve_actor(access, client_id=portal.client_id, now=now)
