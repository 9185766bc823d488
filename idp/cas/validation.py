"""Service ticket validation (CAS 3.0 §2.5, §2.6) and its XML / JSON answers (Appendix A, §2.5.7).

:class:`Validator` answers ``/serviceValidate`` (``cas:user`` only) and
``/p3/serviceValidate`` (with ``cas:attributes``). The user is the pairwise
identifier of the citizen in the service's sector (:mod:`idp.oauth.subject`,
as an OIDC ``sub``); the attributes are the claims of the scopes stored in
the ticket — the service's registered scopes cut by the citizen's consent
when the ticket was issued (:func:`idp.oauth.flow.final_scopes`) — built by
:func:`idp.oauth.claims.user_claims`, so the ID number is released only to a
service registered ``may_receive_id_number`` whose citizen consented to it.

Failures use the codes of §2.5.3: ``INVALID_REQUEST`` (a parameter missing),
``INVALID_TICKET`` (unknown, used, expired, issued from an ended session, or
not from a fresh login when ``renew`` is asked), ``INVALID_SERVICE`` (the
ticket was issued for another service; it is consumed all the same) and
``INTERNAL_ERROR`` (the view's answer when the store or database fails).
No description echoes the ticket.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from ..oauth.claims import user_claims
from .services import service_of
from .tickets import TicketStore

__all__ = [
    "INVALID_REQUEST",
    "INVALID_TICKET",
    "INVALID_SERVICE",
    "INTERNAL_ERROR",
    "Success",
    "Failure",
    "Validator",
    "render_xml",
    "render_json",
]

logger = logging.getLogger(__name__)

INVALID_REQUEST = "INVALID_REQUEST"
INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
INTERNAL_ERROR = "INTERNAL_ERROR"
CAS_NAMESPACE = "http://www.yale.edu/tp/cas"


@dataclass(frozen=True)
class Success:
    user: str
    attributes: dict[str, list[str]] | None = field(default=None)
    """``None`` at ``/serviceValidate``; each attribute's values at ``/p3/serviceValidate``."""


@dataclass(frozen=True)
class Failure:
    code: str
    description: str


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


class Validator:
    """Validates service tickets; ``provider`` gives clients, subjects and claims, ``accounts`` citizens."""

    def __init__(self, *, tickets: TicketStore, sessions: Any, provider: Any, accounts: Any) -> None:
        self.tickets = tickets
        self.sessions = sessions
        self.provider = provider
        self.accounts = accounts

    def validate(self, params: dict[str, str], *, with_attributes: bool) -> Success | Failure:
        service = params.get("service")
        value = params.get("ticket")
        if not service or not value:
            return Failure(INVALID_REQUEST, "the service and ticket parameters are required")
        if params.get("pgtUrl"):
            # Proxy tickets are not offered (no service is registered for them):
            # the validation goes on without a proxy-granting ticket (§2.5.4).
            logger.info("CAS validation: pgtUrl ignored (proxying is not offered)")
        ticket = self.tickets.take(value)
        if ticket is None:
            return Failure(INVALID_TICKET, "the ticket is not recognized (unknown, used or expired)")
        if ticket.service != service:
            # §2.5.3: the ticket is invalidated (take consumed it).
            logger.info("CAS validation: ticket of client %s presented for another service", ticket.client_id)
            return Failure(INVALID_SERVICE, "the ticket was not issued for this service")
        if _flag(params.get("renew")) and not ticket.fresh:
            return Failure(INVALID_TICKET, "the ticket was issued from a single sign-on session, renew asks for a new login")
        client = self.provider.query_client(ticket.client_id)
        cas = service_of(client)
        if cas is None or cas.service_url != service:
            return Failure(INVALID_SERVICE, "the service is not registered")
        if self.sessions.get(ticket.sid, touch=False) is None:
            return Failure(INVALID_TICKET, "the single sign-on session of this ticket has ended")
        allowed = self.provider.id_number_allowed(client, ticket.scopes)
        citizen = self.accounts.get(ticket.citizen_id)
        if citizen is None or citizen.disabled:
            return Failure(INVALID_TICKET, "the account of this ticket is not available")
        user = self.provider.subject(client, citizen.public_id)
        if not with_attributes:
            return Success(user)
        info = self.provider.citizen_claims(citizen, with_id_number=allowed)
        claims = user_claims(info, ticket.scopes, may_receive_id_number=allowed)
        attributes = {name: [str(v).lower() if isinstance(v, bool) else str(v)] for name, v in claims.items()}
        attributes["authenticationDate"] = [
            dt.datetime.fromtimestamp(ticket.auth_time, dt.UTC).isoformat().replace("+00:00", "Z")]
        attributes["isFromNewLogin"] = ["true" if ticket.fresh else "false"]
        attributes["longTermAuthenticationRequestTokenUsed"] = ["false"]
        return Success(user, attributes)


def render_xml(result: Success | Failure) -> str:
    """The ``cas:serviceResponse`` document (Appendix A)."""
    lines = [f'<cas:serviceResponse xmlns:cas="{CAS_NAMESPACE}">']
    if isinstance(result, Failure):
        lines.append(f'  <cas:authenticationFailure code="{result.code}">{escape(result.description)}'
                     "</cas:authenticationFailure>")
    else:
        lines.append("  <cas:authenticationSuccess>")
        lines.append(f"    <cas:user>{escape(result.user)}</cas:user>")
        if result.attributes is not None:
            lines.append("    <cas:attributes>")
            for name, values in result.attributes.items():
                for v in values:
                    lines.append(f"      <cas:{name}>{escape(v)}</cas:{name}>")
            lines.append("    </cas:attributes>")
        lines.append("  </cas:authenticationSuccess>")
    lines.append("</cas:serviceResponse>")
    return "\n".join(lines) + "\n"


def render_json(result: Success | Failure) -> str:
    """The JSON form (§2.5.7, ``format=JSON``)."""
    if isinstance(result, Failure):
        body: dict[str, Any] = {"authenticationFailure": {"code": result.code, "description": result.description}}
    else:
        success: dict[str, Any] = {"user": result.user}
        if result.attributes is not None:
            success["attributes"] = {k: v[0] if len(v) == 1 else v for k, v in result.attributes.items()}
        body = {"authenticationSuccess": success}
    return json.dumps({"serviceResponse": body}, ensure_ascii=False)
