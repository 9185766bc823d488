"""Issue 18: a way back for a stuck citizen — attempts left on the login page, password change."""

from __future__ import annotations

import re
from html import unescape

import sqlalchemy as sa

from idp.models import AuditEvent
from tests.idp.data_helpers import make_id
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, authorize_code, csrf_of, login

NOBODY = make_id("31010119800202345")
NEW_PASSWORD = "a much better passphrase"  # noqa: S105 - test account
WRONG = "wrong horse battery"  # noqa: S105 - test account
_WARNING = re.compile(r'id="attempts-left">([^<]*)<')


def _warnings(web, number: str, tries: int) -> list[tuple[int, str | None]]:
    seen = []
    for _ in range(tries):
        resp = login(web, "/login?lang=en", id_number=number, password=WRONG)
        m = _WARNING.search(resp.get_data(as_text=True))
        seen.append((resp.status_code, unescape(m.group(1)) if m else None))
    return seen


def test_the_login_page_says_how_many_attempts_are_left_alike_for_any_number(web, citizen):
    known = _warnings(web, ID_NUMBER, 6)
    unknown = _warnings(web, NOBODY, 6)
    assert known == unknown  # nothing tells an existing account from a missing one
    assert known[0] == (401, None)
    assert known[2] == (401, "2 attempts left before the account is locked for up to 1 minute.")
    assert known[3] == (401, "1 attempt left before the account is locked for up to 1 minute.")
    assert known[4][0] == 401 and "try again in 1 minute." in known[4][1]
    assert known[5] == (429, None)


def test_the_attempts_left_line_is_in_chinese_by_default(web, citizen):
    for _ in range(3):
        resp = login(web, "/login", id_number=ID_NUMBER, password=WRONG)
    assert "还可以再试 2 次" in resp.get_data(as_text=True)


def _events(idp_services, kind: str) -> list[AuditEvent]:
    with idp_services.db.session() as s:
        return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.kind == kind)).all())


def _change(web, current: str, new: str, again: str | None = None, csrf: str | None = None):
    html = web.get("/account").get_data(as_text=True)
    return web.post("/account/password", data={
        "csrf_token": csrf or csrf_of(html), "current_password": current,
        "new_password": new, "new_password_again": new if again is None else again})


def test_password_change_keeps_this_session_and_ends_the_others(app, web, citizen, rp, idp_services):
    authorize_code(web, rp)
    other = app.test_client()
    login(other, "/login")
    assert other.get("/account").status_code == 200
    assert len(app.extensions["yiwang"].sessions.list_for_citizen(str(citizen.id))) == 2
    resp = _change(web, PASSWORD, NEW_PASSWORD)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account?changed=password")
    page = web.get("/account?changed=password&lang=en")
    assert page.status_code == 200 and "you were signed out on other devices" in page.get_data(as_text=True)
    assert other.get("/account").status_code == 303  # the other browser is signed out
    assert idp_services.accounts.authenticate(ID_NUMBER, NEW_PASSWORD) is not None
    assert idp_services.accounts.authenticate(ID_NUMBER, PASSWORD) is None
    [event] = _events(idp_services, "account.password_changed")
    assert event.actor == "citizen" and ID_NUMBER not in (event.subject or "")
    assert NEW_PASSWORD not in str(event.detail) and PASSWORD not in str(event.detail)


def test_password_change_refuses_bad_input_and_keeps_the_old_password(web, citizen, rp, idp_services):
    authorize_code(web, rp)
    cases = [
        ((PASSWORD, NEW_PASSWORD, "something else entirely"), 400, "not the same"),
        ((PASSWORD, "short"), 400, "At least 8 characters"),
        (("not my password", NEW_PASSWORD), 400, "current password is wrong"),
        ((PASSWORD, ""), 400, "fill in"),
    ]
    web.get("/account?lang=en")
    for args, status, text in cases:
        resp = _change(web, *args)
        assert resp.status_code == status, args
        assert text in resp.get_data(as_text=True), args
    assert _change(web, PASSWORD, NEW_PASSWORD, csrf="forged").status_code == 400
    assert idp_services.accounts.authenticate(ID_NUMBER, PASSWORD) is not None
    assert _events(idp_services, "account.password_changed") == []
    assert len(_events(idp_services, "account.password_change_failed")) == 1


def test_guessing_the_current_password_is_throttled(web, citizen, rp):
    authorize_code(web, rp)
    statuses = [_change(web, f"guess number {n}", NEW_PASSWORD).status_code for n in range(6)]
    assert statuses == [400] * 5 + [429]


def test_password_change_needs_a_session(web, citizen):
    resp = web.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                               "new_password_again": NEW_PASSWORD})
    assert resp.status_code == 400
