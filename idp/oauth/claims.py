"""Scopes and the claims they release (OIDC Core §5.4), and the ID-number rule.

docs/design.md, identity rules: the resident ID number is released only under the
``id_number`` scope, only to a client registered ``may_receive_id_number``,
only with the citizen's consent, and only by userinfo — never in an ID token
(issue 11 §4). Which scopes a grant gets is decided by
:func:`idp.oauth.scopes.decide`; :func:`user_claims` checks the registration
again when it builds claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SCOPES_SUPPORTED",
    "SCOPE_CLAIMS",
    "CLAIMS_SUPPORTED",
    "ID_NUMBER_SCOPE",
    "CitizenClaims",
    "releasable_scopes",
    "user_claims",
]

ID_NUMBER_SCOPE = "id_number"

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name",),
    "phone": ("phone_number", "phone_number_verified"),
    "email": ("email", "email_verified"),
    "offline_access": (),
    ID_NUMBER_SCOPE: ("id_number",),
}
SCOPES_SUPPORTED = tuple(SCOPE_CLAIMS)
CLAIMS_SUPPORTED = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash",
    "name", "phone_number", "phone_number_verified", "email", "email_verified", "id_number",
    "preferred_username", "staff_kind", "office",  # a staff portal's ID token (idp.staff.signin.staff_claims)
)


@dataclass(frozen=True)
class CitizenClaims:
    """What the claims builder may read about a citizen."""

    public_id: str
    name: str
    phone: str | None = None
    email: str | None = None
    id_number: str | None = None

    def __repr__(self) -> str:  # the ID number stays out of logs
        return f"CitizenClaims(public_id={self.public_id!r})"


def releasable_scopes(
    requested: Iterable[str], *, may_receive_id_number: bool, consented: Iterable[str] | None
) -> list[str]:
    """The requested scopes that may actually be granted.

    ``id_number`` survives only for a client registered for it and, when
    ``consented`` is given, only if the citizen consented to it. Unknown
    scopes are dropped (the client's own allow-list is applied before this).
    """
    out = []
    consent = set(consented) if consented is not None else None
    for s in requested:
        if s not in SCOPE_CLAIMS or s in out:
            continue
        if s == ID_NUMBER_SCOPE and (
            not may_receive_id_number or (consent is not None and s not in consent)
        ):
            continue
        out.append(s)
    return out


def user_claims(citizen: CitizenClaims, scopes: Iterable[str], *, may_receive_id_number: bool) -> dict[str, object]:
    """Claims for the userinfo response (and, with ``may_receive_id_number=False``, an ID token), without ``sub``.

    ``may_receive_id_number`` is checked again here so that a token whose
    scope somehow names ``id_number`` never leaks it to a client not
    registered for it.
    """
    scope = set(scopes)
    claims: dict[str, object] = {}
    if "profile" in scope:
        claims["name"] = citizen.name
    if "phone" in scope and citizen.phone:
        claims["phone_number"] = citizen.phone
        claims["phone_number_verified"] = False
    if "email" in scope and citizen.email:
        claims["email"] = citizen.email
        claims["email_verified"] = False
    if ID_NUMBER_SCOPE in scope and may_receive_id_number and citizen.id_number:
        claims["id_number"] = citizen.id_number
    return claims
