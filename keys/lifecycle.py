"""The key lifecycle as an explicit state machine: next → active → retiring → retired.

Pure data, no I/O (in the manner of Ory Hydra's ``flow/flow.go``): states are
an enum, transitions are methods that return a new record or raise
:class:`InvalidTransition`. :func:`rotate` applies one rotation to a whole key
set, and the key ring persists the result atomically.

Why four states: a relying party caches the JWKS, so a key is published as
``next`` one rotation before it signs (caches learn it in advance), and stays
published as ``retiring`` one rotation after it stops signing (tokens it
signed still verify until they expire). ``retired`` keys leave the JWKS.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import KeysError, KeyStoreCorrupt

__all__ = ["KeyState", "KeyRecord", "InvalidTransition", "rotate", "validate", "PUBLISHED_STATES"]


class KeyState(enum.StrEnum):
    NEXT = "next"
    """Published, not yet signing."""
    ACTIVE = "active"
    """Signs now; exactly one per key set."""
    RETIRING = "retiring"
    """No longer signs; published so that what it signed still verifies."""
    RETIRED = "retired"
    """Gone from the JWKS; its private key is destroyed."""


PUBLISHED_STATES = frozenset({KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRING})


class InvalidTransition(KeysError):
    """A transition that the lifecycle does not allow (e.g. retired → active)."""


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).isoformat()


def _parse_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class KeyRecord:
    """One key of a key set as the index file stores it."""

    kid: str
    """RFC 7638 thumbprint of the public key."""
    algorithm: str
    backend: str
    """Name of the backend holding the private key (``software``, ``pkcs11``)."""
    handle: str
    """The backend's handle of the private key."""
    state: KeyState
    created_at: dt.datetime
    activated_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    """When the key stopped signing (entered ``retiring``)."""

    # -- transitions -----------------------------------------------------

    def _require(self, *states: KeyState, to: KeyState) -> None:
        if self.state not in states:
            raise InvalidTransition(
                f"key {self.kid} cannot go from {self.state.value} to {to.value}"
            )

    def activate(self, now: dt.datetime) -> KeyRecord:
        """next → active."""
        self._require(KeyState.NEXT, to=KeyState.ACTIVE)
        return replace(self, state=KeyState.ACTIVE, activated_at=now)

    def start_retiring(self, now: dt.datetime) -> KeyRecord:
        """active → retiring."""
        self._require(KeyState.ACTIVE, to=KeyState.RETIRING)
        return replace(self, state=KeyState.RETIRING, retired_at=now)

    def retire(self, now: dt.datetime) -> KeyRecord:
        """retiring → retired (or next → retired, to withdraw an unused key)."""
        self._require(KeyState.RETIRING, KeyState.NEXT, to=KeyState.RETIRED)
        return replace(self, state=KeyState.RETIRED, retired_at=self.retired_at or now)

    @property
    def published(self) -> bool:
        return self.state in PUBLISHED_STATES

    # -- serialisation ---------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "algorithm": self.algorithm,
            "backend": self.backend,
            "handle": self.handle,
            "state": self.state.value,
            "created_at": _iso(self.created_at),
            "activated_at": _iso(self.activated_at),
            "retired_at": _iso(self.retired_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyRecord:
        try:
            created = _parse_time(data["created_at"])
            assert created is not None
            return cls(
                kid=str(data["kid"]),
                algorithm=str(data["algorithm"]),
                backend=str(data["backend"]),
                handle=str(data["handle"]),
                state=KeyState(data["state"]),
                created_at=created,
                activated_at=_parse_time(data.get("activated_at")),
                retired_at=_parse_time(data.get("retired_at")),
            )
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            raise KeyStoreCorrupt(f"a key record is malformed ({type(e).__name__})") from None


def validate(records: Iterable[KeyRecord]) -> None:
    """A usable key set has exactly one active key and at most one next key."""
    states = [r.state for r in records]
    if states.count(KeyState.ACTIVE) != 1:
        raise KeyStoreCorrupt(
            f"a key set needs exactly one active key, it has {states.count(KeyState.ACTIVE)}"
        )
    if states.count(KeyState.NEXT) > 1:
        raise KeyStoreCorrupt("a key set has more than one next key")


def rotate(records: Iterable[KeyRecord], new_next: KeyRecord, now: dt.datetime) -> list[KeyRecord]:
    """One rotation: next→active, active→retiring, retiring→retired, plus ``new_next``.

    Pure: returns the new list (order kept, ``new_next`` appended) and leaves
    persistence to the caller. A set without a next key (e.g. one whose next
    key was withdrawn) cannot rotate, because then nothing published could
    take over signing.
    """
    if new_next.state is not KeyState.NEXT:
        raise InvalidTransition("the new key must enter the set as next")
    current = list(records)
    validate(current)
    if not any(r.state is KeyState.NEXT for r in current):
        raise InvalidTransition("the key set has no next key to activate")
    out: list[KeyRecord] = []
    for r in current:
        if r.state is KeyState.NEXT:
            out.append(r.activate(now))
        elif r.state is KeyState.ACTIVE:
            out.append(r.start_retiring(now))
        elif r.state is KeyState.RETIRING:
            out.append(r.retire(now))
        else:
            out.append(r)
    out.append(new_next)
    validate(out)
    return out
