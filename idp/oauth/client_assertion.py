"""``private_key_jwt`` client authentication (OIDC Core §9, RFC 7523 §2.2).

Moved out of :mod:`idp.oauth.grants` (which re-exports it) to keep that module
under the size limit; registered by :func:`idp.oauth.server.configure_server`.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet as JoseKeySet

__all__ = ["PrivateKeyJWTAuth"]


class PrivateKeyJWTAuth(JWTBearerClientAssertion):
    """``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2) with a jti replay cache in Redis.

    An assertion is a short-lived, single-use credential: ``exp`` is required
    and at most :attr:`MAX_LIFETIME` seconds ahead (plus the clock leeway), an
    ``iat`` may not lie in the future, and ``exp - iat`` may not exceed the
    cap either. Its jti is remembered until the assertion has expired, so a
    replay is always caught (an uncapped ``exp`` once outlived the 24 h cache).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"
    MAX_LIFETIME = 300
    """Seconds an assertion may live (RFC 7523 §3 leaves the bound to the server)."""
    LEEWAY = 30
    """Clock skew allowed on ``exp``, ``nbf`` and ``iat``."""

    def __init__(self, provider: Any, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=self.LEEWAY)
        self._provider = provider
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        return self._audiences

    def verify_claims(self, claims: Any) -> None:
        from authlib.oauth2.rfc6749 import InvalidClientError

        now = self._provider.tokens.now()
        exp, iat = claims.get("exp"), claims.get("iat")
        too_long = f"the client assertion may live at most {self.MAX_LIFETIME} seconds"
        # RFC 7523 §3 items 4 and 6: exp is required; how far ahead is the server's to bound.
        if not self._numeric_date(exp):
            raise InvalidClientError(description="the client assertion needs a numeric exp")
        if exp > now + self.MAX_LIFETIME + self.LEEWAY:
            raise InvalidClientError(description=too_long)
        if iat is not None:
            if not self._numeric_date(iat) or iat > now + self.LEEWAY:
                raise InvalidClientError(description="the client assertion's iat is in the future")
            if exp - iat > self.MAX_LIFETIME + self.LEEWAY:
                raise InvalidClientError(description=too_long)
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        if not isinstance(jti, str) or len(jti) > 200:
            return False
        # Remembered for as long as the assertion is valid (exp is capped above).
        ttl = max(60, int(claims["exp"]) - self._provider.tokens.now() + self.LEEWAY + 60)
        key = f"{self._provider.prefix}jti:{claims['iss']}:{jti}"
        return bool(self._provider.redis.set(key, "1", nx=True, ex=ttl))

    @staticmethod
    def _numeric_date(value: Any) -> bool:
        # RFC 7519 §2 NumericDate: a finite number (Python's bool is an int, and not a date).
        import math

        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    def resolve_client_public_key(self, client: Any) -> Any:
        if not client.jwks:
            from authlib.oauth2.rfc6749 import InvalidClientError

            raise InvalidClientError(description="the client registered no keys")
        return JoseKeySet.import_key_set(client.jwks)

    def __call__(self, query_client: Any, request: Any) -> Any:
        try:
            return super().__call__(query_client, request)
        except OAuth2Error:
            raise
        except Exception:  # malformed JWT parts, bad JWKS
            from authlib.oauth2.rfc6749 import InvalidClientError

            raise InvalidClientError(description="invalid client assertion", status_code=401) from None
