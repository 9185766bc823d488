"""Applying lifecycle transitions to stored certificates (API, CLI, automatic expiry).

One short transaction per change: lock the row (``SELECT … FOR UPDATE`` on
PostgreSQL), check the transition with the pure state machine
(:mod:`certstore.lifecycle`), write the new status, bump the certificate's
status list's version (so the next fetch of that list shows the change), and
append the audit event — all or nothing.

Only the issuing agency may change a certificate's status through the API
(another agency gets 403); the deployment's operator may through the CLI.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .db import session_scope
from .errors import Forbidden, InvalidInput, NotFound
from .identifier import parse_identifier
from .lifecycle import Action, LifecycleEvent, Status, is_expired, transition
from .models import AuditEvent, Certificate
from .statuslists import StatusListService

__all__ = ["LifecycleService", "CHINA_TZ"]

logger = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise InvalidInput(f"unknown action {str(action)[:20]!r} (one of {known})", field="action") from None


class LifecycleService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.clock = clock

    def _locked(self, s: Session, identifier: str) -> Certificate:
        try:
            text = str(parse_identifier(identifier))
        except ValueError:
            raise NotFound("there is no certificate with that identifier", field="identifier") from None
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == text).with_for_update(of=Certificate))
        if row is None:
            raise NotFound("there is no certificate with that identifier", field="identifier")
        return row

    def apply(self, s: Session, row: Certificate, event: LifecycleEvent) -> None:
        """Write ``event`` to ``row`` inside the caller's transaction."""
        row.status = event.to_status.value
        StatusListService.bump(s, row.status_list)
        s.add(
            AuditEvent(
                actor=event.actor,
                action=f"certificate.{event.action.value}",
                subject=event.identifier,
                detail=event.audit_detail(),
                at=event.at,
            )
        )

    def change(
        self,
        identifier: str,
        action: Action | str,
        *,
        reason: str,
        actor: str,
        agency_uscc: str | None,
    ) -> LifecycleEvent:
        """Change one certificate's status. ``agency_uscc``: the calling agency (``None``: operator)."""
        act = _action(action)
        with session_scope(self.sessions) as s:
            row = self._locked(s, identifier)
            if agency_uscc is not None and row.issuer_uscc != agency_uscc:
                raise Forbidden(
                    "only the issuing agency may change this certificate's status", code="not_the_issuer"
                )
            now = self.clock()
            if act is not Action.EXPIRE and row.status in (Status.VALID, Status.SUSPENDED) and is_expired(row.valid_until, now):
                # Expiry applies first: a certificate past its end date is 05 whatever is asked next.
                self.apply(s, row, transition(row.status, Action.EXPIRE, identifier=row.identifier, reason="end of validity", actor="system", at=now))
            event = transition(row.status, act, identifier=row.identifier, reason=reason, actor=actor, at=now)
            self.apply(s, row, event)
        logger.info("certificate %s: %s -> %s by %s", event.identifier, event.from_status.value, event.to_status.value, actor)
        return event

    def supersede(self, s: Session, identifier: str, new_identifier: str, *, actor: str, at: dt.datetime) -> LifecycleEvent:
        """Cancel ``identifier`` because ``new_identifier`` replaces it (inside the caller's transaction)."""
        row = self._locked(s, identifier)
        event = transition(
            row.status, Action.SUPERSEDE, identifier=row.identifier,
            reason=f"superseded by {new_identifier}", actor=actor, at=at, superseded_by=new_identifier,
        )
        self.apply(s, row, event)
        return event

    def expire_due(self, *, limit: int = 10_000) -> list[LifecycleEvent]:
        """Set every live certificate past the end of its validity to 05 expired (``certstore expire-due``)."""
        now = self.clock()
        today_cst = now.astimezone(CHINA_TZ).date()
        events: list[LifecycleEvent] = []
        with session_scope(self.sessions) as s:
            rows = s.scalars(
                sa.select(Certificate)
                .where(
                    Certificate.status.in_([Status.VALID.value, Status.SUSPENDED.value]),
                    Certificate.valid_until.is_not(None),
                    Certificate.valid_until < today_cst,
                )
                .order_by(Certificate.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=Certificate)
            ).all()
            for row in rows:
                if not is_expired(row.valid_until, now):
                    continue
                event = transition(row.status, Action.EXPIRE, identifier=row.identifier, reason="end of validity", actor="system", at=now)
                self.apply(s, row, event)
                events.append(event)
        if events:
            logger.info("expired %d certificates", len(events))
        return events

    def expire_if_due(self, identifier: str) -> bool:
        """Expiry applied on read: ``True`` when this call expired the certificate."""
        now = self.clock()
        with session_scope(self.sessions) as s:
            try:
                row = self._locked(s, identifier)
            except NotFound:
                return False
            if row.status not in (Status.VALID.value, Status.SUSPENDED.value) or not is_expired(row.valid_until, now):
                return False
            self.apply(s, row, transition(row.status, Action.EXPIRE, identifier=row.identifier, reason="end of validity", actor="system", at=now))
        return True

    def history(self, identifier: str) -> list[AuditEvent]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    sa.select(AuditEvent).where(AuditEvent.subject == identifier).order_by(AuditEvent.id)
                )
            )
