"""/userinfo refuses a staff access token with an answer that says why (RFC 6750 §3.1, OIDC Core §5.3.3).

A clerk's or agent's access token (``sub`` ``staff:…``, scope ``openid profile``)
is a valid token of this idp, but userinfo is for citizens: the answer is
``invalid_token`` naming staff tokens, not "the token does not grant openid".
"""

from __future__ import annotations

from typing import Any

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, exchange
from tests.idp.test_staff import make_portal, make_staff, redeem, staff_sign_in


def test_a_staff_access_token_at_userinfo_is_refused_as_a_staff_token(web: Any, app: Any, idp_services: Any) -> None:
    _view, totp = make_staff(idp_services)
    portal = make_portal(idp_services)
    resp, verifier = staff_sign_in(web, portal, totp)
    tokens = redeem(web, portal, resp.headers["Location"], verifier)
    assert "openid" in tokens["scope"].split()
    for method in ("GET", "POST"):
        info = web.open("/userinfo", method=method, headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 401, info.data
        assert info.get_json() == {"error": "invalid_token"}
        challenge = info.headers["WWW-Authenticate"]
        assert 'error="invalid_token"' in challenge and "staff tokens have no citizen userinfo" in challenge
        assert "does not grant openid" not in challenge


def test_a_citizen_token_without_openid_still_gets_insufficient_scope(web: Any, idp_services: Any,
                                                                       citizen: Any, rp: Any) -> None:
    query, verifier = authorize_code(web, rp, scope="profile")
    tokens = exchange(web, rp, query["code"], verifier).get_json()
    info = web.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 403 and 'error="insufficient_scope"' in info.headers["WWW-Authenticate"]
    assert "staff" not in info.headers["WWW-Authenticate"]
