"""The passkey table's queries (SQL only; the ceremonies are in :mod:`.service`)."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..models import Citizen, utcnow
from .models import PasskeyCredential

__all__ = ["has_usable_passkey", "PasskeyStore", "LastFactor", "NAME_MAX"]

NAME_MAX = 64


class LastFactor(Exception):
    """Removing this passkey would leave the account with no way to sign in."""


def has_usable_passkey(db: Any, citizen_id: int) -> bool:
    """Whether the account has a passkey that is not blocked (one indexed query)."""
    row = db.first_row(
        sa.select(PasskeyCredential.id).where(PasskeyCredential.citizen_id == citizen_id,
                                              PasskeyCredential.blocked_at.is_(None)).limit(1), {})
    return row is not None


def clean_name(name: str, default: str) -> str:
    """A name the citizen typed: printable, trimmed, at most :data:`NAME_MAX` characters."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()[:NAME_MAX]
    return text or default


class PasskeyStore:
    def __init__(self, db: Any) -> None:
        self.db = db

    def of_citizen(self, citizen_id: int) -> list[PasskeyCredential]:
        with self.db.session() as s:
            rows = s.execute(sa.select(PasskeyCredential).where(PasskeyCredential.citizen_id == citizen_id)
                             .order_by(PasskeyCredential.created_at, PasskeyCredential.id)).scalars().all()
            s.expunge_all()
            return list(rows)

    def by_credential_id(self, credential_id: str) -> PasskeyCredential | None:
        with self.db.session() as s:
            row: PasskeyCredential | None = s.execute(
                sa.select(PasskeyCredential).where(PasskeyCredential.credential_id == credential_id)
            ).scalar_one_or_none()
            if row is not None:
                s.expunge(row)
            return row

    def user_handle_of(self, citizen_id: int) -> str | None:
        """The ``user.id`` already given to this citizen's authenticators (one per account)."""
        row = self.db.first_row(sa.select(PasskeyCredential.user_handle)
                                .where(PasskeyCredential.citizen_id == citizen_id).limit(1), {})
        return str(row[0]) if row is not None else None

    def credential_ids(self, citizen_id: int, *, usable_only: bool = False) -> list[tuple[str, list[str]]]:
        q = sa.select(PasskeyCredential.credential_id, PasskeyCredential.transports).where(
            PasskeyCredential.citizen_id == citizen_id)
        if usable_only:
            q = q.where(PasskeyCredential.blocked_at.is_(None))
        with self.db.session() as s:
            return [(r[0], list(r[1] or [])) for r in s.execute(q)]

    def add(self, row: PasskeyCredential) -> PasskeyCredential:
        with self.db.session() as s:
            s.add(row)
            s.flush()
            s.expunge(row)
        return row

    def used(self, row_id: int, *, sign_count: int, backed_up: bool, when: dt.datetime | None = None) -> None:
        with self.db.session() as s:
            s.execute(sa.update(PasskeyCredential).where(PasskeyCredential.id == row_id).values(
                sign_count=sign_count, backed_up=backed_up, last_used_at=when or utcnow()))

    def block(self, row_id: int, reason: str) -> None:
        with self.db.session() as s:
            s.execute(sa.update(PasskeyCredential).where(PasskeyCredential.id == row_id,
                                                         PasskeyCredential.blocked_at.is_(None))
                      .values(blocked_at=utcnow(), blocked_reason=reason[:64]))

    def rename(self, citizen_id: int, row_id: int, name: str) -> bool:
        with self.db.session() as s:
            done = s.execute(sa.update(PasskeyCredential).where(
                PasskeyCredential.id == row_id, PasskeyCredential.citizen_id == citizen_id)
                .values(name=clean_name(name, "passkey")))
            return bool(done.rowcount)

    def remove(self, citizen_id: int, row_id: int) -> bool:
        """Delete one of the citizen's passkeys; :class:`LastFactor` if it is their last way in.

        The citizen row is locked, so two removals at once cannot each see the other passkey left.
        """
        with self.db.session() as s:
            citizen = s.execute(sa.select(Citizen).where(Citizen.id == citizen_id).with_for_update()
                                ).scalar_one_or_none()
            if citizen is None:
                return False
            rows: Sequence[PasskeyCredential] = s.execute(
                sa.select(PasskeyCredential).where(PasskeyCredential.citizen_id == citizen_id)).scalars().all()
            target = next((r for r in rows if r.id == row_id), None)
            if target is None:
                return False
            others = [r for r in rows if r.id != row_id and r.blocked_at is None]
            if citizen.password_hash is None and not others:
                raise LastFactor()
            s.delete(target)
            return True


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())
