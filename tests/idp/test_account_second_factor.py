"""Issue 18 §4: a citizen turns on TOTP on the account page; recovery codes shown once, hashed at rest."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pyotp
import sqlalchemy as sa

from idp.models import AuditEvent, Citizen, RecoveryCode
from idp.second_factor import RECOVERY_CODES, recovery_codes_left
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, authorize_code, csrf_of, login

_SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_CODES = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")


def _start(web):
    html = web.get("/account").get_data(as_text=True)
    page = web.post("/account/second-factor", data={"csrf_token": csrf_of(html), "current_password": PASSWORD})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    body = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in body
    return body, _SECRET.search(body).group(1), unescape(_TOKEN.search(body).group(1))


def _confirm(web, body, token, code):
    return web.post("/account/second-factor/confirm",
                    data={"csrf_token": csrf_of(body), "token": token, "code": code})


def _enrol(web):
    body, secret, token = _start(web)
    done = _confirm(web, body, token, pyotp.TOTP(secret).now())
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    return secret, _CODES.findall(done.get_data(as_text=True))


def test_enrolment_needs_a_matching_code_then_shows_recovery_codes_once(web, citizen, rp, idp_services):
    authorize_code(web, rp)
    body, secret, token = _start(web)
    assert idp_services.accounts.get(citizen.id).totp_secret_enc is None  # nothing stored before the code
    wrong = _confirm(web, body, token, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    assert wrong.status_code == 400 and secret in wrong.get_data(as_text=True)
    assert _confirm(web, body, token[:-4] + "AAAA", pyotp.TOTP(secret).now()).status_code == 400  # tampered
    done = _confirm(web, body, token, pyotp.TOTP(secret).now())
    codes = _CODES.findall(done.get_data(as_text=True))
    assert len(codes) == len(set(codes)) == RECOVERY_CODES
    assert idp_services.accounts.get(citizen.id).has_totp
    with idp_services.db.session() as s:
        stored = [r.code_hash for r in s.scalars(sa.select(RecoveryCode)).all()]
        kinds = [e.kind for e in s.scalars(sa.select(AuditEvent)).all()]
    assert len(stored) == RECOVERY_CODES
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in stored)  # hashed at rest
    assert "account.totp_enrolled" in kinds
    assert not any(c in web.get("/account").get_data(as_text=True) for c in codes)  # never shown again


def test_a_recovery_code_signs_in_once_instead_of_the_app(app, web, citizen, rp, idp_services):
    authorize_code(web, rp)
    _secret, codes = _enrol(web)
    for attempt, expected in ((codes[0], True), (codes[0], False), (codes[1].upper(), True)):
        browser = app.test_client()
        resp = login(browser, "/login")
        where = resp.headers["Location"]
        assert urlsplit(where).path == "/login/second-factor"
        page = browser.get(where)
        assert "recovery" in page.get_data(as_text=True) or "恢复码" in page.get_data(as_text=True)
        resp = browser.post(where, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "code": attempt})
        assert (resp.status_code in (302, 303)) is expected, (attempt, resp.status_code)
    assert recovery_codes_left(idp_services.accounts, citizen.id) == RECOVERY_CODES - 2


def test_removing_the_second_factor_removes_the_recovery_codes(web, citizen, rp, idp_services):
    authorize_code(web, rp)
    _enrol(web)
    idp_services.accounts.remove_totp(ID_NUMBER, reason="lost phone")
    assert recovery_codes_left(idp_services.accounts, citizen.id) == 0
    with idp_services.db.session() as s:
        assert s.get(Citizen, citizen.id).totp_secret_enc is None


def test_enrolment_needs_a_session_csrf_and_the_password(web, citizen, rp, idp_services):
    assert web.post("/account/second-factor", data={"current_password": PASSWORD}).status_code == 400
    authorize_code(web, rp)
    forged = {"csrf_token": "forged", "current_password": PASSWORD}
    assert web.post("/account/second-factor", data=forged).status_code == 400
    html = web.get("/account").get_data(as_text=True)
    wrong = web.post("/account/second-factor", data={"csrf_token": csrf_of(html), "current_password": "not it"})
    assert wrong.status_code == 400 and 'id="totp-secret"' not in wrong.get_data(as_text=True)
    assert 'id="totp-start-error"' in wrong.get_data(as_text=True)
    with idp_services.db.session() as s:
        kinds = [e.kind for e in s.scalars(sa.select(AuditEvent)).all()]
    assert "account.totp_setup_failed" in kinds
