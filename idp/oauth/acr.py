"""Authentication context classes: the levels, what a request and a client require (issue 13 §2).

Three levels, in order (discovery ``acr_values_supported``, docs/rp-integration.md):

====================  ======================================================
``urn:yiwang:acr:pwd``      the password alone
``urn:yiwang:acr:2fa``      the password and a TOTP code (or a recovery code)
``urn:yiwang:acr:passkey``  a passkey with user verification (biometric or PIN
                            on the citizen's device; WebAuthn UV flag)
====================  ======================================================

A higher level satisfies a lower one. ``acr_values`` (OIDC Core §3.1.2.1) is a
list of preferences: the lowest level listed is the one needed (any of them
would do). A client may register ``default_acr_values`` (OIDC Dynamic Client
Registration §2: used when the request names none) and ``require_acr``: a floor
that no request lowers; a citizen who cannot reach it gets
``unmet_authentication_requirements`` (OpenID Connect Core Unmet
Authentication Requirements 1.0) instead of a weaker sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from .discovery import ACR_2FA, ACR_PASSKEY, ACR_PASSWORD, ACR_VALUES

__all__ = ["LEVELS", "level", "Requirement", "requirement", "acr_attributes", "UNMET"]

LEVELS: Mapping[str, int] = {ACR_PASSWORD: 1, ACR_2FA: 2, ACR_PASSKEY: 3}
UNMET = "unmet_authentication_requirements"
"""OpenID Connect Core Unmet Authentication Requirements 1.0 §2."""


def level(acr: str | None) -> int:
    """The level of ``acr``: 0 for nothing or a value we do not issue."""
    return LEVELS.get(acr or "", 0)


@dataclass(frozen=True)
class Requirement:
    """What a request needs: the level wanted, and the client's floor (a must)."""

    acr: str | None = None
    """The level to step up to when the account can (the request's, the client's default, or the floor)."""
    floor: str | None = None
    """The client's ``require_acr``: an account that cannot reach it gets no code."""

    @property
    def level(self) -> int:
        return level(self.acr)


def _lowest(values: Iterable[str]) -> str | None:
    known = [v for v in values if v in LEVELS]
    return min(known, key=LEVELS.__getitem__) if known else None


def requirement(acr_values: str | None, attributes: Mapping[str, Any] | None) -> Requirement:
    """The request's ``acr_values`` (else the client's ``default_acr_values``), raised to its ``require_acr``."""
    attrs = attributes or {}
    asked = _lowest((acr_values or "").split())
    if asked is None and not (acr_values or "").strip():
        defaults = attrs.get("default_acr_values") or ()
        asked = _lowest(defaults if isinstance(defaults, list | tuple) else ())
    floor = attrs.get("require_acr")
    floor = floor if isinstance(floor, str) and floor in LEVELS else None
    wanted = floor if level(floor) > level(asked) else asked
    return Requirement(wanted, floor)


def acr_attributes(require_acr: str | None, default_acr_values: Sequence[str]) -> dict[str, Any]:
    """The client attributes for ``idp clients add --require-acr / --default-acr``, checked."""
    out: dict[str, Any] = {}
    for value in [*([require_acr] if require_acr else []), *default_acr_values]:
        if value not in LEVELS:
            raise InvalidInput(f"unknown acr value {value!r}; known: {', '.join(ACR_VALUES)}")
    if require_acr:
        out["require_acr"] = require_acr
    if default_acr_values:
        out["default_acr_values"] = list(default_acr_values)
    return out
