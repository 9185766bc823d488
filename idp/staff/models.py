"""The ``staff_account`` table (migration 0007): a clerk or hotline agent, never a citizen.

In the idp's one metadata (:mod:`idp.models` imports this module), so
``create_all`` and the migrations test see it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, utcnow

__all__ = ["StaffAccount", "STAFF_KINDS", "SUBJECT_PREFIX"]

STAFF_KINDS = ("clerk", "agent")
"""``clerk``: at a service counter; ``agent``: on a hotline."""

SUBJECT_PREFIX = "staff:"
"""A staff member's ``sub`` is ``staff:<public id>``. A citizen's ``sub`` is a
base64url pairwise value or a public UUID, neither of which has a colon, so
the two namespaces never meet."""


def _uuid() -> str:
    return str(uuid.uuid4())


class StaffAccount(Base):
    """A staff member: a username, an Argon2id password and a TOTP second factor (both required)."""

    __tablename__ = "staff_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(36), unique=True, default=_uuid)
    """Random and stable: the ``sub`` is ``staff:`` + this, for every client."""
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))
    """``clerk`` or ``agent`` (:data:`STAFF_KINDS`)."""
    office: Mapped[str] = mapped_column(sa.String(200))
    """The service counter's or hotline's name, as citizens are shown it."""
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    totp_secret_enc: Mapped[bytes]
    """The TOTP secret, AEAD-encrypted (PII purpose ``staff-totp``): required, never ``None``."""
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    """The last accepted TOTP step: each code works once (RFC 6238 §5.2)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_at: Mapped[dt.datetime | None]

    @property
    def sub(self) -> str:
        return SUBJECT_PREFIX + self.public_id

    def __repr__(self) -> str:
        return f"StaffAccount(id={self.id!r}, {self.username!r})"
