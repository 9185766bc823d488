"""Consent: what a citizen granted a client, remembered until revoked (OIDC Core §3.1.2.4).

:class:`ConsentService` owns every read and write of the ``consent`` table:
the citizen-and-consent read of every authorization request (one query, on
the SSO hot path), remembering a grant from the consent page or a device
approval, and the account page's list and revoke.

A new grant adds to what the client already holds, never silently removes
(issue 18 §2: approving a kiosk for ``openid profile`` used to replace a
portal's ``openid profile certs:read``); withdrawing is explicit, on the
account page (:meth:`ConsentService.revoke`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from .models import Citizen, Client, Consent, TokenRecord, utcnow
from .oauth.claims import ID_NUMBER_SCOPE
from .oauth.flow import final_scopes

if TYPE_CHECKING:
    from .db import Database

__all__ = ["ConsentService", "CitizenView", "ConsentView", "ConnectedApp", "chosen_scopes", "merged_scopes"]

logger = logging.getLogger(__name__)


class CitizenView(NamedTuple):
    """What authorize needs of an account (also read by the code's claims snapshot)."""

    id: int
    public_id: str
    name: str
    phone: str | None
    email: str | None
    disabled: bool
    has_totp: bool


class ConsentView(NamedTuple):
    scopes: list[str]
    revoked_at: Any

    @property
    def current(self) -> list[str] | None:
        """The scopes it grants now (``None`` once revoked)."""
        return self.scopes if self.revoked_at is None else None


class ConnectedApp(NamedTuple):
    """A line of the account page's list of connected apps."""

    client_id: str
    name: str
    scopes: list[str]


def chosen_scopes(shown: Iterable[str], *, share_id_number: bool) -> list[str]:
    """What a consent form (or device approval) grants of ``shown``: the ID number only with its own tick."""
    shown = list(shown)
    granted = [s for s in shown if s != ID_NUMBER_SCOPE]
    if ID_NUMBER_SCOPE in shown and share_id_number:
        granted.append(ID_NUMBER_SCOPE)
    return granted


def merged_scopes(held: Iterable[str] | None, granted: Iterable[str]) -> list[str]:
    """``held`` followed by what ``granted`` adds to it (a grant widens, never narrows)."""
    out = list(held or ())
    for s in granted:
        if s not in out:
            out.append(s)
    return out


_CITIZEN_AND_CONSENT: Any = None


def _citizen_and_consent_stmt() -> Any:
    """Built once, in Core: constructing the statement and loading ORM entities
    were a third of this lookup's GIL time on every silent sign-in."""
    global _CITIZEN_AND_CONSENT
    if _CITIZEN_AND_CONSENT is None:
        c, k = Citizen.__table__.c, Consent.__table__.c
        _CITIZEN_AND_CONSENT = (
            sa.select(c.id, c.public_id, c.name, c.phone, c.email, c.disabled,
                      c.totp_secret_enc.is_not(None), k.scopes, k.revoked_at, k.citizen_id)
            .select_from(Citizen.__table__.outerjoin(
                Consent.__table__, sa.and_(k.citizen_id == c.id, k.client_id == sa.bindparam("client_id"))))
            .where(c.id == sa.bindparam("citizen_id"))
        )
    return _CITIZEN_AND_CONSENT


class ConsentService:
    """Consents on top of the database, each change in the audit log."""

    def __init__(self, db: Database, audit: Any = None) -> None:
        self.db = db
        self.audit = audit
        self._direct: Any = None
        """The citizen-and-consent read straight on psycopg (PostgreSQL; :mod:`idp.oauth.pgdirect`)."""

    def _audit(self, kind: str, **kw: Any) -> None:
        if self.audit is None:
            return
        try:
            self.audit.record(kind, **kw)
        except Exception:
            logger.exception("audit record %s failed", kind)

    # ------------------------------------------------------------- authorize

    def citizen_and_consent(self, citizen_id: int, client_id: str) -> tuple[CitizenView | None, ConsentView | None]:
        """The account and its consent row for ``client_id``, in one query."""
        params = {"citizen_id": citizen_id, "client_id": client_id}
        if self.db.dialect == "postgresql":
            # Every silent sign-in runs it: through a SQLAlchemy Connection the
            # execution context and result proxy cost more CPU than psycopg does.
            # The same compiled statement, on the same pool (issue 16).
            if self._direct is None:
                from .oauth.pgdirect import Direct

                self._direct = Direct(_citizen_and_consent_stmt(), self.db.engine)
            rows = self._direct.rows(self.db.engine, params)[1]
            row = rows[0] if rows else None
        else:
            row = self.db.first_row(_citizen_and_consent_stmt(), params)
        if row is None:
            return None, None
        citizen = CitizenView(int(row[0]), row[1], row[2], row[3], row[4], bool(row[5]), bool(row[6]))
        consent = ConsentView(list(row[7] or []), row[8]) if row[9] is not None else None
        return citizen, consent

    # --------------------------------------------------------------- granting

    def remember(self, citizen_id: int, client_id: str, granted: list[str]) -> list[str]:
        """Add ``granted`` to the citizen's consent for ``client_id``; returns what it now holds.

        A revoked consent holds nothing, so granting again starts from ``granted``.
        """
        # Two tabs (or a load test's parallel users) may consent at once: the
        # loser of the insert race updates the row the winner wrote.
        for attempt in (1, 2):
            try:
                with self.db.session() as s:
                    c = s.execute(sa.select(Consent).where(Consent.citizen_id == citizen_id,
                                                           Consent.client_id == client_id)
                                  .with_for_update()).scalar_one_or_none()
                    if c is None:
                        held = list(granted)
                        s.add(Consent(citizen_id=citizen_id, client_id=client_id, scopes=held))
                    else:
                        held = merged_scopes(c.scopes if c.revoked_at is None else None, granted)
                        c.scopes = held
                        c.revoked_at = None
                        c.updated_at = utcnow()
                break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        self._audit("consent.granted", client_id=client_id, detail={"scopes": list(granted)})
        return held

    # ------------------------------------------------------------ account page

    def connected_apps(self, citizen_id: int) -> list[ConnectedApp]:
        """The clients the citizen has a standing consent for, with what each holds."""
        with self.db.session() as s:
            rows = s.execute(
                sa.select(Consent.client_id, Client.name, Consent.scopes)
                .join(Client, Client.client_id == Consent.client_id)
                .where(Consent.citizen_id == citizen_id, Consent.revoked_at.is_(None))
            ).all()
        return [ConnectedApp(client_id, name, list(scopes or [])) for client_id, name, scopes in rows]

    def revoke(self, citizen_id: int, client_id: str, *,
               revoke_tokens: Callable[[list[str]], Any] | None = None) -> None:
        """Withdraw the consent, and with it what it granted (the client's tokens for this citizen)."""
        with self.db.session() as s:
            s.execute(
                sa.update(Consent)
                .where(Consent.citizen_id == citizen_id, Consent.client_id == client_id)
                .values(revoked_at=utcnow())
            )
        with self.db.session() as s:
            jtis = list(s.execute(
                sa.select(TokenRecord.jti).where(TokenRecord.citizen_id == citizen_id,
                                                 TokenRecord.client_id == client_id)
            ).scalars())
        if revoke_tokens is not None:
            revoke_tokens(jtis)
        self._audit("consent.revoked", client_id=client_id)

    def approve_device(self, citizen_id: int, client: Any, shown: list[str], *, share_id_number: bool) -> str:
        """A device approval is the citizen's consent, as on the consent page (RFC 8628 §3.3).

        Remembers what it grants (added to what the client holds) and
        returns the scope the device's tokens are issued for.
        """
        granted = chosen_scopes(shown, share_id_number=share_id_number)
        self.remember(citizen_id, client.client_id, granted)
        return " ".join(final_scopes(shown, first_party=client.first_party,
                                     may_receive_id_number=client.may_receive_id_number, consented=granted))
