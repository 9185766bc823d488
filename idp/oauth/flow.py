"""The sign-in flow as an explicit state machine (in the manner of Hydra's ``flow``).

Given the validated authorization request, the SSO session (if any), the
client and the citizen's remembered consent, :func:`next_step` says what must
happen before a code can be issued: a login, a second factor, a consent
page, an error for ``prompt=none``, or issuing. It is pure, so every rule of
OIDC Core §3.1.2.1 (``prompt``, ``max_age``, ``acr_values``) is tested
without HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .claims import ID_NUMBER_SCOPE
from .discovery import ACR_2FA

__all__ = ["Step", "Decision", "FlowState", "next_step", "wants_2fa", "consent_missing", "final_scopes"]


class Step(enum.Enum):
    LOGIN = "login"
    SECOND_FACTOR = "second_factor"
    CONSENT = "consent"
    ISSUE = "issue"
    ERROR = "error"


@dataclass(frozen=True)
class Decision:
    step: Step
    error: str | None = None
    """For ``Step.ERROR``: ``login_required``, ``consent_required``, ``interaction_required``."""


@dataclass(frozen=True)
class FlowState:
    """What has happened in this browser flow so far."""

    fresh_login: bool = False
    """The citizen entered their password during this flow (satisfies prompt=login, max_age)."""
    consent_given: bool = False
    """The citizen answered the consent page during this flow."""


def consent_missing(
    requested: Iterable[str], *, first_party: bool, may_receive_id_number: bool,
    consented: Iterable[str] | None,
) -> bool:
    """Whether the consent page must be shown (OIDC Core §3.1.2.4).

    First-party clients skip it — except for the ID number, which is never
    released without the citizen's consent (DESIGN.md, identity rules).
    """
    granted = set(consented or ())
    wanted = set(requested) - {"openid"}
    if first_party:
        wanted &= {ID_NUMBER_SCOPE} if may_receive_id_number else set()
    elif not may_receive_id_number:
        wanted.discard(ID_NUMBER_SCOPE)
    return not wanted <= granted


def final_scopes(
    requested: Iterable[str], *, first_party: bool, may_receive_id_number: bool,
    consented: Iterable[str] | None,
) -> list[str]:
    """The scopes the code is issued for: what was asked, cut to what was allowed."""
    granted = set(consented or ())
    out = []
    for s in requested:
        if s == ID_NUMBER_SCOPE:
            if may_receive_id_number and s in granted:
                out.append(s)
        elif s == "openid" or first_party or s in granted:
            out.append(s)
    return out


def wants_2fa(acr_values: str | None) -> bool:
    return bool(acr_values) and ACR_2FA in acr_values.split()


def next_step(
    *,
    prompt: str | None,
    max_age: int | None,
    acr_values: str | None,
    session_auth_time: int | None,
    session_acr: str | None,
    citizen_has_totp: bool,
    consent_missing: bool,
    state: FlowState,
    now: int,
) -> Decision:
    prompts = set((prompt or "").split())
    none = "none" in prompts
    # No session: log in (OIDC Core §3.1.2.1, prompt=none → login_required).
    if session_auth_time is None:
        return Decision(Step.ERROR, "login_required") if none else Decision(Step.LOGIN)
    if not state.fresh_login:
        if "login" in prompts:
            return Decision(Step.LOGIN)
        if max_age is not None and now - session_auth_time > max_age:
            return Decision(Step.ERROR, "login_required") if none else Decision(Step.LOGIN)
    # A second factor whenever the account has one and the session has not
    # used it yet — which also serves acr_values asking for the stronger level
    # (step-up in the same session, issue 4 §2). An account without TOTP
    # cannot step up; its ID token then says acr=pwd, as OIDC Core §2 lets it.
    if citizen_has_totp and session_acr != ACR_2FA:
        return Decision(Step.ERROR, "interaction_required") if none else Decision(Step.SECOND_FACTOR)
    # Consent (OIDC Core §3.1.2.4), remembered; skipped for first-party clients.
    if not state.consent_given:
        if "consent" in prompts:
            return Decision(Step.ERROR, "consent_required") if none else Decision(Step.CONSENT)
        if consent_missing:
            return Decision(Step.ERROR, "consent_required") if none else Decision(Step.CONSENT)
    return Decision(Step.ISSUE)
