"""What happens when an SSO session ends: tokens revoked, relying parties told.

Issue 4 §4 and §6. :class:`LogoutService` is registered as an
``on_session_end`` hook of :class:`idp.sessions.SessionStore`, so every way a
session ends — RP-initiated logout, the account page, an administrator, a
password change, idle or absolute expiry found by the sweep — goes through
:meth:`LogoutService.session_ended`, which:

1. revokes the access and refresh tokens issued in the session
   (``TokenRecord.sid``); "sign out everywhere" and a password change also
   revoke the citizen's offline tokens;
2. writes one :class:`~idp.models.LogoutDelivery` row per client of the
   session that registered a ``backchannel_logout_uri`` and commits them
   (docs/design.md, state: the durable record comes *before* the job);
3. queues one Dramatiq job per row.

CAS services (issue 21 §3) are told through the same rows and queue: one row
per service ticket issued in the session (:attr:`idp.sessions.Session.cas_tickets`),
to the service's CAS logout URL, its ``sub`` holding the ticket (the
``SessionIndex``); :meth:`LogoutService.attempt` POSTs the SAML
``LogoutRequest`` of :mod:`idp.cas.slo` for such a row instead of a logout token.

:meth:`LogoutService.attempt` is the job body (Back-Channel Logout 1.0 §2.5):
sign the logout token, POST it, record the outcome. :meth:`resend_pending`
is the recovery sweep for rows whose job was lost (Redis flushed, in-process
queue gone with a restarted idp).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keys.backend import Signer

from ..cas.services import CAS_ATTRIBUTE, service_of
from ..cas.slo import is_cas_session_index, logout_request, post_logout_request, request_id_for
from ..models import Client, LogoutDelivery, utcnow
from ..netpolicy import check_outbound_url
from ..settings import IdpSettings
from .http import Outcome, post_logout_token
from .queue import TransientDelivery
from .rows import Attempt, DeliveryRows, insert_oidc_deliveries, retry_delay_ms
from .tokens import LogoutTokenSpec, encode_logout_token

__all__ = [
    "DELIVERY_STATUSES",
    "OFFLINE_REVOKING_REASONS",
    "DeliveryView",
    "LogoutService",
    "delivery_jti",
]

logger = logging.getLogger(__name__)

DELIVERY_STATUSES = ("pending", "delivered", "failed")
OFFLINE_REVOKING_REASONS = frozenset({"sign_out_everywhere", "password_change"})
"""Session ends that also revoke offline (``offline_access``) refresh tokens (issue 4 §6)."""

SWEEP_BATCH = 5000
"""Sessions the periodic sweep may end per run."""

_JTI_NAMESPACE = uuid.UUID("5a0c6a55-3f2e-4d8e-9c59-6b1c0a8f0e11")


def delivery_jti(issuer: str, row: Any) -> str:
    """The ``jti`` of a delivery: stable across retries, unique per row.

    Derived from the row instead of stored: the row's ``sid`` is random and its
    ``created_at`` has microseconds, so two rows never share it, even across
    databases. ``row``: a :class:`~idp.models.LogoutDelivery` or the attempt's
    read (:class:`idp.logout.rows.Attempt`), which carry the same values.
    """
    created = row.created_at.astimezone(dt.UTC).isoformat() if row.created_at else ""
    return str(uuid.uuid5(_JTI_NAMESPACE, f"{issuer}|{row.id}|{row.sid}|{row.client_id}|{created}"))


@dataclass(frozen=True)
class DeliveryView:
    """A delivery as the CLI shows it (no token, no query string of the URI)."""

    id: int
    sid: str
    client_id: str
    uri: str
    status: str
    attempts: int
    last_error: str | None
    reason: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sid": self.sid,
            "client_id": self.client_id,
            "uri": self.uri,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


@dataclass(frozen=True)
class _ParkedSession:
    sid: str
    citizen_id: str
    clients: frozenset[str]
    cas_tickets: tuple[tuple[str, str], ...] = ()


def _origin_and_path(uri: str) -> str:
    return uri.split("?", 1)[0]


def _check_uri(uri: str, *, allow_loopback: bool) -> Outcome | None:
    """The registration rule again, at delivery: ``None`` when ``uri`` may be posted to."""
    try:
        check_outbound_url(uri, allow_loopback=allow_loopback)
    except ValueError as e:
        return Outcome("failed", f"not sent: {e}")
    return None


class LogoutService:
    """Revocation and back-channel fan-out for ended sessions; the job handlers.

    Collaborators are keyword-only: ``database`` (``idp.db.Database``),
    ``signer`` (a callable returning the active signer for an algorithm, read at
    each attempt so key rotation takes effect), ``pairwise_salt``, ``tokens``
    (``idp.oauth.tokens.TokenService``: revokes records and marks access tokens
    revoked in Redis). ``queue`` (a :class:`~idp.logout.queue.JobQueue`) is
    attached after construction, because the queue needs this object as its
    handler.
    """

    def __init__(
        self,
        settings: IdpSettings,
        *,
        database: Any,
        signer: Callable[[str], Signer],
        pairwise_salt: bytes,
        sessions: Any | None = None,
        tokens: Any | None = None,
        allow_loopback: bool | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.rows = DeliveryRows(database)
        self._signer = signer
        self._salt = pairwise_salt
        self.sessions = sessions
        self.tokens = tokens
        self.allow_loopback = settings.loopback_callbacks_allowed if allow_loopback is None else allow_loopback
        """Receivers on 127.0.0.1 may be told (the embedded demo, the rule registration applies); never private ones."""
        self.queue: Any | None = None

    # -- hook: a session ended --------------------------------------------
    def session_ended(self, session: Any, reason: str) -> list[int]:
        """``SessionStore.on_session_end`` hook; returns the delivery ids queued.

        If the database cannot be written (it is down), the ended session is
        parked in Redis and the sweep records it later: the session itself is
        already gone from Redis, so this is the only place that still knows
        which relying parties to tell.
        """
        now = utcnow()
        try:
            self._revoke_tokens(session, reason)
            with self.database.session() as db:
                ids = self._record_deliveries(db, session, reason, now)
        except Exception:
            if self.queue is None:
                raise
            logger.exception("session %s: could not record its logout deliveries; parked for the sweep", session.sid)
            self.queue.park(
                {"sid": session.sid, "citizen_id": session.citizen_id, "clients": sorted(session.clients),
                 "reason": reason, "cas_tickets": [list(t) for t in getattr(session, "cas_tickets", ())]}
            )
            return []
        # Committed: now the jobs. A failure to enqueue leaves the rows pending
        # for the recovery sweep instead of losing them.
        self._enqueue_all(ids)
        if ids:
            logger.info("session %s ended (%s): %d back-channel deliveries queued", session.sid, reason, len(ids))
        return ids

    def _revoke_tokens(self, session: Any, reason: str) -> None:
        # Issue 4 §6: tokens follow the session. The protocol engineer's
        # Provider hook does the same for its process; repeating it here makes
        # the worker's expiry sweep and the CLI revoke too (already revoked
        # records are skipped, so the overlap costs one query).
        if self.tokens is None:
            return
        self.tokens.revoke(sid=session.sid, include_offline=False)
        if reason in OFFLINE_REVOKING_REASONS and session.citizen_id:
            try:
                citizen_id = int(session.citizen_id)
            except ValueError:
                return
            self.tokens.revoke(citizen_id=citizen_id, include_offline=True)

    def _record_deliveries(self, db: Any, session: Any, reason: str, now: dt.datetime) -> list[int]:
        cas_ids = self._record_cas_deliveries(db, session, reason, now)
        return cas_ids + self._record_oidc_deliveries(db, session, reason, now)

    def _record_cas_deliveries(self, db: Any, session: Any, reason: str, now: dt.datetime) -> list[int]:
        """One row per CAS ticket of the session whose service registered a logout URL."""
        tickets = list(getattr(session, "cas_tickets", ()) or ())
        if not tickets:
            return []
        services = {c.client_id: service_of(c) for c in db.scalars(
            sa.select(Client).where(Client.client_id.in_(sorted({cid for cid, _ in tickets})))).all()}
        rows = []
        for client_id, ticket in tickets:
            cas = services.get(client_id)
            if cas is None or not cas.logout_url or not is_cas_session_index(ticket):
                continue
            row = LogoutDelivery(sid=session.sid, client_id=client_id, sub=ticket, uri=cas.logout_url,
                                 status="pending", attempts=0, reason=reason, created_at=now, next_attempt_at=now)
            db.add(row)
            rows.append(row)
        db.flush()
        return [r.id for r in rows]

    def _record_oidc_deliveries(self, db: Any, session: Any, reason: str, now: dt.datetime) -> list[int]:
        client_ids = sorted(session.clients)
        if not client_ids:
            return []
        return insert_oidc_deliveries(db, sid=session.sid, citizen_id=session.citizen_id, client_ids=client_ids,
                                      reason=reason, now=now, salt=self._salt)

    def _enqueue(self, delivery_id: int) -> None:
        if self.queue is None:
            logger.warning("no job queue attached; delivery %s waits for the recovery sweep", delivery_id)
            return
        try:
            self.queue.enqueue_delivery(str(delivery_id))
        except Exception:
            logger.exception("could not queue delivery %s; the recovery sweep will", delivery_id)

    def _enqueue_all(self, ids: list[int]) -> None:
        if self.queue is None or len(ids) < 2:
            for delivery_id in ids:
                self._enqueue(delivery_id)
            return
        try:
            self.queue.enqueue_deliveries([str(i) for i in ids])
        except Exception:
            logger.exception("could not queue deliveries %s; the recovery sweep will", ids)

    # -- job: one attempt ---------------------------------------------------
    def attempt(self, delivery_id: str) -> None:
        """Deliver ``delivery_id`` once (the Dramatiq actor's body).

        Raises :class:`TransientDelivery` when the RP should be tried again
        later; returns normally when the row is delivered, failed for good,
        or not pending any more (a duplicate job is harmless).
        """
        # One autocommit read of the row and its client (DeliveryRows): an attempt
        # is paid once per relying party of a fan-out.
        row = self.rows.read(int(delivery_id))
        if row is None or row.status != "pending":
            return
        spec = LogoutTokenSpec(
            issuer=self.settings.issuer,
            client_id=row.client_id,
            jti=delivery_jti(self.settings.issuer, row),
            sid=row.sid,
            sub=row.sub,
        )
        uri = row.uri
        created = row.created_at
        # Sign with the algorithm the client gets its ID tokens in: an RP
        # that registered RS256 may accept nothing else (OIDC Registration §2).
        registered = row.registered is not None
        alg = row.alg if registered else None
        # A CAS row: its client is a CAS service (or is gone and the row holds a
        # ticket). An OIDC pairwise sub may begin with "ST-" too: the client decides.
        is_cas = (CAS_ATTRIBUTE in (row.attributes or {})) if registered else True
        cas_index = row.sub if is_cas and is_cas_session_index(row.sub) else None
        outcome = _check_uri(uri, allow_loopback=self.allow_loopback)
        if outcome is None and cas_index is not None:
            # CAS single logout (issue 21 §3): the SAML LogoutRequest, same checks, deadline and retries.
            xml = logout_request(cas_index, request_id=request_id_for(spec.jti), issued=created)
            outcome = post_logout_request(
                uri, xml, timeout=self.settings.logout_timeout_seconds, allow_loopback=self.allow_loopback
            )
        elif outcome is None:
            token = encode_logout_token(self._signer(alg or "ES256"), spec)
            # Issue 19 §2/§7: the address is checked again at delivery (a URI
            # registered before the rule, or a name that now resolves to an
            # internal address), and the POST has one deadline and a size cap.
            outcome = post_logout_token(
                uri, token, timeout=self.settings.logout_timeout_seconds, allow_loopback=self.allow_loopback
            )
        now = utcnow()
        give_up = (now - created).total_seconds() >= self.settings.logout_retry_seconds
        self._record_outcome(row, outcome, now, give_up=give_up)
        if outcome.result == "retry" and not give_up:
            raise TransientDelivery(outcome.detail)

    def _record_outcome(self, row: Attempt, outcome: Outcome, now: dt.datetime, *, give_up: bool) -> None:
        """Settle ``row`` (as :meth:`DeliveryRows.read` read it) after one attempt."""
        if outcome.result == "delivered":
            if self.rows.settle(row.id, "delivered", now=now):
                logger.info("logout delivery %s to client %s delivered", row.id, row.client_id)
        elif outcome.result == "failed" or give_up:
            error = (outcome.detail if outcome.result == "failed" else f"gave up: {outcome.detail}")[:500]
            if self.rows.settle(row.id, "failed", now=now, error=error):
                logger.warning("logout delivery %s to client %s failed: %s", row.id, row.client_id, error)
        else:
            # The counter read with the row, plus this attempt: attempts of one
            # delivery do not overlap (the queue's lock), so it is the stored one.
            delay = retry_delay_ms(row.attempts + 1, min_ms=self.settings.logout_min_backoff_ms,
                                   max_ms=self.settings.logout_max_backoff_ms)
            if self.rows.settle(row.id, "retry", now=now, error=outcome.detail,
                              next_attempt_at=now + dt.timedelta(milliseconds=delay)):
                logger.info("logout delivery %s to client %s will be retried: %s", row.id, row.client_id,
                            outcome.detail)

    # -- recovery and the periodic sweep ---------------------------------
    def resend_pending(self, *, only_lost: bool = True, limit: int = 1000) -> int:
        """Re-queue pending deliveries; with ``only_lost``, only those without a live job.

        Safe to run any time: a duplicate job finds the row delivered and stops,
        and the RP sees the same ``jti`` if it gets the token twice.
        """
        # A job whose worker died (kill -9) sits in that worker's unacked set
        # until the broker's maintenance returns it; a row overdue by this much
        # is treated as lost even though its marker lives.
        overdue = utcnow() - dt.timedelta(seconds=max(300, 3 * self.settings.logout_timeout_seconds))
        with self.database.session() as db:
            rows = db.execute(
                sa.select(LogoutDelivery.id, LogoutDelivery.next_attempt_at)
                .where(LogoutDelivery.status == "pending")
                .order_by(LogoutDelivery.id)
                .limit(limit)
            ).all()
        count = 0
        for delivery_id, next_attempt_at in rows:
            stuck = next_attempt_at is not None and next_attempt_at < overdue
            if (
                only_lost
                and not stuck
                and self.queue is not None
                and self.queue.has_job(str(delivery_id))
            ):
                continue
            self._enqueue(delivery_id)
            count += 1
        if count:
            logger.info("re-queued %d pending logout deliveries", count)
        return count

    def record_parked(self, limit: int = 1000) -> int:
        """Record the deliveries of sessions that ended while the database was down."""
        if self.queue is None:
            return 0
        done = 0
        for _ in range(limit):
            item = self.queue.take_parked()
            if item is None:
                break
            ended = _ParkedSession(
                sid=item["sid"], citizen_id=item.get("citizen_id") or "", clients=frozenset(item["clients"]),
                cas_tickets=tuple((str(c), str(t)) for c, t in item.get("cas_tickets") or ()),
            )
            try:
                self._revoke_tokens(ended, item["reason"])
                with self.database.session() as db:
                    ids = self._record_deliveries(db, ended, item["reason"], utcnow())
            except Exception:
                self.queue.park(item, front=True)
                logger.warning("parked session ends still cannot be recorded; next sweep tries again")
                break
            self._enqueue_all(ids)
            done += 1
        return done

    def sweep(self) -> None:
        """The worker's periodic job: expire overdue sessions, recover lost deliveries."""
        self.record_parked()
        if self.sessions is not None:
            # Up to 5,000 sessions per run: 10,000 a minute at the default period.
            self.sessions.sweep_expired(limit=SWEEP_BATCH)
        self.resend_pending(only_lost=True)

    # -- reporting ----------------------------------------------------------
    def deliveries(self, *, status: str | None = None, limit: int = 200) -> list[DeliveryView]:
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        q = sa.select(LogoutDelivery).order_by(LogoutDelivery.id.desc()).limit(limit)
        if status:
            q = q.where(LogoutDelivery.status == status)
        with self.database.session() as db:
            return [
                DeliveryView(
                    id=r.id,
                    sid=r.sid,
                    client_id=r.client_id,
                    uri=_origin_and_path(r.uri),
                    status=r.status,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    reason=r.reason,
                    created_at=r.created_at,
                    next_attempt_at=r.next_attempt_at,
                    delivered_at=r.delivered_at,
                )
                for r in db.scalars(q).all()
            ]

    def counts(self) -> dict[str, int]:
        """Deliveries per status (what to monitor: pending growing, failures)."""
        with self.database.session() as db:
            rows = db.execute(
                sa.select(LogoutDelivery.status, sa.func.count()).group_by(LogoutDelivery.status)
            ).all()
        out = dict.fromkeys(DELIVERY_STATUSES, 0)
        out.update({status: n for status, n in rows})
        return out
