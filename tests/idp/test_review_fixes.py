"""Review findings of the idp (flow binding, device consent, proxies, login_hint, headers, file modes)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    PASSWORD,
    csrf_of,
    login,
    make_id,
    pkce_pair,
    query_of,
)

OTHER_ID = make_id("11010519800101001")
OTHER_PASSWORD = "attacker password 1"  # noqa: S105 - test account


def _params(rp, **kw):
    _v, ch = pkce_pair()
    p = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
         "scope": "openid profile", "state": "s", "code_challenge": ch, "code_challenge_method": "S256"}
    p.update(kw)
    return p


def _consent_resume_url(web, rp, id_number, password=PASSWORD):
    """Log in as ``id_number``, allow the consent, stop at the 303 to /authorize/resume."""
    resp = web.get("/authorize", query_string=_params(rp))
    resp = login(web, resp.headers["Location"], id_number=id_number, password=password)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    resp = web.get(resp.headers["Location"])  # resume → consent
    loc = resp.headers["Location"]
    assert urlsplit(loc).path == "/consent"
    page = web.get(loc)
    resp = web.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/authorize/resume"
    return resp.headers["Location"]


def test_resume_url_of_another_browser_does_not_carry_its_consent(app, idp_services, citizen, rp):
    idp_services.accounts.add(OTHER_ID, "李四", OTHER_PASSWORD)
    attacker, victim = app.test_client(), app.test_client()
    resume = _consent_resume_url(attacker, rp, OTHER_ID, OTHER_PASSWORD)
    # The victim is signed in (to a first-party page, say) but never consented to rp.
    resp = victim.get("/authorize", query_string=_params(rp))
    login(victim, resp.headers["Location"], id_number=ID_NUMBER)
    resp = victim.get(resume)
    assert resp.status_code == 302
    loc = resp.headers["Location"]
    assert not loc.startswith(rp.redirect_uri) and "code=" not in loc
    assert urlsplit(loc).path == "/consent"


def test_resume_url_without_session_asks_to_log_in(app, idp_services, citizen, rp):
    idp_services.accounts.add(OTHER_ID, "李四", OTHER_PASSWORD)
    attacker, other = app.test_client(), app.test_client()
    resume = _consent_resume_url(attacker, rp, OTHER_ID, OTHER_PASSWORD)
    resp = other.get(resume)
    assert urlsplit(resp.headers["Location"]).path == "/login"


def test_resume_in_the_same_browser_issues_the_code(app, idp_services, citizen, rp):
    web = app.test_client()
    resume = _consent_resume_url(web, rp, ID_NUMBER)
    resp = web.get(resume)
    assert resp.headers["Location"].startswith(rp.redirect_uri) and "code" in query_of(resp.headers["Location"])
