"""The ``push_subscription`` table (migration 0007): a citizen's browser or app push endpoint."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, utcnow

__all__ = ["PushSubscription"]


class PushSubscription(Base):
    """One ``PushSubscription`` (W3C Push API) of a citizen's device.

    The endpoint is a capability URL of the push service (anyone holding it
    can send encrypted messages to it), so it is looked up by its SHA-256
    (``endpoint_hash``) and shown nowhere.
    """

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(sa.String(2000))
    endpoint_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    p256dh: Mapped[str] = mapped_column(sa.String(200))
    """The user agent's P-256 public key (RFC 8291 §3.1), base64url."""
    auth: Mapped[str] = mapped_column(sa.String(64))
    """The 16-byte authentication secret (RFC 8291 §3.2), base64url."""
    user_agent: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[dt.datetime | None]
