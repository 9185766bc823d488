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


# -- a new version supersedes the old one (through the API) -------------------------


def test_new_version_supersedes_the_old(services: object, client: object, mint: object) -> None:
    from typing import Any

    from certstore.service import IssueRequest
    from signing.qr import decode_qr_payload

    from .conftest import DEMO_REQUESTS

    svc: Any = services
    http: Any = client
    req = DEMO_REQUESTS["JZZM"]
    old = svc.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate
    body = dict(req["body"], fields=dict(req["body"]["fields"], address="北京市朝阳区新地址1号"))
    auth = {"Authorization": f"Bearer {mint('demo-psb')}"}  # type: ignore[operator]
    resp = http.post(f"/api/v1/certificates/{old.identifier}/versions", json=body, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    new = resp.get_json()
    new_id = new["identifier"]
    assert new_id.split(".")[7] == old.identifier.split(".")[7]  # same serial
    assert new_id.split(".")[8] == "2" and old.identifier.split(".")[8] == "1"
    assert svc.certificates.get(old.identifier).status == "04"
    assert svc.certificates.get(new_id).status == "01"
    history = svc.certificates.lifecycle.history(old.identifier)
    assert history[-1].action == "certificate.supersede" and history[-1].detail["superseded_by"] == new_id
    # the old QR now fails on status, the new one verifies
    assert not svc.certificates.verify_qr(old.qr_text).valid
    assert svc.certificates.verify_qr(decode_qr_payload(new["qr_text"]) and new["qr_text"]).valid
    # a cancelled certificate cannot get another new version, and only its issuer may make one
    again = http.post(f"/api/v1/certificates/{old.identifier}/versions", json=body, headers=auth)
    assert again.status_code == 409 and "cancelled" in again.get_json()["detail"]
    other = {"Authorization": f"Bearer {mint('demo-amr')}"}  # type: ignore[operator]
    assert http.post(f"/api/v1/certificates/{new_id}/versions", json=body, headers=other).status_code == 403
