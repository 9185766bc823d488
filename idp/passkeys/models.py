"""The passkey table: one row per WebAuthn credential a citizen registered (issue 13 §2).

Imported by :mod:`idp.models` (at its end), so the one ``Base.metadata`` that the
migrations are checked against includes it; migration ``0006`` creates it.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, utcnow

__all__ = ["PasskeyCredential"]


class PasskeyCredential(Base):
    """A WebAuthn public-key credential (Level 3 §4 "Credential Record") of one citizen.

    Nothing here identifies the citizen to anybody else: ``user_handle`` is a
    random per-citizen value (never the ID number, WebAuthn §14.6.1), the
    public key is a public key.
    """

    __tablename__ = "passkey_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(sa.String(1400), unique=True)
    """base64url of the credential id (at most 1023 bytes, WebAuthn §5.1)."""
    user_handle: Mapped[str] = mapped_column(sa.String(128))
    """base64url of the random ``user.id`` given at registration; the same for all of a citizen's passkeys."""
    public_key: Mapped[bytes]
    """The COSE_Key from the attested credential data."""
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(default=list)
    aaguid: Mapped[str] = mapped_column(sa.String(36), default="00000000-0000-0000-0000-000000000000")
    attestation_format: Mapped[str] = mapped_column(sa.String(32), default="none")
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    """BE flag: a synced (multi-device) passkey. Fixed for the credential's life (WebAuthn §6.1.3)."""
    backed_up: Mapped[bool] = mapped_column(default=False)
    """BS flag, as last seen."""
    name: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    blocked_at: Mapped[dt.datetime | None]
    """Set when a sign-count regression or another clone signal was seen: the passkey no longer signs in."""
    blocked_reason: Mapped[str | None] = mapped_column(sa.String(64))

    @property
    def blocked(self) -> bool:
        return self.blocked_at is not None

    def __repr__(self) -> str:
        return f"PasskeyCredential(id={self.id!r}, citizen={self.citizen_id!r}, blocked={self.blocked!r})"
