"""Authorization endpoint: redirect safety, PKCE rules, prompt, max_age, acr step-up, consent, ID number."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlsplit

import pyotp

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    ISSUER,
    authorize_code,
    csrf_of,
    exchange,
    is_login_page,
    login,
    login_action,
    make_rp,
    pkce_pair,
    query_of,
)


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _params(rp, **kw):
    _v, ch = pkce_pair()
    p = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
         "scope": "openid profile", "state": "s", "code_challenge": ch, "code_challenge_method": "S256"}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def test_unregistered_redirect_uri_shows_page_never_redirects(web, rp):
    for uri in ("https://evil.example/cb", rp.redirect_uri + "?x=1", rp.redirect_uri + "/", "https://portal.example.cn/cb#f"):
        resp = web.get("/authorize", query_string=_params(rp, redirect_uri=uri))
        assert resp.status_code == 400
        assert "Location" not in resp.headers
        assert "text/html" in resp.headers["Content-Type"]


def test_unknown_client_shows_page(web):
    resp = web.get("/authorize", query_string={"response_type": "code", "client_id": "nobody",
                                               "redirect_uri": "https://evil.example/cb"})
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_errors_redirect_once_client_and_uri_are_good(web, rp):
    resp = web.get("/authorize", query_string=_params(rp, response_type="token"))
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(rp.redirect_uri)
    assert q["error"] == "unsupported_response_type" and q["state"] == "s" and q["iss"] == ISSUER


def test_plain_pkce_refused(web, rp):
    resp = web.get("/authorize", query_string=_params(rp, code_challenge_method="plain"))
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"
    resp = web.get("/authorize", query_string=_params(rp, code_challenge_method=None))
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


def test_public_client_requires_pkce(web, public_rp):
    resp = web.get("/authorize", query_string=_params(public_rp, code_challenge=None, code_challenge_method=None))
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


def test_public_client_full_flow(web, citizen, public_rp):
    q, v = authorize_code(web, public_rp)
    resp = exchange(web, public_rp, q["code"], v)
    assert resp.status_code == 200, resp.data


def test_duplicate_parameters_refused(web, rp):
    qs = "&".join(f"{k}={v}" for k, v in _params(rp).items()) + "&state=again"
    resp = web.get("/authorize?" + qs)
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_prompt_none_without_session_is_login_required(web, rp):
    resp = web.get("/authorize", query_string=_params(rp, prompt="none"))
    q = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(rp.redirect_uri) and q["error"] == "login_required"


def test_prompt_none_with_session_but_no_consent_is_consent_required(web, citizen, rp, first_party_rp):
    authorize_code(web, first_party_rp)  # signs in, no consent needed for first party
    resp = web.get("/authorize", query_string=_params(rp, prompt="none"))
    assert query_of(resp.headers["Location"])["error"] == "consent_required"


def test_sso_prompt_none_after_login_and_consent(web, citizen, rp):
    first, _ = authorize_code(web, rp)
    resp = web.get("/authorize", query_string=_params(rp, prompt="none"))
    q = query_of(resp.headers["Location"])
    assert "code" in q and q["iss"] == ISSUER


def test_first_party_skips_consent(web, citizen, first_party_rp):
    resp = web.get("/authorize", query_string=_params(first_party_rp))
    assert is_login_page(resp)  # the form answers /authorize itself, no redirect to /login
    resp = login(web, resp)
    # The login POST answers the authorization request itself: 303, never a repeated POST.
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(first_party_rp.redirect_uri)
    assert "code" in query_of(resp.headers["Location"])
    assert any(c.startswith("yw_sso=") for c in resp.headers.getlist("Set-Cookie"))


def test_consent_denied_is_access_denied(web, citizen, rp):
    q, _ = authorize_code(web, rp, consent=False)
    assert q["error"] == "access_denied" and q["state"] == "st-1"


def test_prompt_login_forces_fresh_login_and_updates_auth_time(app, web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = _claims(exchange(web, rp, q["code"], v).get_json()["id_token"])
    time.sleep(1.1)
    verifier, challenge = pkce_pair()
    resp = web.get("/authorize", query_string=_params(rp, prompt="login", code_challenge=challenge))
    assert is_login_page(resp)
    resp = login(web, resp)  # consent remembered: the code, no loop back to login
    q2 = query_of(resp.headers["Location"])
    second = _claims(exchange(web, rp, q2["code"], verifier).get_json()["id_token"])
    assert second["auth_time"] > first["auth_time"] and second["sid"] == first["sid"]


def test_max_age_zero_forces_login(web, citizen, rp):
    authorize_code(web, rp)
    time.sleep(1.1)
    resp = web.get("/authorize", query_string=_params(rp, max_age="0"))
    assert is_login_page(resp)
    resp = web.get("/authorize", query_string=_params(rp, max_age="0", prompt="none"))
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = web.get("/authorize", query_string=_params(rp, max_age="-1"))
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


def test_max_age_login_updates_auth_time_in_same_session(app, web, citizen, rp):
    q, v = authorize_code(web, rp)
    first = _claims(exchange(web, rp, q["code"], v).get_json()["id_token"])
    time.sleep(1.1)
    q2, v2 = authorize_code(web, rp, extra={"max_age": "0"})
    second = _claims(exchange(web, rp, q2["code"], v2).get_json()["id_token"])
    assert second["auth_time"] > first["auth_time"]
    assert second["sid"] == first["sid"]


def test_totp_account_needs_second_factor_and_gets_2fa_acr(web, idp_services, citizen, rp):
    enrol = idp_services.accounts.enrol_totp(ID_NUMBER)
    verifier, challenge = pkce_pair()
    resp = web.get("/authorize", query_string=_params(rp, code_challenge=challenge))
    resp = login(web, resp)
    assert urlsplit(resp.headers["Location"]).path == "/login/second-factor"
    page = web.get(resp.headers["Location"])
    bad = web.post(resp.headers["Location"], data={"csrf_token": csrf_of(page.get_data(as_text=True)), "code": "000000"})
    assert bad.status_code == 401
    code = pyotp.TOTP(enrol.secret).now()
    resp = web.post(resp.headers["Location"], data={"csrf_token": csrf_of(page.get_data(as_text=True)), "code": code})
    resp = web.get(resp.headers["Location"])  # resume → consent
    page = web.get(resp.headers["Location"])
    resp = web.post(resp.headers["Location"], data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
    resp = web.get(resp.headers["Location"])
    q = query_of(resp.headers["Location"])
    idt = _claims(exchange(web, rp, q["code"], verifier).get_json()["id_token"])
    assert idt["acr"] == "urn:yiwang:acr:2fa" and idt["amr"] == ["pwd", "otp"]


def test_step_up_keeps_the_session(web, idp_services, citizen, first_party_rp):
    q, v = authorize_code(web, first_party_rp)
    before = _claims(exchange(web, first_party_rp, q["code"], v).get_json()["id_token"])
    assert before["acr"] == "urn:yiwang:acr:pwd"
    enrol = idp_services.accounts.enrol_totp(ID_NUMBER)
    verifier, challenge = pkce_pair()
    resp = web.get("/authorize", query_string=_params(first_party_rp, code_challenge=challenge,
                                                      acr_values="urn:yiwang:acr:2fa"))
    assert urlsplit(resp.headers["Location"]).path == "/login/second-factor"
    page = web.get(resp.headers["Location"])
    resp = web.post(resp.headers["Location"], data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                                    "code": pyotp.TOTP(enrol.secret).now()})
    resp = web.get(resp.headers["Location"])
    q2 = query_of(resp.headers["Location"])
    after = _claims(exchange(web, first_party_rp, q2["code"], verifier).get_json()["id_token"])
    assert after["acr"] == "urn:yiwang:acr:2fa" and after["sid"] == before["sid"]


def test_id_number_never_released_to_unregistered_client(web, citizen, rp):
    q, v = authorize_code(web, rp, scope="openid profile id_number", share_id_number=True)
    tokens = exchange(web, rp, q["code"], v).get_json()
    assert "id_number" not in _claims(tokens["id_token"])
    ui = web.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).get_json()
    assert "id_number" not in ui and ID_NUMBER not in json.dumps(ui)


def test_id_number_needs_consent_even_for_first_party(web, idp_services, citizen):
    rp = make_rp(idp_services, name="公安", first_party=True, may_receive_id_number=True,
                 scopes=("openid", "profile", "id_number"), redirect_uri="https://ga.example.cn/cb")
    # consent page is shown; not ticking the box withholds the number
    q, v = authorize_code(web, rp, scope="openid profile id_number", share_id_number=False)
    tokens = exchange(web, rp, q["code"], v).get_json()
    assert "id_number" not in _claims(tokens["id_token"])
    assert "id_number" not in tokens["scope"].split()


def test_id_number_released_with_registration_and_consent(web, idp_services, citizen):
    rp = make_rp(idp_services, name="社保", may_receive_id_number=True,
                 scopes=("openid", "profile", "id_number"), redirect_uri="https://sb.example.cn/cb")
    q, v = authorize_code(web, rp, scope="openid profile id_number", share_id_number=True)
    tokens = exchange(web, rp, q["code"], v).get_json()
    # Issue 11 §4: released through userinfo only, never in an ID token (nor its refresh).
    assert "id_number" in tokens["scope"].split()
    assert "id_number" not in _claims(tokens["id_token"])
    ui = web.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).get_json()
    assert ui["id_number"] == ID_NUMBER
    refreshed = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                         headers=rp.basic()).get_json()
    assert "id_number" not in _claims(refreshed["id_token"])


def test_pairwise_sub_differs_per_sector_and_public_is_stable(web, idp_services, citizen):
    a = make_rp(idp_services, name="A", redirect_uri="https://a.example.cn/cb")
    b = make_rp(idp_services, name="B", redirect_uri="https://b.example.cn/cb")
    a2 = make_rp(idp_services, name="A2", redirect_uri="https://a.example.cn/other")
    subs = {}
    for name, c in (("a", a), ("b", b), ("a2", a2)):
        q, v = authorize_code(web, c)
        subs[name] = _claims(exchange(web, c, q["code"], v).get_json()["id_token"])["sub"]
    assert subs["a"] != subs["b"]
    assert subs["a"] == subs["a2"]  # same sector (host)


def test_front_channel_login_hint_is_ignored(web, rp):
    # An ID number in a URL lands in logs and history: only a pushed (PAR) hint prefills.
    resp = web.get("/authorize", query_string=_params(rp, login_hint=ID_NUMBER))
    assert is_login_page(resp) and ID_NUMBER not in resp.get_data(as_text=True)
    fid = query_of(login_action(resp))["flow"]
    assert ID_NUMBER not in web.get(f"/login?flow={fid}").get_data(as_text=True)


def test_disabled_account_loses_sso(web, idp_services, citizen, rp):
    authorize_code(web, rp)
    idp_services.accounts.set_disabled(ID_NUMBER, True)
    resp = web.get("/authorize", query_string=_params(rp, prompt="none"))
    assert query_of(resp.headers["Location"])["error"] == "login_required"


def test_flow_ends_with_the_code_it_produced(web, citizen, first_party_rp):
    """The finished flow is deleted in the code's own round trip: its links are dead."""
    resp = web.get("/authorize", query_string=_params(first_party_rp))
    login_url = login_action(resp)
    fid = query_of(login_url)["flow"]
    resp = login(web, resp)
    assert "code" in query_of(resp.headers["Location"])
    again = web.get(f"/authorize/resume?flow={fid}")
    assert again.status_code == 400 and "Location" not in again.headers
    assert web.get(login_url).status_code == 400  # the login page of that flow is gone too



def test_a_login_parses_the_id_number_once(web, citizen, rp, monkeypatch):
    """The login page parses it for its messages and hands the parsed value on (issue 12 §3)."""
    import idp.accounts
    import idp.web.views_auth
    from keys.identifiers import parse_resident_id

    calls = []

    def counting(value):
        calls.append(1)
        return parse_resident_id(value)

    monkeypatch.setattr(idp.accounts, "parse_resident_id", counting)
    monkeypatch.setattr(idp.web.views_auth, "parse_resident_id", counting)
    query, _verifier = authorize_code(web, rp)
    assert "code" in query
    assert calls == [1]


def test_iss_is_in_every_authorization_response_exactly_once(web, citizen, rp):
    """RFC 9207 §2: the code redirect carries ``iss`` from the grant itself (the hook skips it),
    every other redirect from the hook; never twice, on the Flask view and the hot path alike."""
    from urllib.parse import parse_qs, urlsplit

    def iss_values(resp):
        return parse_qs(urlsplit(resp.headers["Location"]).query).get("iss")

    first = web.get("/authorize", query_string=_params(rp))  # no session: the login page first
    assert first.status_code == 200
    authorize_code(web, rp)  # signed in, consent given: a code through the Flask view
    silent = web.get("/authorize", query_string=_params(rp))  # the session cookie: the hot path
    assert "code=" in silent.headers["Location"] and iss_values(silent) == [ISSUER]
    refused = web.get("/authorize", query_string=_params(rp, response_type="token"))
    assert "error=" in refused.headers["Location"] and iss_values(refused) == [ISSUER]
    none = web.get("/authorize", query_string=_params(rp, prompt="none", scope="openid phone"))
    assert iss_values(none) == [ISSUER]
