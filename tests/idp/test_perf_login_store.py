"""The password login's store costs (issue 16): the Core citizen read, the flow's JSON.

The fast paths must give what the slow ones gave: the same Citizen (every
column, the same ORM state), the same flow JSON byte for byte. Run with and
without ``YIWANG_TEST_DATABASE_URL``: PostgreSQL reads through psycopg
directly, SQLite through SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from idp.models import Citizen
from idp.oauth.flow import FLOW_VERSION, Flow, FlowState, Step
from idp.services import Services
from tests.idp.data_helpers import *  # noqa: F403
from tests.idp.data_helpers import make_id

ALICE = make_id("11010519491231002")
BOB = make_id("44030019900101123")
NOBODY = make_id("31010119800202345")

_COLUMNS = [a.key for a in sa.inspect(Citizen).column_attrs]


def _orm(services: Services, number: str) -> Citizen | None:
    return services.accounts.find_by_id_number(number)


def _fast(services: Services, number: str) -> Citizen | None:
    return services.accounts._login_read.citizen(services.accounts.index_of(number))


def test_the_login_read_gives_the_orm_entity_column_for_column(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse", phone="+8613800000000", email="a@example.cn")
    services.accounts.add(BOB, "李四")  # no password, no phone
    services.accounts.enrol_totp(ALICE)
    services.accounts.set_disabled(BOB, True)
    for number in (ALICE, BOB):
        slow, fast = _orm(services, number), _fast(services, number)
        assert slow is not None and fast is not None
        for key in _COLUMNS:
            assert getattr(fast, key) == getattr(slow, key), key
            assert type(getattr(fast, key)) is type(getattr(slow, key)), key
        assert fast.has_totp == slow.has_totp
        state = sa.inspect(fast)
        assert state.detached and state.identity == (slow.id,)
        assert not state.expired_attributes and not state.modified
    assert fast.created_at.tzinfo is dt.UTC  # type: ignore[union-attr]
    assert _fast(services, NOBODY) is None


def test_a_login_read_citizen_can_be_updated_like_a_loaded_one(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    citizen = _fast(services, ALICE)
    assert citizen is not None
    with services.db.session() as s:  # merged as persistent: an UPDATE, never an INSERT
        merged = s.merge(citizen)
        merged.name = "王五"
    assert _orm(services, ALICE).name == "王五"  # type: ignore[union-attr]
    with Session(services.db.engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Citizen)) == 1


def test_login_outcomes_through_the_login_read(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    services.accounts.add(BOB, "李四", "battery staple")
    services.accounts.set_disabled(BOB, True)
    ok = services.accounts.login(ALICE, "correct horse")
    assert ok.ok and ok.citizen is not None and ok.citizen.id_number_masked.startswith(ALICE[:6])
    assert services.accounts.login(ALICE, "wrong horse").status == "invalid"
    assert services.accounts.login(BOB, "battery staple").status == "invalid"  # disabled
    assert services.accounts.login(NOBODY, "correct horse").status == "invalid"


# ------------------------------------------------------------------ flow JSON


def _asdict_json(flow: Flow) -> str:
    """The flow's JSON as it was written through dataclasses.asdict."""
    data = dataclasses.asdict(flow)
    data.pop("id")
    data["state"] = flow.state.value
    data["v"] = FLOW_VERSION
    return json.dumps(data, separators=(",", ":"))


def _flows() -> list[Flow]:
    full = Flow.authorization(
        {"response_type": "code", "client_id": "rp", "scope": "openid profile", "nonce": "n-ï"},
        client_id="rp", client_name="示例", scopes=["openid", "profile"],
        redirect_uri="https://rp.example/cb", pushed=False,
    )
    full.oauth_state = "xyz"
    full.ui_locales = "zh-CN"
    full.pushed = True
    full.login_hint = "hint"
    full.browser = "ab" * 32
    full.pending_citizen = 7
    full.login_sid = "sid1"
    full.consent_sid = "sid2"
    full.granted = ["openid"]
    full.id = "not-serialised"
    waiting = Flow.authorization({}, client_id="rp", client_name=None, scopes=[], redirect_uri="x", pushed=False)
    waiting.wait_for(Step.LOGIN)
    return [full, waiting, Flow.login_only(), Flow(state=FlowState.DONE)]


def test_flow_json_is_what_asdict_wrote_and_reads_back() -> None:
    for flow in _flows():
        raw = flow.to_json()
        assert raw == _asdict_json(flow)
        back = Flow.from_json(raw, flow_id=flow.id)
        assert back == flow and back is not None and back.id == flow.id
        assert back.params is not flow.params


def test_flow_json_does_not_share_or_change_the_flow() -> None:
    flow = _flows()[0]
    flow.to_json()
    flow.params["later"] = "1"
    flow.scopes.append("email")
    assert json.loads(flow.to_json())["params"]["later"] == "1"
    assert "email" in json.loads(flow.to_json())["scopes"]
    assert "id" not in json.loads(flow.to_json())
