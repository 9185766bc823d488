"""The code carries the citizen's claims; the account is still checked when the tokens are recorded."""

from __future__ import annotations

import sqlalchemy as sa

from idp.models import TokenRecord
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, authorize_code, exchange


def _records(services) -> int:
    with services.db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(TokenRecord)) or 0


def test_the_exchange_does_not_read_the_citizen_again(app, web, citizen, rp, monkeypatch):
    q, v = authorize_code(web, rp, scope="openid profile email")
    provider = app.extensions["yiwang"].provider

    def no_read(*a, **kw):
        raise AssertionError("the citizen was read again")

    monkeypatch.setattr(provider, "get_citizen", no_read)
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 200, resp.data
    info = web.get("/userinfo", headers={"Authorization": "Bearer " + resp.get_json()["access_token"]})
    assert info.get_json()["name"] == "张三" and info.get_json()["email"] == "zs@example.cn"


def test_a_code_of_an_account_disabled_meanwhile_gives_nothing(web, idp_services, citizen, rp):
    q, v = authorize_code(web, rp)
    before = _records(idp_services)
    idp_services.accounts.set_disabled(ID_NUMBER, True)
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert _records(idp_services) == before


def test_a_code_of_an_account_deleted_meanwhile_gives_nothing(web, idp_services, citizen, rp):
    from idp.models import Citizen

    q, v = authorize_code(web, rp)
    with idp_services.db.session() as s:
        s.execute(sa.delete(Citizen).where(Citizen.id == citizen.id))
    resp = exchange(web, rp, q["code"], v)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert _records(idp_services) == 0
