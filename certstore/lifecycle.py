"""A certificate's status as an explicit state machine (issue 6, "Build" 1).

Pure: no database, no clock of its own. :func:`transition` takes the current
status, an :class:`Action`, a reason, an actor and a time, and returns the
:class:`LifecycleEvent` to store and audit — or raises
:class:`ForbiddenTransition` with a message a clerk can read ("a revoked
certificate cannot be reinstated").

Status codes (docs/design.md, domain reference)::

    01 valid ──suspend──▶ 02 suspended ──reinstate──▶ 01 valid
    01/02 ──revoke──▶ 03 revoked        (撤销: the issuer annuls a wrong issue)
    01/02 ──cancel──▶ 04 cancelled      (注销: the holder gave it up, or superseded)
    01/02 ──expire──▶ 05 expired        (失效: automatic at the end of validity)
    01    ──transfer_out──▶ 06 transferred out (转出: moved to another region)
    01/02 ──withdraw──▶ 07 withdrawn    (吊销: taken away as a sanction)

03–07 are terminal: nothing leaves them. A suspended certificate can still be
revoked, cancelled, withdrawn or expire, but not transferred out (the
receiving region would inherit a certificate it cannot reinstate).

Superseding (a new version of a certificate): the old version is *cancelled*
(04) with the action ``supersede`` and the event carries ``superseded_by``
(the new identifier); the new row's ``supersedes`` column points back. We
chose a status change over a mere link so that every verifier — including
one that only sees the status list — stops accepting the old version.

Status-list bits (IETF Token Status List, §7.1): valid → ``0x00`` VALID,
suspended → ``0x02`` SUSPENDED, every terminal status → ``0x01`` INVALID.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from .errors import Conflict, InvalidInput

__all__ = [
    "Status",
    "Action",
    "LifecycleEvent",
    "ForbiddenTransition",
    "TRANSITIONS",
    "TERMINAL",
    "transition",
    "allowed_actions",
    "status_list_value",
    "is_expired",
    "MAX_REASON",
]

MAX_REASON = 500


class Status(enum.StrEnum):
    """docs/design.md's status codes."""

    VALID = "01"
    SUSPENDED = "02"
    REVOKED = "03"
    CANCELLED = "04"
    EXPIRED = "05"
    TRANSFERRED_OUT = "06"
    WITHDRAWN = "07"

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def label_zh(self) -> str:
        return _LABELS[self][0]


_LABELS = {
    Status.VALID: ("有效", "valid"),
    Status.SUSPENDED: ("暂扣", "suspended"),
    Status.REVOKED: ("撤销", "revoked"),
    Status.CANCELLED: ("注销", "cancelled"),
    Status.EXPIRED: ("失效", "expired"),
    Status.TRANSFERRED_OUT: ("转出", "transferred out"),
    Status.WITHDRAWN: ("吊销", "withdrawn"),
}


class Action(enum.StrEnum):
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REVOKE = "revoke"
    CANCEL = "cancel"
    EXPIRE = "expire"
    TRANSFER_OUT = "transfer_out"
    WITHDRAW = "withdraw"
    SUPERSEDE = "supersede"


_LIVE = frozenset({Status.VALID, Status.SUSPENDED})

TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.SUSPEND: (frozenset({Status.VALID}), Status.SUSPENDED),
    Action.REINSTATE: (frozenset({Status.SUSPENDED}), Status.VALID),
    Action.REVOKE: (_LIVE, Status.REVOKED),
    Action.CANCEL: (_LIVE, Status.CANCELLED),
    Action.EXPIRE: (_LIVE, Status.EXPIRED),
    Action.TRANSFER_OUT: (frozenset({Status.VALID}), Status.TRANSFERRED_OUT),
    Action.WITHDRAW: (_LIVE, Status.WITHDRAWN),
    Action.SUPERSEDE: (_LIVE, Status.CANCELLED),
}
"""``action -> (statuses it may start from, status it leads to)``."""

TERMINAL = frozenset(Status) - _LIVE

_VERB = {
    Action.SUSPEND: "suspended",
    Action.REINSTATE: "reinstated",
    Action.REVOKE: "revoked",
    Action.CANCEL: "cancelled",
    Action.EXPIRE: "expired",
    Action.TRANSFER_OUT: "transferred out",
    Action.WITHDRAW: "withdrawn",
    Action.SUPERSEDE: "superseded",
}


class ForbiddenTransition(Conflict):
    """The state machine does not allow this action from the current status (HTTP 409)."""

    code = "forbidden_transition"
    title = "Status change not allowed"

    def __init__(self, message: str, *, current: Status, action: Action) -> None:
        super().__init__(message, field="action")
        self.current = current
        self.action = action


@dataclass(frozen=True)
class LifecycleEvent:
    """One status change: what the caller stores on the row and in the audit log."""

    identifier: str
    action: Action
    from_status: Status
    to_status: Status
    reason: str
    actor: str
    at: dt.datetime
    superseded_by: str | None = None

    def audit_detail(self) -> dict[str, str]:
        d = {
            "from": self.from_status.value,
            "to": self.to_status.value,
            "reason": self.reason,
        }
        if self.superseded_by:
            d["superseded_by"] = self.superseded_by
        return d


def _article(label: str) -> str:
    return "an" if label[0] in "aeiou" else "a"


def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InvalidInput(f"unknown certificate status {str(value)[:4]!r}", field="status") from None


def allowed_actions(current: Status | str) -> list[Action]:
    """What may be done to a certificate in ``current`` status (for pages and CLI help)."""
    cur = _status(current)
    return [a for a, (sources, _) in TRANSITIONS.items() if cur in sources]


def transition(
    current: Status | str,
    action: Action | str,
    *,
    identifier: str,
    reason: str,
    actor: str,
    at: dt.datetime,
    superseded_by: str | None = None,
) -> LifecycleEvent:
    """Check ``action`` against the state machine and describe the change.

    ``reason`` is required (1 to 500 printable characters): every status
    change is explained in the audit log and to the holder.
    """
    cur = _status(current)
    try:
        act = Action(action)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise InvalidInput(f"unknown action {str(action)[:20]!r} (one of {known})", field="action") from None
    text = (reason or "").strip()
    if not text or len(text) > MAX_REASON or not text.isprintable():
        raise InvalidInput(
            f"a status change needs a reason of 1 to {MAX_REASON} printable characters", field="reason"
        )
    if not actor or not actor.strip():
        raise InvalidInput("a status change needs an actor", field="actor")
    if at.tzinfo is None:
        raise ValueError("transition times are timezone-aware")
    if (act is Action.SUPERSEDE) != (superseded_by is not None):
        raise InvalidInput("superseded_by goes with the supersede action, and only with it", field="superseded_by")
    sources, target = TRANSITIONS[act]
    if cur not in sources:
        label = cur.label_en
        if cur is Status.VALID and act is Action.REINSTATE:
            message = "a valid certificate is not suspended, so it cannot be reinstated"
        elif cur is Status.SUSPENDED and act is Action.SUSPEND:
            message = "the certificate is already suspended"
        elif act is Action.TRANSFER_OUT and cur is Status.SUSPENDED:
            message = "a suspended certificate cannot be transferred out; reinstate it first"
        else:
            message = f"{_article(label)} {label} certificate cannot be {_VERB[act]}"
            if cur in TERMINAL:
                message += f" (status {cur.value} {cur.label_zh} is final)"
        raise ForbiddenTransition(message, current=cur, action=act)
    return LifecycleEvent(
        identifier=identifier,
        action=act,
        from_status=cur,
        to_status=target,
        reason=text,
        actor=actor.strip(),
        at=at,
        superseded_by=superseded_by,
    )


def status_list_value(status: Status | str) -> int:
    """The 2-bit status-list value for a status (draft-ietf-oauth-status-list §7.1)."""
    cur = _status(status)
    if cur is Status.VALID:
        return 0x00
    if cur is Status.SUSPENDED:
        return 0x02
    return 0x01


def is_expired(valid_until: dt.date | None, now: dt.datetime) -> bool:
    """Whether a certificate valid until the end of ``valid_until`` (China Standard
    Time, as printed) has run out at ``now``."""
    if valid_until is None:
        return False
    cst = dt.timezone(dt.timedelta(hours=8))
    end = dt.datetime.combine(valid_until + dt.timedelta(days=1), dt.time(), tzinfo=cst)
    return now >= end
