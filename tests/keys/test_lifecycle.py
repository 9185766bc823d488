"""The key lifecycle state machine, without any I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from keys.errors import KeyStoreCorrupt
from keys.lifecycle import InvalidTransition, KeyRecord, KeyState, rotate

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=30)


def _record(kid: str, state: KeyState) -> KeyRecord:
    return KeyRecord(
        kid=kid,
        algorithm="ES256",
        backend="software",
        handle=f"h-{kid}",
        state=state,
        created_at=T0,
    )


def test_a_key_walks_next_active_retiring_retired() -> None:
    r = _record("a", KeyState.NEXT)
    r = r.activate(T1)
    assert r.state is KeyState.ACTIVE and r.activated_at == T1
    r = r.start_retiring(T1)
    assert r.state is KeyState.RETIRING and r.retired_at == T1 and r.published
    r = r.retire(T1 + dt.timedelta(days=1))
    assert r.state is KeyState.RETIRED and not r.published
    assert r.retired_at == T1  # the day it stopped signing is kept


@pytest.mark.parametrize(
    ("state", "transition"),
    [
        (KeyState.ACTIVE, "activate"),
        (KeyState.RETIRING, "activate"),
        (KeyState.RETIRED, "activate"),
        (KeyState.NEXT, "start_retiring"),
        (KeyState.RETIRED, "start_retiring"),
        (KeyState.ACTIVE, "retire"),
        (KeyState.RETIRED, "retire"),
    ],
)
def test_illegal_transitions_are_refused(state: KeyState, transition: str) -> None:
    with pytest.raises(InvalidTransition, match=state.value):
        getattr(_record("a", state), transition)(T1)


def test_rotate_moves_every_key_one_step() -> None:
    keys = [
        _record("old", KeyState.RETIRED),
        _record("r", KeyState.RETIRING),
        _record("a", KeyState.ACTIVE),
        _record("n", KeyState.NEXT),
    ]
    out = rotate(keys, _record("new", KeyState.NEXT), T1)
    assert [(r.kid, r.state) for r in out] == [
        ("old", KeyState.RETIRED),
        ("r", KeyState.RETIRED),
        ("a", KeyState.RETIRING),
        ("n", KeyState.ACTIVE),
        ("new", KeyState.NEXT),
    ]
    assert keys[2].state is KeyState.ACTIVE  # the input is untouched


def test_rotate_needs_a_next_key_and_a_new_next_key() -> None:
    with pytest.raises(InvalidTransition, match="no next key"):
        rotate([_record("a", KeyState.ACTIVE)], _record("new", KeyState.NEXT), T1)
    with pytest.raises(InvalidTransition, match="as next"):
        rotate(
            [_record("a", KeyState.ACTIVE), _record("n", KeyState.NEXT)],
            _record("new", KeyState.ACTIVE),
            T1,
        )


def test_a_set_without_exactly_one_active_key_is_corrupt() -> None:
    with pytest.raises(KeyStoreCorrupt, match="exactly one active"):
        rotate(
            [
                _record("a", KeyState.ACTIVE),
                _record("b", KeyState.ACTIVE),
                _record("n", KeyState.NEXT),
            ],
            _record("new", KeyState.NEXT),
            T1,
        )


def test_records_round_trip_through_json() -> None:
    r = _record("a", KeyState.NEXT).activate(T1)
    assert KeyRecord.from_json(r.to_json()) == r
    with pytest.raises(KeyStoreCorrupt):
        KeyRecord.from_json({"kid": "a", "state": "bogus"})
