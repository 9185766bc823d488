"""``/cas/login`` (CAS 3.0 §2.1–§2.2) as decisions, without HTTP.

:class:`CasLogin` takes the request's parameters and the SSO session (or
``None``) and answers with an outcome the view turns into HTTP:

- :class:`ToService`: redirect to the registered service URL, with a new
  ticket (or without one: ``gateway`` and nobody signed in, §2.1.1);
- :class:`ToLogin`: the idp's own login page (a login-only
  :class:`idp.oauth.flow.Flow` that comes back to ``/cas/login/resume``),
  for no session, or ``renew=true`` (§2.1.1: single sign-on is bypassed);
- :class:`ToConsent`: the consent page, the first time a service that is
  not first-party asks (the same rules as OIDC: :func:`idp.oauth.flow.consent_missing`);
- :class:`Refused`: an error page — an unregistered or non-matching
  ``service`` is never redirected to.

A request waiting for a login or consent is a small record in Redis (30
minutes) that says which service, whether ``renew`` was asked, when, and
which login flow it sent the citizen to. A login counts as fresh (``renew``,
``isFromNewLogin``) only if that flow was completed — the login page deletes
a login-only flow once the password (and second factor) passed — and the
session's ``auth_time`` is not older than the request: visiting the way back
without typing the password, or pasting it later, gives no fresh ticket.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..oauth.flow import Flow, consent_missing, final_scopes
from .services import find_service, service_of
from .tickets import Ticket, TicketStore

__all__ = ["CasLogin", "ToService", "ToLogin", "ToConsent", "Refused", "Outcome", "PENDING_SECONDS"]

PENDING_SECONDS = 30 * 60
"""How long a CAS login waits for the citizen (as a sign-in flow does)."""


@dataclass(frozen=True)
class ToService:
    url: str
    ticket_issued: bool


@dataclass(frozen=True)
class ToLogin:
    flow_id: str
    """The login-only flow whose login page the browser goes to; it comes back to ``resume_url``."""


@dataclass(frozen=True)
class ToConsent:
    request_id: str
    client: Any
    scopes: list[str]


@dataclass(frozen=True)
class Refused:
    message: str
    detail: str
    status: int = 400


Outcome = ToService | ToLogin | ToConsent | Refused


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def with_ticket(service: str, ticket: str) -> str:
    return f"{service}{'&' if '?' in service else '?'}{urlencode({'ticket': ticket})}"


class CasLogin:
    """The decisions of ``/cas/login``; collaborators are keyword-only."""

    def __init__(self, *, db: Any, redis: Any, keyspace: Any, tickets: TicketStore, sessions: Any,
                 consents: Any, flows: Any, resume_url: Callable[[str], str], audit: Any = None) -> None:
        self.db = db
        self.flows = flows
        self._resume_url = resume_url
        self._r = redis
        self._p = f"{getattr(keyspace, 'base', keyspace)}cas:login:"
        self.tickets = tickets
        self.sessions = sessions
        self.consents = consents
        self._audit = audit

    # ------------------------------------------------------------ requests

    def start(self, params: dict[str, str], *, session: Any, now: int) -> Outcome:
        service = params.get("service")
        if not service:
            return Refused("cas_no_service", "no service parameter")
        client = find_service(self.db, service)
        if client is None:
            return Refused("cas_unknown_service", "service not registered")
        renew = _flag(params.get("renew"))
        # renew and gateway together: renew wins (the safe reading of §2.1.1's "undefined").
        if session is not None and not renew:
            return self._answer(client, service, session, fresh=False, now=now, request_id=None)
        if _flag(params.get("gateway")) and not renew:
            return ToService(service, ticket_issued=False)
        pending = {"client_id": client.client_id, "service": service, "renew": renew, "created": now}
        return self._to_login(self._keep(pending), pending, client)

    def resume(self, request_id: str | None, *, session: Any, now: int, granted: list[str] | None = None) -> Outcome:
        """Back from the login page (or the consent page, which ``granted`` what it lists)."""
        pending = self._get(request_id)
        if pending is None:
            return Refused("error_expired", "the CAS login request is unknown or expired")
        assert request_id is not None
        client = self._service(pending)
        if client is None:
            return Refused("cas_unknown_service", "service no longer registered")
        if session is None:
            return self._to_login(request_id, pending, client)
        fresh = self._login_done(pending) and int(session.auth_time) >= int(pending["created"])
        if pending["renew"] and not fresh:
            return self._to_login(request_id, pending, client)
        return self._answer(client, pending["service"], session, fresh=fresh, now=now, request_id=request_id,
                            granted=granted)

    def consent_shown(self, request_id: str | None) -> tuple[Any, list[str]] | None:
        """The service and scopes the consent page asks for, if ``request_id`` waits."""
        pending = self._get(request_id)
        client = self._service(pending) if pending is not None else None
        return None if client is None else (client, _asked(client))

    def give_consent(self, request_id: str | None, *, session: Any, granted: list[str], now: int) -> Outcome:
        pending = self._get(request_id)
        client = self._service(pending) if pending is not None else None
        if pending is None or client is None or session is None:
            return Refused("error_expired", "the CAS login request is unknown or expired")
        self.consents.remember(int(session.citizen_id), client.client_id, granted)
        # As in the OIDC flow: the page just answered decides (an ID number left
        # unticked is not asked again in this request, and not released).
        return self.resume(request_id, session=session, now=now, granted=granted)

    # ------------------------------------------------------------- answers

    def _answer(self, client: Any, service: str, session: Any, *, fresh: bool, now: int,
                request_id: str | None, granted: list[str] | None = None) -> Outcome:
        citizen, consent = self.consents.citizen_and_consent(int(session.citizen_id), client.client_id)
        if citizen is None or citizen.disabled:
            pending = {"client_id": client.client_id, "service": service, "renew": False, "created": now}
            return self._to_login(request_id or self._keep(pending), pending, client)
        asked = _asked(client)
        rules = {"first_party": client.first_party, "may_receive_id_number": client.may_receive_id_number}
        consented = granted if granted is not None else (consent.current if consent is not None else None)
        if granted is None and consent_missing(asked, **rules, consented=consented):
            if request_id is None:
                request_id = self._keep({"client_id": client.client_id, "service": service, "renew": False,
                                         "created": now})
            return ToConsent(request_id, client, asked)
        ticket = Ticket(client_id=client.client_id, service=service, sid=session.sid, citizen_id=citizen.id,
                        auth_time=int(session.auth_time), issued_at=now, fresh=fresh,
                        scopes=final_scopes(asked, **rules, consented=consented))
        # Not a transaction (the ticket, the session and the request are in three
        # Cluster slots): a failure raises before the ticket is handed out, and a
        # ticket nobody received is never validated.
        pipe = self._r.pipeline(transaction=False)
        value = self.tickets.issue(ticket, pipe=pipe)
        self.sessions.add_cas_ticket(session.sid, client.client_id, value, pipe=pipe)
        if request_id is not None:
            pipe.delete(self._p + request_id)
        pipe.execute()
        if self._audit is not None:
            self._audit("cas.ticket_issued", client_id=client.client_id, detail={"sid": session.sid, "fresh": fresh})
        return ToService(with_ticket(service, value), ticket_issued=True)

    # ------------------------------------------------------------- storage

    def _to_login(self, request_id: str, pending: dict[str, Any], client: Any) -> ToLogin:
        """A login-only flow back to this request; the request remembers it (see :meth:`_login_done`)."""
        waiting = pending.get("flow")
        if isinstance(waiting, str) and self.flows.get(waiting) is not None:
            return ToLogin(waiting)  # the same login page: its completion is what counts
        flow = Flow.login_only(self._resume_url(request_id))
        flow.client_name = client.name  # the login page says whom the citizen signs in to
        fid = self.flows.create(flow)
        pending = {**pending, "flow": fid}
        self._r.set(self._p + request_id, json.dumps(pending), ex=PENDING_SECONDS)
        return ToLogin(fid)

    def _login_done(self, pending: dict[str, Any]) -> bool:
        """Whether the login flow this request sent the citizen to was completed (the login page deletes it)."""
        fid = pending.get("flow")
        # The request is stored before its flow and lives as long: while it
        # lives, its flow cannot have expired, so a missing flow was finished.
        return isinstance(fid, str) and self.flows.get(fid) is None

    def _keep(self, data: dict[str, Any]) -> str:
        request_id = secrets.token_urlsafe(24)
        self._r.set(self._p + request_id, json.dumps(data), ex=PENDING_SECONDS)
        return request_id

    def _get(self, request_id: str | None) -> dict[str, Any] | None:
        if not request_id or len(request_id) > 64:
            return None
        raw = self._r.get(self._p + request_id)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _service(self, pending: dict[str, Any]) -> Any:
        """The pending request's service, if it is still registered for that exact URL."""
        client = find_service(self.db, pending.get("service"))
        cas = service_of(client)
        if client is None or cas is None or client.client_id != pending.get("client_id"):
            return None
        return client


def _asked(client: Any) -> list[str]:
    """What a CAS service asks for: its registered scopes (the ID number only if it may have it)."""
    return [s for s in client.scopes if s != "id_number" or client.may_receive_id_number]
