"""The sign-in flow as an explicit state machine (in the manner of Hydra's ``flow.Flow``).

A :class:`Flow` is one authorization request waiting for the citizen (or a
login that returns to a local page, as the device page's): its
:class:`FlowState` says what it waits for, and each step the citizen takes is
a transition method that refuses a flow in the wrong state
(:class:`FlowStateError`). The checks that keep a pasted flow id from being
worth anything are named methods: :meth:`Flow.is_bound_to` (the browser that
started it), :meth:`Flow.fresh_login_for` and :meth:`Flow.consent_for` (the
session a login or consent happened in).

:func:`next_step` says, for one :class:`Situation`, what must happen before a
code can be issued: a login, a second factor, a consent page, an error for
``prompt=none``, or issuing. It is pure, so every rule of OIDC Core §3.1.2.1
(``prompt``, ``max_age``, ``acr_values``) is tested without HTTP.
"""

from __future__ import annotations

import enum
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .acr import UNMET, level
from .claims import ID_NUMBER_SCOPE
from .discovery import ACR_2FA

__all__ = [
    "Step",
    "Decision",
    "FlowState",
    "FlowStateError",
    "Flow",
    "Situation",
    "FLOW_VERSION",
    "next_step",
    "wants_2fa",
    "consent_missing",
    "final_scopes",
]

FLOW_VERSION = 1
"""Written into every stored flow; a record of another version reads as expired."""


class Step(enum.Enum):
    LOGIN = "login"
    SECOND_FACTOR = "second_factor"
    PASSKEY = "passkey"
    """A step-up to a passkey with user verification (the request's or the client's acr)."""
    CONSENT = "consent"
    ISSUE = "issue"
    ERROR = "error"


@dataclass(frozen=True)
class Decision:
    step: Step
    error: str | None = None
    """For ``Step.ERROR``: ``login_required``, ``consent_required``, ``interaction_required``."""


class FlowState(enum.Enum):
    """What a flow waits for."""

    DECIDING = "deciding"
    """Nothing yet: a new request, or a step just done; the next step is decided on resuming."""
    LOGIN_PENDING = "login_pending"
    """The login form (ID number and password)."""
    SECOND_FACTOR_PENDING = "second_factor_pending"
    """A TOTP code: after the password (``pending_citizen``), or a step-up in the session."""
    CONSENT_PENDING = "consent_pending"
    """The consent page."""
    PASSKEY_PENDING = "passkey_pending"
    """A passkey assertion of the signed-in citizen (step-up to ``urn:yiwang:acr:passkey``)."""
    DONE = "done"
    """Answered (code, error, or back to the local page); nothing more is accepted."""


_WAITS = (FlowState.DECIDING, FlowState.LOGIN_PENDING, FlowState.SECOND_FACTOR_PENDING, FlowState.CONSENT_PENDING,
          FlowState.PASSKEY_PENDING)
_PENDING_FOR = {
    Step.LOGIN: FlowState.LOGIN_PENDING,
    Step.SECOND_FACTOR: FlowState.SECOND_FACTOR_PENDING,
    Step.CONSENT: FlowState.CONSENT_PENDING,
    Step.PASSKEY: FlowState.PASSKEY_PENDING,
}


class FlowStateError(Exception):
    """A transition was asked of a flow in a state that does not allow it."""

    def __init__(self, transition: str, state: FlowState) -> None:
        super().__init__(f"{transition} is not allowed in state {state.value}")
        self.transition = transition
        self.state = state


@dataclass
class Flow:
    """One sign-in in progress, as stored in the flow store (never holds an ID number)."""

    state: FlowState
    params: dict[str, str] = field(default_factory=dict)
    """The authorization request's parameters (empty for a login-only flow)."""
    client_id: str | None = None
    client_name: str | None = None
    scopes: list[str] = field(default_factory=list)
    """The scopes requested (before consent cuts them)."""
    redirect_uri: str | None = None
    """Validated by the grant: where errors and the code go."""
    oauth_state: str | None = None
    """OAuth's ``state`` parameter (RFC 6749 §4.1.1), echoed to the client; not :attr:`state`."""
    ui_locales: str | None = None
    pushed: bool = False
    """The request came through PAR (RFC 9126)."""
    login_hint: str | None = None
    """Only from a pushed request: a front-channel hint is never echoed."""
    return_to: str | None = None
    """A login-only flow: the local page to go back to (the device page)."""
    browser: str | None = None
    """SHA-256 of the browser cookie of the browser that started the flow."""
    pending_citizen: int | None = None
    """The account whose password passed; its second factor is awaited."""
    login_sid: str | None = None
    """The session a fresh login in this flow started or refreshed."""
    consent_sid: str | None = None
    """The session the consent page was answered in."""
    granted: list[str] | None = None
    """What the consent page granted (with :attr:`consent_sid`)."""
    id: str | None = field(default=None, compare=False)
    """The flow store's key (not serialised)."""

    # ----------------------------------------------------------- construction

    @classmethod
    def authorization(cls, params: dict[str, str], *, client_id: str, client_name: str | None, scopes: list[str],
                      redirect_uri: str, pushed: bool) -> Flow:
        """A validated authorization request that needs the citizen (state ``DECIDING``)."""
        return cls(
            FlowState.DECIDING, params=dict(params), client_id=client_id, client_name=client_name,
            scopes=list(scopes), redirect_uri=redirect_uri, oauth_state=params.get("state"),
            ui_locales=params.get("ui_locales"), pushed=pushed,
            # An ID number as login_hint is taken only from a pushed request (PAR
            # body, RFC 9126): in a front-channel URL it is ignored, never echoed.
            login_hint=params.get("login_hint") if pushed else None,
        )

    @classmethod
    def login_only(cls, return_to: str | None = None) -> Flow:
        """A login that returns to a local page (or the account page), waiting for the password."""
        return cls(FlowState.LOGIN_PENDING, return_to=return_to)

    @property
    def is_authorization(self) -> bool:
        return bool(self.params)

    # ------------------------------------------------------------ transitions

    def _require(self, transition: str, *allowed: FlowState) -> None:
        if self.state not in allowed:
            raise FlowStateError(transition, self.state)

    def wait_for(self, step: Step) -> None:
        """Wait for ``step`` (login, second factor or consent), as :func:`next_step` decided."""
        target = _PENDING_FOR.get(step)
        if target is None:
            raise ValueError(f"a flow cannot wait for {step.value}")
        self._require(f"wait_for({step.value})", *_WAITS)
        if target is FlowState.LOGIN_PENDING:
            self.pending_citizen = None  # a new login replaces a half-done one
        self.state = target

    def password_passed(self, citizen_id: int) -> None:
        """The password was right and the account has a second factor: wait for it."""
        self._require("password_passed", FlowState.LOGIN_PENDING)
        self.pending_citizen = citizen_id
        self.login_sid = None
        self.state = FlowState.SECOND_FACTOR_PENDING

    def logged_in(self, session_sid: str) -> None:
        """The login (password alone) is done in session ``session_sid``."""
        self._require("logged_in", FlowState.LOGIN_PENDING)
        self.pending_citizen = None
        self.login_sid = session_sid
        self.state = FlowState.DECIDING

    def second_factor_passed(self, session_sid: str) -> None:
        """The TOTP code was right; after a password in this flow, that login counts in ``session_sid``."""
        self._require("second_factor_passed", FlowState.SECOND_FACTOR_PENDING)
        if self.pending_citizen is not None:
            self.login_sid = session_sid
        self.pending_citizen = None
        self.state = FlowState.DECIDING

    def passkey_passed(self, session_sid: str) -> None:
        """A passkey (with user verification) signed ``session_sid`` in afresh: a login in this flow.

        From the login page (instead of the password) or from the step-up page.
        """
        self._require("passkey_passed", FlowState.LOGIN_PENDING, FlowState.PASSKEY_PENDING)
        self.pending_citizen = None
        self.login_sid = session_sid
        self.state = FlowState.DECIDING

    def consented(self, granted: Iterable[str], session_sid: str) -> None:
        """The consent page granted ``granted`` in session ``session_sid``."""
        self._require("consented", FlowState.CONSENT_PENDING)
        self.granted = list(granted)
        self.consent_sid = session_sid
        self.state = FlowState.DECIDING

    def finish(self) -> None:
        """Answered: a code, an error at the redirect URI, or back to the local page."""
        self._require("finish", *_WAITS)
        self.state = FlowState.DONE

    # ------------------------------------------------------ security checks

    def bind_to_browser(self, browser_hash: str) -> None:
        """Record the browser that goes on with this flow; a bound flow is never moved silently."""
        if not browser_hash:
            raise ValueError("no browser to bind to")
        if self.browser is not None and not self.is_bound_to(browser_hash):
            raise FlowStateError("bind_to_browser (bound to another browser)", self.state)
        self.browser = browser_hash

    def is_bound_to(self, browser_hash: str | None) -> bool:
        """Whether this flow was started by the browser with ``browser_hash`` (constant-time)."""
        if not browser_hash or not isinstance(self.browser, str):
            return False
        return hmac.compare_digest(self.browser.encode(), browser_hash.encode())

    def fresh_login_for(self, session_sid: str | None) -> bool:
        """A login in this flow counts only in the session it started (prompt=login, max_age)."""
        return session_sid is not None and self.login_sid is not None and hmac.compare_digest(
            self.login_sid.encode(), session_sid.encode())

    def consent_for(self, session_sid: str | None) -> list[str] | None:
        """What the consent page granted, if it was answered in ``session_sid``; else ``None``."""
        if session_sid is None or self.consent_sid is None or self.granted is None:
            return None
        if not hmac.compare_digest(self.consent_sid.encode(), session_sid.encode()):
            return None
        return list(self.granted)

    def keep_only(self, session_sid: str | None) -> None:
        """Drop a login or consent that happened in another session than ``session_sid``."""
        if not self.fresh_login_for(session_sid):
            self.login_sid = None
        if self.consent_for(session_sid) is None:
            self.consent_sid = None
            self.granted = None

    def start_over(self) -> None:
        """A flow continued in another browser: nothing done so far counts, and it is unbound."""
        self.browser = None
        self.pending_citizen = None
        self.login_sid = None
        self.consent_sid = None
        self.granted = None

    # --------------------------------------------------------- serialisation

    def to_json(self) -> str:
        # The fields as they are, not dataclasses.asdict: its deep copy of every value was most of
        # a flow write (issue 16); json.dumps only reads them. Same keys, same order, same JSON.
        data = {name: getattr(self, name) for name in _STORED}
        data["state"] = self.state.value
        data["v"] = FLOW_VERSION
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes | None, *, flow_id: str | None = None) -> Flow | None:
        """The stored flow, or ``None`` for anything unreadable: another version reads as expired."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.pop("v", None) != FLOW_VERSION:
                return None
            data["state"] = FlowState(data["state"])
            data.pop("id", None)
            flow = cls(**data)
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(flow.params, dict) or not isinstance(flow.scopes, list):
            return None
        flow.id = flow_id
        return flow


_STORED = tuple(f.name for f in fields(Flow) if f.name != "id")
"""What a stored flow holds, in field order (``id`` is the store's key)."""


# ---------------------------------------------------------------- the rules


def consent_missing(
    requested: Iterable[str], *, first_party: bool, may_receive_id_number: bool,
    consented: Iterable[str] | None,
) -> bool:
    """Whether the consent page must be shown (OIDC Core §3.1.2.4).

    First-party clients skip it — except for the ID number, which is never
    released without the citizen's consent (docs/design.md, identity rules).
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
    return acr_values is not None and ACR_2FA in acr_values.split()


@dataclass(frozen=True)
class Situation:
    """Everything :func:`next_step` decides on: the request, the session, and the flow's progress."""

    now: int
    prompt: str | None = None
    max_age: int | None = None
    acr_values: str | None = None
    session_auth_time: int | None = None
    """``None``: nobody is signed in (or the account is disabled)."""
    session_acr: str | None = None
    citizen_has_totp: bool = False
    citizen_has_passkey: bool = False
    """The account has a usable passkey (only looked up when the level asked is above the session's)."""
    acr_wanted: str | None = None
    """The level the request (or the client's default or floor) asks for (:func:`idp.oauth.acr.requirement`)."""
    acr_floor: str | None = None
    """The client's ``require_acr``: below it, no code (``unmet_authentication_requirements``)."""
    consent_missing: bool = False
    """The remembered (or just given) consent does not cover the request."""
    fresh_login: bool = False
    """The citizen logged in during this flow, in this session (satisfies prompt=login, max_age)."""
    consent_given: bool = False
    """The citizen answered the consent page during this flow, in this session."""
    hint_names_another: bool = False
    """The request's ``id_token_hint`` names someone other than the signed-in citizen (or cannot be
    matched to them: its client is gone, it has no ``sub``)."""

    @classmethod
    def of(cls, params: dict[str, Any], *, now: int, max_age: int | None, **facts: Any) -> Situation:
        return cls(now=now, prompt=params.get("prompt"), max_age=max_age, acr_values=params.get("acr_values"),
                   **facts)


def next_step(s: Situation) -> Decision:
    prompts = set((s.prompt or "").split())
    none = "none" in prompts
    # No session: log in (OIDC Core §3.1.2.1, prompt=none → login_required).
    if s.session_auth_time is None:
        return Decision(Step.ERROR, "login_required") if none else Decision(Step.LOGIN)
    if not s.fresh_login:
        # OIDC Core §3.1.2.1: a positive answer only for the End-User the id_token_hint names;
        # whoever signs in on the login page then is who the code is for.
        if s.hint_names_another:
            return Decision(Step.ERROR, "login_required") if none else Decision(Step.LOGIN)
        if "login" in prompts:
            return Decision(Step.LOGIN)
        if s.max_age is not None and s.now - s.session_auth_time > s.max_age:
            return Decision(Step.ERROR, "login_required") if none else Decision(Step.LOGIN)
    # Levels (idp/oauth/acr.py): pwd < 2fa < passkey; a higher one satisfies a lower.
    have, want = level(s.session_acr), level(s.acr_wanted)
    reachable = max(have, 3 if s.citizen_has_passkey else 2 if s.citizen_has_totp else 1)
    # The client's floor that this account cannot reach: no weaker sign-in instead.
    if reachable < level(s.acr_floor):
        return Decision(Step.ERROR, UNMET)
    # A passkey step-up when the level asked needs it (or is 2fa and there is no TOTP).
    if have < want and s.citizen_has_passkey and (want > level(ACR_2FA) or not s.citizen_has_totp):
        return Decision(Step.ERROR, "interaction_required") if none else Decision(Step.PASSKEY)
    # A second factor whenever the account has one and the session has not
    # used it yet — which also serves acr_values asking for the stronger level
    # (step-up in the same session, issue 4 §2). An account without TOTP or a
    # passkey cannot step up; its ID token then says acr=pwd, as OIDC Core §2 lets it.
    if s.citizen_has_totp and have < level(ACR_2FA):
        return Decision(Step.ERROR, "interaction_required") if none else Decision(Step.SECOND_FACTOR)
    # Consent (OIDC Core §3.1.2.4), remembered; skipped for first-party clients.
    if not s.consent_given:
        if "consent" in prompts:
            return Decision(Step.ERROR, "consent_required") if none else Decision(Step.CONSENT)
        if s.consent_missing:
            return Decision(Step.ERROR, "consent_required") if none else Decision(Step.CONSENT)
    return Decision(Step.ISSUE)
