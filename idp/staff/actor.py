"""Who acts for the citizen: the clerk or agent behind a CIBA request (RFC 8693 §4.1 ``act``).

A counter or hotline system registered with ``acting`` sends, with its CIBA
request, an ``actor_token``: the ID token this idp gave that same client when
the clerk or agent signed in through the staff sign-in (:mod:`idp.staff.signin`),
or an access token from that sign-in. :func:`resolve_actor` accepts it only if

- it is a compact JWS signed by one of this idp's token keys (``idp-token`` ES256
  or ``idp-token-rs256``; the algorithm allow-list is ES256 and RS256, never ``none``);
- ``iss`` is this idp; it was issued to ``client_id`` (an ID token's ``aud`` and
  ``azp``, an access token's ``client_id``), it has not expired at ``now``, and an
  access token has not been revoked;
- its ``sub`` is a staff subject (``staff:<public id>``), whose account still
  exists and is not disabled.

Anything else is :class:`ActorTokenError` (the CIBA endpoint answers
``invalid_request``). The :class:`Actor` is read from the account, not the
token, so a renamed office shows its current name.

The process's resolver is installed by :class:`idp.container.Container`
(:func:`install`); ``resolve_actor(…, resolver=…)`` takes another (tests with
two idps in one process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jws import extract_compact

from .accounts import StaffService
from .models import SUBJECT_PREFIX

__all__ = ["Actor", "ActorTokenError", "ActorResolver", "resolve_actor", "install", "MAX_ACTOR_TOKEN"]

logger = logging.getLogger(__name__)

MAX_ACTOR_TOKEN = 8192
"""Bytes; an ID token of ours is well under 2 KiB."""

_ALGORITHMS = ["ES256", "RS256"]


class ActorTokenError(ValueError):
    """The actor token is not a live token of this idp for a signed-in, active staff member of this client."""


@dataclass(frozen=True)
class Actor:
    """A clerk (service counter) or agent (hotline) acting for a citizen."""

    sub: str
    """``staff:<public id>``: never a citizen's subject."""
    name: str
    """The display name."""
    kind: str
    """``clerk`` or ``agent``."""
    office: str
    """The counter's or hotline's name."""
    iss: str
    """The idp that authenticated the actor (this one)."""

    def act_claim(self) -> dict[str, Any]:
        """RFC 8693 §4.1: ``{"sub", "iss"}``, plus what lets a relying party show "counter X, clerk Y"."""
        return {"sub": self.sub, "iss": self.iss, "name": self.name, "staff_kind": self.kind,
                "office": self.office}


class ActorResolver:
    """Checks actor tokens against this idp's keys and its staff accounts."""

    def __init__(self, *, tokens: Any, staff: StaffService, issuer: str) -> None:
        """``tokens``: the process's :class:`idp.oauth.tokens.TokenService` (keys, revocation markers)."""
        self._tokens = tokens
        self._staff = staff
        self.issuer = issuer

    def resolve(self, actor_token: str, *, client_id: str, now: int) -> Actor:
        if not isinstance(actor_token, str) or not actor_token or len(actor_token) > MAX_ACTOR_TOKEN \
                or actor_token.count(".") != 2:
            raise ActorTokenError("actor_token is not a compact JWT")
        try:
            header = extract_compact(actor_token.encode()).protected
            keys = JoseKeySet.import_key_set(self._tokens.jwks())
            claims = dict(jose_jwt.decode(actor_token, keys, algorithms=_ALGORITHMS).claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise ActorTokenError("actor_token is not signed by this server") from None
        if claims.get("iss") != self.issuer:
            raise ActorTokenError("actor_token was issued by another server")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise ActorTokenError("actor_token has expired")
        if header.get("typ") == "at+jwt":  # an access token (RFC 9068) from the staff sign-in
            if claims.get("client_id") != client_id:
                raise ActorTokenError("actor_token was issued to another client")
            jti = claims.get("jti")
            if not isinstance(jti, str) or self._tokens.is_revoked(jti):
                raise ActorTokenError("actor_token has been revoked")
        else:  # an ID token (OIDC Core §2): for this client, and only this one as authorized party
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if client_id not in auds or claims.get("azp", client_id) != client_id:
                raise ActorTokenError("actor_token was issued to another client")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(SUBJECT_PREFIX):
            raise ActorTokenError("actor_token is not a staff member's")
        staff = self._staff.active_by_sub(sub)
        if staff is None:
            raise ActorTokenError("the staff account is disabled or gone")
        return Actor(sub=staff.sub, name=staff.display_name, kind=staff.kind, office=staff.office, iss=self.issuer)


_installed: ActorResolver | None = None


def install(resolver: ActorResolver | None) -> None:
    """Make ``resolver`` the process's (the container does it when it builds the provider)."""
    global _installed
    _installed = resolver


def resolve_actor(actor_token: str, *, client_id: str, now: int, resolver: ActorResolver | None = None) -> Actor:
    """The :class:`Actor` behind ``actor_token`` for ``client_id`` at ``now``, or :class:`ActorTokenError`."""
    chosen = resolver or _installed
    if chosen is None:
        raise ActorTokenError("no staff accounts in this process")
    return chosen.resolve(actor_token, client_id=client_id, now=now)
