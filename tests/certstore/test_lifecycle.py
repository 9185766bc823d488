"""The certificate state machine, without a server."""

from __future__ import annotations

import datetime as dt

import pytest

from certstore.errors import InvalidInput
from certstore.lifecycle import (
    TERMINAL,
    Action,
    ForbiddenTransition,
    Status,
    allowed_actions,
    is_expired,
    status_list_value,
    transition,
)

AT = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
CID = "1.2.156.3005.2.JZZM.111101050000000017.000001.1.X"


def go(current: str | Status, action: str | Action, **kw: object) -> object:
    kw.setdefault("reason", "clerk error")
    kw.setdefault("actor", "client:demo-psb")
    return transition(current, action, identifier=CID, at=AT, **kw)  # type: ignore[arg-type]


def test_suspend_then_reinstate_round_trip() -> None:
    ev = go("01", "suspend")
    assert (ev.from_status, ev.to_status) == (Status.VALID, Status.SUSPENDED)
    assert ev.reason == "clerk error" and ev.actor == "client:demo-psb" and ev.at == AT
    back = go(ev.to_status, Action.REINSTATE)
    assert back.to_status is Status.VALID
    assert back.audit_detail() == {"from": "02", "to": "01", "reason": "clerk error"}


@pytest.mark.parametrize(
    ("action", "target"),
    [("revoke", "03"), ("cancel", "04"), ("expire", "05"), ("withdraw", "07"), ("transfer_out", "06")],
)
def test_each_terminal_action_from_valid(action: str, target: str) -> None:
    assert go("01", action).to_status.value == target


def test_revoked_certificate_cannot_be_reinstated() -> None:
    with pytest.raises(ForbiddenTransition, match="a revoked certificate cannot be reinstated"):
        go("03", "reinstate")


def test_terminal_states_allow_nothing() -> None:
    for status in TERMINAL:
        assert allowed_actions(status) == []
        for action in Action:
            kw = {"superseded_by": CID} if action is Action.SUPERSEDE else {}
            with pytest.raises(ForbiddenTransition) as exc:
                go(status, action, **kw)
            assert exc.value.status == 409
            assert "final" in str(exc.value)


def test_specific_messages() -> None:
    with pytest.raises(ForbiddenTransition, match="not suspended"):
        go("01", "reinstate")
    with pytest.raises(ForbiddenTransition, match="already suspended"):
        go("02", "suspend")
    with pytest.raises(ForbiddenTransition, match="reinstate it first"):
        go("02", "transfer_out")


def test_suspended_certificate_can_be_revoked_or_expire() -> None:
    assert go("02", "revoke").to_status is Status.REVOKED
    assert go("02", "expire").to_status is Status.EXPIRED


def test_supersede_cancels_and_links() -> None:
    new = CID.replace(".1.X", ".2.Y")
    ev = go("01", "supersede", superseded_by=new)
    assert ev.to_status is Status.CANCELLED
    assert ev.audit_detail()["superseded_by"] == new
    with pytest.raises(InvalidInput):
        go("01", "supersede")
    with pytest.raises(InvalidInput):
        go("01", "revoke", superseded_by=new)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "bad\x00char"])
def test_reason_is_required_and_bounded(reason: str) -> None:
    with pytest.raises(InvalidInput, match="reason"):
        go("01", "revoke", reason=reason)


def test_unknown_status_and_action_are_input_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown certificate status"):
        go("99", "revoke")
    with pytest.raises(InvalidInput, match="unknown action"):
        go("01", "destroy")


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError):
        transition("01", "revoke", identifier=CID, reason="r", actor="a", at=dt.datetime(2026, 1, 1))


def test_status_list_values_follow_the_ietf_draft() -> None:
    assert status_list_value("01") == 0
    assert status_list_value("02") == 2
    assert {status_list_value(s) for s in TERMINAL} == {1}


def test_expiry_is_end_of_day_china_time() -> None:
    day = dt.date(2026, 11, 27)
    # 23:59 CST on the last day is 15:59 UTC: still valid; 16:00 UTC is midnight CST.
    assert not is_expired(day, dt.datetime(2026, 11, 27, 15, 59, tzinfo=dt.UTC))
    assert is_expired(day, dt.datetime(2026, 11, 27, 16, 0, tzinfo=dt.UTC))
    assert not is_expired(None, dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
