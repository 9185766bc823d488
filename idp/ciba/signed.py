"""Signed authentication requests (CIBA Core 1.0 §7.1.1): a JWT ``request`` from the client.

The JWT is signed with one of the client's registered keys (``Client.jwks``)
with an algorithm from :data:`ALGORITHMS` (and, where the client registered
``backchannel_authentication_request_signing_alg``, that one only). §7.1.1:
it "MUST contain all the authentication request parameters" and ``aud`` (the
issuer), ``iss`` (the client), ``exp``, ``iat``, ``nbf`` and ``jti``; here
``exp - nbf`` may not exceed :data:`MAX_LIFETIME` (as FAPI-CIBA §5.2.2 asks)
and each ``jti`` is accepted once (a Redis cache until ``exp``), so an expired
or replayed request is ``invalid_request``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

__all__ = ["ALGORITHMS", "MAX_LIFETIME", "LEEWAY", "verify_request_object", "signing_required"]

ALGORITHMS = ("ES256", "PS256", "EdDSA")
"""``backchannel_authentication_request_signing_alg_values_supported`` (asymmetric only; FAPI's set)."""
MAX_LIFETIME = 3600
LEEWAY = 30
ATTRIBUTE = "backchannel_authentication_request_signing_alg"


def signing_required(client: Any) -> bool:
    """A client that registered a signing algorithm, and every FAPI client, must sign its requests."""
    from ..oauth import fapi

    return bool(client.attribute(ATTRIBUTE)) or fapi.is_fapi2(client)


def _date(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def verify_request_object(token: str, client: Any, *, issuer: str, now: int, redis: Any, prefix: str) -> dict[str, Any]:
    """The request's parameters from a valid, fresh, first-seen signed request; else ``invalid_request``."""
    if not isinstance(token, str) or len(token) > 16_384 or token.count(".") != 2:
        raise InvalidRequestError("the request object is not a signed JWT")
    if not client.jwks:
        raise InvalidRequestError("the client registered no keys to verify its signed requests with")
    wanted = client.attribute(ATTRIBUTE)
    algorithms = [wanted] if wanted in ALGORITHMS else list(ALGORITHMS)
    try:
        decoded = jose_jwt.decode(token, KeySet.import_key_set(client.jwks), algorithms=algorithms)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidRequestError("the request object's signature or algorithm is not accepted") from None
    claims = dict(decoded.claims)
    for name in ("exp", "iat", "nbf"):
        if not _date(claims.get(name)):
            raise InvalidRequestError(f"the request object needs a numeric {name}")
    if claims.get("iss") != client.client_id:
        raise InvalidRequestError("the request object's iss must be the client id")
    aud = claims.get("aud")
    if not (aud == issuer or (isinstance(aud, list) and issuer in aud)):
        raise InvalidRequestError("the request object's aud must be the issuer")
    if claims["exp"] <= now - LEEWAY:
        raise InvalidRequestError("the request object has expired")
    if claims["nbf"] > now + LEEWAY or claims["iat"] > now + LEEWAY:
        raise InvalidRequestError("the request object is not valid yet")
    if claims["exp"] - claims["nbf"] > MAX_LIFETIME:
        raise InvalidRequestError(f"the request object may live at most {MAX_LIFETIME} seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise InvalidRequestError("the request object needs a jti")
    key = f"{prefix}ciba:jti:{client.client_id}:{hashlib.sha256(jti.encode()).hexdigest()}"
    ttl = max(60, int(claims["exp"]) - now + LEEWAY + 60)
    if not redis.set(key, "1", nx=True, ex=ttl):
        raise InvalidRequestError("the request object was already used")
    for name in ("iss", "aud", "exp", "iat", "nbf", "jti"):
        claims.pop(name, None)
    return claims
