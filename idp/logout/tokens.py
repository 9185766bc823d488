"""The back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4).

A logout token is a JWT signed with the idp's ID-token key set
(``idp-token``), typed ``logout+jwt`` (§2.4, as recommended since the 2022
errata, so that it can never be mistaken for an ID token), carrying:

``iss``, ``aud`` (the client id), ``iat``, ``exp``, ``jti``, ``events`` with
the member ``http://schemas.openid.net/event/backchannel-logout`` set to
``{}``, ``sid`` and ``sub`` — and never a ``nonce`` (§2.4: its presence is
what tells an RP it is not an ID token).

Each delivery keeps one ``jti`` across retries, so a relying party that
records seen ``jti`` values (§2.6 step 8, replay protection) processes a
retried delivery once; only ``iat``/``exp`` change when a retry re-signs it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from keys.backend import Signer
from keys.jws import encode_jws

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LOGOUT_TOKEN_TYPE",
    "LOGOUT_TOKEN_SECONDS",
    "LogoutTokenSpec",
    "logout_token_claims",
    "encode_logout_token",
]

logger = logging.getLogger(__name__)

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, not a secret
LOGOUT_TOKEN_SECONDS = 120
"""§2.4 recommends a short lifetime: two minutes is enough for one POST."""


@dataclass(frozen=True)
class LogoutTokenSpec:
    """What one delivery tells one relying party."""

    issuer: str
    """The idp's issuer identifier (``iss``)."""
    client_id: str
    """The relying party (``aud``)."""
    jti: str
    """Stable per delivery: the same across retries."""
    sid: str | None
    """The ended session (``sid``); §2.4 requires ``sid``, ``sub`` or both — we send both."""
    sub: str | None
    """The subject as this client knows it (its pairwise ``sub``)."""

    def __post_init__(self) -> None:
        if not (self.sid or self.sub):
            raise ValueError("a logout token needs sid or sub (Back-Channel Logout 1.0 §2.4)")


def logout_token_claims(spec: LogoutTokenSpec, *, now: float | None = None) -> dict[str, Any]:
    """The claims of §2.4 for ``spec``, issued at ``now``."""
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": spec.issuer,
        "aud": spec.client_id,
        "iat": iat,
        "exp": iat + LOGOUT_TOKEN_SECONDS,
        "jti": spec.jti,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if spec.sub:
        claims["sub"] = spec.sub
    if spec.sid:
        claims["sid"] = spec.sid
    return claims


def encode_logout_token(signer: Signer, spec: LogoutTokenSpec, *, now: float | None = None) -> str:
    """Sign the logout token for ``spec`` with ``signer`` (the active ``idp-token`` key)."""
    return encode_jws(signer, logout_token_claims(spec, now=now), typ=LOGOUT_TOKEN_TYPE)
