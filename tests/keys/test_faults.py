"""keys.faults: a seam fires only when armed by YIWANG_FAULT_POINTS and declared by its service."""

from __future__ import annotations

import signal

import pytest

from keys import faults


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    return sent


def test_an_armed_seam_kills_the_process_with_sigkill(
    monkeypatch: pytest.MonkeyPatch, kills: list[int]
) -> None:
    monkeypatch.setenv("YIWANG_FAULT_POINTS", " a.b , c.d")
    points = faults.FaultPoints(frozenset({"a.b", "x.y"}))
    points.fault_point("x.y")
    assert kills == []
    points.fault_point("a.b")
    assert kills == [signal.SIGKILL]


def test_a_name_the_service_does_not_declare_is_never_armed(
    monkeypatch: pytest.MonkeyPatch, kills: list[int]
) -> None:
    monkeypatch.setenv("YIWANG_FAULT_POINTS", "c.d")
    faults.FaultPoints(frozenset({"a.b"})).fault_point("c.d")
    assert kills == []


def test_the_variable_is_read_once_when_the_seams_are_declared(
    monkeypatch: pytest.MonkeyPatch, kills: list[int]
) -> None:
    monkeypatch.delenv("YIWANG_FAULT_POINTS", raising=False)
    points = faults.FaultPoints(frozenset({"a.b"}))
    monkeypatch.setenv("YIWANG_FAULT_POINTS", "a.b")
    points.fault_point("a.b")
    assert kills == []
