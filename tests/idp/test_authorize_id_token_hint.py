"""``id_token_hint`` at the authorization endpoint (OIDC Core §3.1.2.1).

A silent answer only for the End-User the hint names: a hint of someone else
is ``login_required`` under ``prompt=none`` and the login page otherwise; a
hint that is not an ID token of ours is ``invalid_request`` at the redirect
URI. The ``sub`` is compared as the hint's own client knows the citizen
(pairwise per sector). The hot path and Flask decide through the same
sign-in (tests/idp/test_fastpath_differential.py compares them).
"""

from __future__ import annotations

import time

from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ISSUER,
    PASSWORD,
    authorize_code,
    authorize_params,
    exchange,
    is_login_page,
    login,
    make_id,
    pkce_pair,
    query_of,
)

OTHER_ID = make_id("11010519800101003")


def _redirect(resp, rp) -> dict[str, str]:
    assert resp.status_code in (302, 303), (resp.status_code, resp.data[:300])
    assert resp.headers["Location"].startswith(rp.redirect_uri)
    return query_of(resp.headers["Location"])


def _id_token(web, rp, code: str, verifier: str) -> str:
    resp = exchange(web, rp, code, verifier)
    assert resp.status_code == 200, resp.data
    return resp.get_json()["id_token"]


def _signed_in(web, rp) -> str:
    """Sign the usual citizen in at ``rp`` (a first-party portal: no consent page); their ID token."""
    q, verifier = authorize_code(web, rp)
    return _id_token(web, rp, q["code"], verifier)


def _other_citizens_token(app, services, rp) -> str:
    services.accounts.add(OTHER_ID, "李四", PASSWORD)
    other = app.test_client()  # another browser
    verifier, challenge = pkce_pair()
    page = other.get("/authorize", query_string={**authorize_params(rp), "code_challenge": challenge})
    q = _redirect(login(other, page, id_number=OTHER_ID), rp)
    return _id_token(other, rp, q["code"], verifier)


def test_the_signed_in_citizens_own_hint_answers_silently(web, citizen, first_party_rp):
    mine = _signed_in(web, first_party_rp)
    q = _redirect(web.get("/authorize", query_string=authorize_params(first_party_rp, prompt="none", id_token_hint=mine)),
                  first_party_rp)
    assert "code" in q and q["iss"] == ISSUER


def test_a_hint_of_someone_else_is_login_required_under_prompt_none(app, web, citizen, first_party_rp,
                                                                     idp_services):
    _signed_in(web, first_party_rp)
    theirs = _other_citizens_token(app, idp_services, first_party_rp)
    q = _redirect(web.get("/authorize", query_string=authorize_params(first_party_rp, prompt="none", id_token_hint=theirs)),
                  first_party_rp)
    assert q["error"] == "login_required" and "code" not in q


def test_a_hint_of_someone_else_shows_the_login_page_and_a_fresh_login_answers(app, web, citizen, first_party_rp,
                                                                                idp_services):
    _signed_in(web, first_party_rp)
    theirs = _other_citizens_token(app, idp_services, first_party_rp)
    page = web.get("/authorize", query_string=authorize_params(first_party_rp, id_token_hint=theirs))
    assert is_login_page(page)
    # Whoever signs in on that page is who the code is for (the portal checks the sub).
    q = _redirect(login(web, page), first_party_rp)
    assert "code" in q


def test_a_hint_issued_to_another_portal_names_the_citizen_by_that_portals_sub(web, citizen, rp, first_party_rp):
    from_the_other_portal = _signed_in(web, first_party_rp)
    authorize_code(web, rp)  # consent at rp, so prompt=none can answer there
    q = _redirect(web.get("/authorize", query_string=authorize_params(rp, prompt="none",
                                                             id_token_hint=from_the_other_portal)), rp)
    assert "code" in q  # pairwise subs differ between the two portals; it is still the same citizen


def test_a_hint_that_is_not_our_id_token_is_invalid_request(web, citizen, first_party_rp):
    _signed_in(web, first_party_rp)
    foreign_key = ECKey.generate_key("P-256")
    now = int(time.time())
    forged = jose_jwt.encode({"alg": "ES256"}, {"iss": ISSUER, "aud": first_party_rp.client_id, "sub": "x",
                                               "iat": now, "exp": now + 300}, foreign_key)
    for hint in ("a.b.c", "not a jwt", forged):
        q = _redirect(web.get("/authorize", query_string=authorize_params(first_party_rp, prompt="none", id_token_hint=hint)),
                      first_party_rp)
        assert q["error"] == "invalid_request" and "code" not in q, hint
