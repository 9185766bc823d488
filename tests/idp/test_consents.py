"""ConsentService: a grant adds to what a client holds (issue 18 §2), revoking is explicit, one query for authorize."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from idp.consents import ConnectedApp, ConsentService, chosen_scopes, merged_scopes
from idp.models import AuditEvent, Client
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import make_rp


@pytest.fixture
def consents(idp_services: Any) -> ConsentService:
    return ConsentService(idp_services.db, idp_services.audit)


def _held(consents: ConsentService, citizen: Any) -> dict[str, list[str]]:
    return {app.client_id: app.scopes for app in consents.connected_apps(citizen.id)}


def test_a_grant_adds_to_what_the_client_holds(consents, citizen, rp):
    assert consents.remember(citizen.id, rp.client_id, ["openid", "profile", "certs:read"]) == [
        "openid", "profile", "certs:read"]
    assert consents.remember(citizen.id, rp.client_id, ["openid", "profile"]) == ["openid", "profile", "certs:read"]
    assert consents.remember(citizen.id, rp.client_id, ["phone"]) == ["openid", "profile", "certs:read", "phone"]
    assert _held(consents, citizen) == {rp.client_id: ["openid", "profile", "certs:read", "phone"]}


def test_revoking_is_explicit_and_a_new_grant_after_it_starts_afresh(consents, citizen, rp, idp_services):
    consents.remember(citizen.id, rp.client_id, ["openid", "profile", "certs:read"])
    revoked: list[list[str]] = []
    consents.revoke(citizen.id, rp.client_id, revoke_tokens=revoked.append)
    assert revoked == [[]]  # no tokens yet, but the callback heard of it
    assert _held(consents, citizen) == {}
    assert consents.citizen_and_consent(citizen.id, rp.client_id)[1].current is None
    assert consents.remember(citizen.id, rp.client_id, ["openid"]) == ["openid"]
    assert _held(consents, citizen) == {rp.client_id: ["openid"]}
    with idp_services.db.session() as s:
        kinds = s.scalars(sa.select(AuditEvent.kind).where(AuditEvent.client_id == rp.client_id)).all()
    assert kinds.count("consent.granted") == 2 and kinds.count("consent.revoked") == 1


def test_device_approval_adds_to_the_consent_and_returns_the_device_scope(consents, citizen, idp_services):
    rp = make_rp(idp_services, name="门户 C", scopes=("openid", "profile", "phone"))
    with idp_services.db.session() as s:
        client = s.scalars(sa.select(Client).where(Client.client_id == rp.client_id)).one()
    consents.remember(citizen.id, rp.client_id, ["openid", "profile", "phone"])
    scope = consents.approve_device(citizen.id, client, ["openid", "profile"], share_id_number=False)
    assert scope == "openid profile"
    assert _held(consents, citizen) == {rp.client_id: ["openid", "profile", "phone"]}


def test_citizen_and_consent_is_one_query(consents, citizen, rp, idp_services, monkeypatch):
    consents.remember(citizen.id, rp.client_id, ["profile"])
    statements: list[str] = []

    @sa.event.listens_for(idp_services.db.engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    # On PostgreSQL the read goes straight to psycopg (idp.oauth.pgdirect), past SQLAlchemy's events.
    from idp.oauth.pgdirect import Direct

    direct_rows = Direct.rows

    def counted(self, engine, params):
        statements.append(self.sql)
        return direct_rows(self, engine, params)

    monkeypatch.setattr(Direct, "rows", counted)
    try:
        found, consent = consents.citizen_and_consent(citizen.id, rp.client_id)
    finally:
        sa.event.remove(idp_services.db.engine, "before_cursor_execute", _count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert found.id == citizen.id and found.name == "张三" and not found.has_totp and not found.disabled
    assert consent.current == ["profile"]
    other = make_rp(idp_services, name="另一个")
    assert consents.citizen_and_consent(citizen.id, other.client_id)[1] is None
    assert consents.citizen_and_consent(citizen.id + 1000, rp.client_id) == (None, None)


def test_citizen_and_consent_reads_what_the_orm_path_reads(consents, citizen, rp, idp_services):
    """The direct psycopg read (PostgreSQL) and SQLAlchemy's give the same views, revoked consent included."""
    from idp.consents import _citizen_and_consent_stmt

    def orm_path(client_id: str) -> Any:
        row = idp_services.db.first_row(_citizen_and_consent_stmt(), {"citizen_id": citizen.id, "client_id": client_id})
        return (tuple(row[:7]), (list(row[7] or []), row[8] is None) if row[9] is not None else None)

    def service(client_id: str) -> Any:
        found, consent = consents.citizen_and_consent(citizen.id, client_id)
        return (tuple(found), (consent.scopes, consent.revoked_at is None) if consent is not None else None)

    assert service(rp.client_id) == orm_path(rp.client_id)  # no consent row yet
    consents.remember(citizen.id, rp.client_id, ["openid", "profile"])
    assert service(rp.client_id) == orm_path(rp.client_id) and service(rp.client_id)[1] == (["openid", "profile"], True)
    consents.revoke(citizen.id, rp.client_id)
    assert service(rp.client_id) == orm_path(rp.client_id)
    assert consents.citizen_and_consent(citizen.id, rp.client_id)[1].current is None


def test_connected_apps_name_the_client(consents, citizen, rp):
    consents.remember(citizen.id, rp.client_id, ["profile"])
    assert consents.connected_apps(citizen.id) == [ConnectedApp(rp.client_id, "办事大厅", ["profile"])]


def test_chosen_and_merged_scopes():
    assert chosen_scopes(["openid", "id_number", "profile"], share_id_number=False) == ["openid", "profile"]
    assert chosen_scopes(["openid", "id_number"], share_id_number=True) == ["openid", "id_number"]
    assert chosen_scopes(["openid"], share_id_number=True) == ["openid"]
    assert merged_scopes(None, ["a", "b"]) == ["a", "b"]
    assert merged_scopes(["a", "c"], ["b", "a"]) == ["a", "c", "b"]
