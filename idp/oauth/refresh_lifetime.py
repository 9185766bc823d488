"""Per-client refresh-token lifetimes for browser and native apps (issue 21 §1).

A refresh token in a browser lives where script can reach it; OAuth 2.0 for
Browser-Based Applications (draft-ietf-oauth-browser-based-apps §6.1.3.3)
asks for rotation (the refresh grant does it, with reuse detection) and a
bounded lifetime. A client may register two, as attributes:

* ``refresh_idle_seconds`` — a refresh token not used within this long
  after it was issued is refused (each rotation issues a new one, so an app
  in use keeps going);
* ``refresh_absolute_seconds`` — no refresh later than this after the
  family's first issue (the code exchange), however often it was rotated:
  the citizen signs in again.

Owns :func:`refresh_family_expired`, which the refresh grant
(:mod:`idp.oauth.grants`) calls once it has taken the token. The family's
first issue is the earliest ``issued_at`` among its token records (the
``family_id`` column is indexed), read only for clients that set an
absolute lifetime.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["IDLE", "ABSOLUTE", "refresh_family_expired", "family_started"]

logger = logging.getLogger(__name__)

IDLE = "refresh_idle_seconds"
ABSOLUTE = "refresh_absolute_seconds"


def family_started(db: Any, family_id: str) -> int | None:
    """The epoch second the family's first token was issued (``None`` if it has no record)."""
    import sqlalchemy as sa

    from ..models import TokenRecord

    with db.single_statement() as s:
        first = s.execute(
            sa.select(sa.func.min(TokenRecord.issued_at)).where(TokenRecord.family_id == family_id)
        ).scalar_one_or_none()
    return int(first.timestamp()) if first is not None else None


def refresh_family_expired(provider: Any, client: Any, row: dict[str, Any], now: int) -> bool:
    """True (and the family revoked) when ``row``, a refresh token just taken, outlived its client's lifetimes."""
    attrs = getattr(client, "attributes", None) or {}
    idle, absolute = attrs.get(IDLE), attrs.get(ABSOLUTE)
    if idle is None and absolute is None:
        return False
    why = None
    if idle is not None and now - int(row["issued_at"]) > int(idle):
        why = "idle"
    elif absolute is not None and row.get("family_id"):
        started = family_started(provider.db, row["family_id"])
        if started is not None and now - started > int(absolute):
            why = "absolute"
    if why is None:
        return False
    n = provider.tokens.revoke(family_id=row["family_id"]) if row.get("family_id") else 0
    provider.audit("token.refresh_expired", client_id=row["client_id"], detail={"lifetime": why, "revoked": n})
    logger.info("refresh token of client %s past its %s lifetime; family revoked", row["client_id"], why)
    return True
