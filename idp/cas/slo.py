"""CAS single logout (CAS 3.0 §2.3.3): the SAML ``LogoutRequest`` POSTed to a service's logout URL.

When an SSO session ends, each CAS service that got a ticket in it is told
through the same durable queue as OpenID back-channel logout
(:mod:`idp.logout.delivery` records one row per ticket, ``sub`` holding the
ticket). The request is a form POST with one field, ``logoutRequest``, whose
``SessionIndex`` is the service ticket the service's own session started
with; ``NameID`` is ``@NOT_USED@`` as Apereo CAS sends it (the service
finds its session by the ticket). Its answer is read as a back-channel
logout's (:mod:`idp.logout.http`): 2xx delivered, 5xx and network failures
retried, anything else failed for good.
"""

from __future__ import annotations

import datetime as dt
import uuid
from xml.sax.saxutils import escape

from ..logout.http import Outcome, post_form
from .tickets import TICKET_PREFIX

__all__ = ["logout_request", "post_logout_request", "is_cas_session_index", "request_id_for"]


def is_cas_session_index(value: str | None) -> bool:
    """Whether a delivery row's ``sub`` is a CAS ``SessionIndex`` (a service ticket)."""
    return isinstance(value, str) and value.startswith(TICKET_PREFIX)


def logout_request(ticket: str, *, request_id: str, issued: dt.datetime) -> str:
    """The SAML 2.0 ``LogoutRequest`` of CAS 3.0 §2.3.3 for the service session of ``ticket``."""
    instant = issued.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{escape(request_id)}" Version="2.0" IssueInstant="{instant}">'
        "<saml:NameID>@NOT_USED@</saml:NameID>"
        f"<samlp:SessionIndex>{escape(ticket)}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )


def request_id_for(jti: str) -> str:
    """A SAML ID (an NCName: it may not start with a digit) stable across retries of one delivery."""
    return "LR-" + str(uuid.UUID(jti)) if _is_uuid(jti) else "LR-" + jti


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def post_logout_request(uri: str, xml: str, *, timeout: float, allow_loopback: bool = False) -> Outcome:
    """POST ``logoutRequest=xml`` to ``uri`` once, within ``timeout`` seconds, and classify the answer."""
    return post_form(
        uri,
        {"logoutRequest": xml},
        user_agent="Yiwang-idp CAS single logout",
        timeout=timeout,
        allow_loopback=allow_loopback,
    )
