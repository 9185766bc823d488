"""Acting for a citizen: the clerk's or hotline agent's ``actor_token`` (issue 13 §1, RFC 8693 §4.1).

A client registered with ``acting`` (``clerk`` for a service counter,
``agent`` for a hotline) sends the actor's token with every CIBA request;
``idp.staff.actor.resolve_actor`` (the staff accounts' side) checks it and
names the actor. Its ``act`` claim goes into the tokens, its display to the
citizen's approval page and account page, both into the audit trail.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError

__all__ = ["resolve", "actor_record", "actor_label"]


def resolve(actor_token: str, *, client_id: str, now: int, kind: str) -> Any:
    """The ``Actor`` of ``actor_token``; ``invalid_request`` if it is not a live staff token for this client."""
    try:
        from ..staff.actor import ActorTokenError, resolve_actor
    except ModuleNotFoundError:
        raise InvalidRequestError("acting for a citizen is not available on this server") from None
    if len(actor_token) > 8192:
        raise InvalidRequestError("the actor_token is too long")
    try:
        actor = resolve_actor(actor_token, client_id=client_id, now=now)
    except ActorTokenError as e:
        raise InvalidRequestError(f"the actor_token is not accepted: {e}") from None
    if kind in ("clerk", "agent") and actor.kind != kind:
        raise InvalidRequestError(f"this client acts through a {kind}; the actor_token is a {actor.kind}'s")
    return actor


def actor_record(actor: Any) -> dict[str, Any] | None:
    """What a pending request keeps of its actor: the display and the ``act`` claim."""
    if actor is None:
        return None
    return {"kind": actor.kind, "name": actor.name, "office": actor.office, "sub": actor.sub,
            "act": actor.act_claim()}


def actor_label(record: dict[str, Any] | None) -> str | None:
    """The audit record's ``actor``: ``clerk:<sub>`` or ``agent:<sub>`` (the citizen is the ``subject``)."""
    return f"{record['kind']}:{record['sub']}"[:200] if record else None
