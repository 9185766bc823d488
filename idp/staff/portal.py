"""Staff portals: relying parties whose sign-in is the staff sign-in, never a citizen's (issue 13 §1).

A client registered with the attribute ``audience: "staff"`` (the counter
system, the hotline system) has its ``/authorize`` answered by the staff
sign-in (:mod:`idp.staff.signin`, pages in :mod:`idp.web.views_staff`): a
citizen's SSO session is never looked at and never used for it, and a
staff session never signs anyone in to a citizen's portal.

What such a client may register is checked here (:func:`registration_attributes`,
called by :func:`idp.clients.registration.build_client`): the authorization code
grant (and ``client_credentials`` or CIBA besides, for its back end), no refresh
tokens (a staff sign-in lasts as long as the staff session, :data:`idp.staff.signin.SESSION_SECONDS`),
no device grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInput

__all__ = ["AUDIENCE_ATTRIBUTE", "STAFF_AUDIENCE", "is_staff_portal", "registration_attributes", "LOGIN_PATH"]

AUDIENCE_ATTRIBUTE = "audience"
STAFF_AUDIENCE = "staff"
LOGIN_PATH = "/staff/login"
"""Where a staff portal's authorization request is answered (:mod:`idp.web.views_staff`)."""

_REFUSED_GRANTS = ("refresh_token", "urn:ietf:params:oauth:grant-type:device_code")


def is_staff_portal(client: Any) -> bool:
    """True for a client registered with ``audience: "staff"``."""
    attributes = getattr(client, "attributes", None) or {}
    return attributes.get(AUDIENCE_ATTRIBUTE) == STAFF_AUDIENCE


def registration_attributes(audience: str | None, grant_types: Sequence[str]) -> dict[str, Any]:
    """The attributes ``--audience`` registers, or ``InvalidInput``."""
    if audience in (None, ""):
        return {}
    if audience != STAFF_AUDIENCE:
        raise InvalidInput("--audience: the only audience is 'staff' (a counter or hotline system)")
    if "authorization_code" not in grant_types:
        raise InvalidInput("a staff portal signs its staff in: it needs the authorization_code grant")
    refused = [g for g in grant_types if g in _REFUSED_GRANTS]
    if refused:
        raise InvalidInput(f"a staff portal may not use {', '.join(refused)} "
                           "(a staff sign-in lasts as long as the staff session)")
    return {AUDIENCE_ATTRIBUTE: STAFF_AUDIENCE}
