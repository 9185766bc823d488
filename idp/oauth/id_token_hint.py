"""``id_token_hint``: an ID token *we* issued, passed back by a relying party.

Two readers: RP-initiated logout (:mod:`idp.logout.rp`, which session to end)
and the authorization endpoint (:mod:`idp.signin`, OIDC Core §3.1.2.1: a
silent answer only for the End-User the hint names). The signature is
checked against our own JWKS (ES256/RS256 only, so ``alg: none`` and HMAC
tricks fail) and ``iss`` must be ours; an expired token is accepted, as both
specifications allow (a hint names a past sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass

from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

__all__ = ["BadHint", "HintClaims", "MAX_HINT", "verify_id_token_hint"]

_ALGORITHMS = ["ES256", "RS256"]
_NOT_ID_TOKEN_TYPES = {"at+jwt", "logout+jwt"}
MAX_HINT = 4096
"""Longer hints are refused before any parsing."""


class BadHint(ValueError):
    """Not an ID token this server issued; the message says why (in English, for logs and errors)."""


@dataclass(frozen=True)
class HintClaims:
    """What a verified ``id_token_hint`` tells us."""

    client_id: str
    sid: str | None
    sub: str | None


def verify_id_token_hint(token: str, *, issuer: str, keys: KeySet) -> HintClaims:
    """Check that ``token`` is an ID token we signed (expiry not enforced); :class:`BadHint` if not."""
    if not token or len(token) > MAX_HINT or token.count(".") != 2:
        raise BadHint("id_token_hint is not a signed JWT")
    try:
        header = extract_compact(token.encode()).protected
        if header.get("alg") not in _ALGORITHMS:
            raise BadHint("id_token_hint is not signed with our algorithms")
        if str(header.get("typ", "JWT")).lower() in _NOT_ID_TOKEN_TYPES:
            raise BadHint("id_token_hint is not an ID token")
        decoded = jose_jwt.decode(token, keys, algorithms=_ALGORITHMS)
    except BadHint:
        raise
    except (JoseError, ValueError, TypeError, KeyError):
        raise BadHint("id_token_hint does not verify with our keys") from None
    claims = decoded.claims
    if claims.get("iss") != issuer:
        raise BadHint("id_token_hint was issued by someone else")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or [])
    client_id = claims.get("azp") if len(audiences) != 1 else audiences[0]
    if not isinstance(client_id, str) or not client_id:
        raise BadHint("id_token_hint has no audience")
    sid = claims.get("sid")
    sub = claims.get("sub")
    return HintClaims(
        client_id=client_id,
        sid=sid if isinstance(sid, str) else None,
        sub=sub if isinstance(sub, str) else None,
    )
