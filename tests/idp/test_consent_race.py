"""Two consents for the same citizen and client at once: the second updates, never a 500."""

from __future__ import annotations

import sqlalchemy as sa

from idp.models import Consent
from tests.idp.oidc_helpers import *  # noqa: F403


def test_losing_the_insert_race_updates_the_winners_row(app, idp_services, citizen, rp):
    from idp.consents import ConsentService

    db = idp_services.db
    raced = []

    @sa.event.listens_for(sa.orm.Session, "before_flush")
    def _other_tab_first(session, _ctx, _instances):
        # Just before our INSERT, another request commits the same consent.
        if raced or not any(isinstance(o, Consent) for o in session.new):
            return
        raced.append(1)
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Consent).values(citizen_id=citizen.id, client_id=rp.client_id,
                                                   scopes=["openid"]))

    try:
        ConsentService(db, idp_services.audit).remember(citizen.id, rp.client_id, ["openid", "profile"])
    finally:
        sa.event.remove(sa.orm.Session, "before_flush", _other_tab_first)
    assert raced == [1]
    with db.session() as s:
        rows = s.scalars(sa.select(Consent).where(Consent.citizen_id == citizen.id)).all()
        assert [(r.client_id, r.scopes, r.revoked_at) for r in rows] == [(rp.client_id, ["openid", "profile"], None)]
