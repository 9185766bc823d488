"""The wallet's server-side sessions and the idp's back-channel logout tokens.

The wallet cookie carries only a random opaque value; what it stands for
(the holder's blind index, the display name, the idp's ``sid`` and ``sub``,
and the ID token for ``id_token_hint`` only when it carries no ID number)
lives in Redis under the SHA-256 of that value, so a Redis dump yields no
usable cookie and no ID number. Two index sets (per
``sid``, per ``sub``) let a logout token end every wallet session of an idp
session (OpenID Connect Back-Channel Logout 1.0 §2.7), and deleting the
record on sign-out makes a copied cookie worthless at once.

Redis is the one certstore shares with the idp deployment (``YIWANG_REDIS_URL``);
without it a process-wide ``fakeredis`` stands in, as for the idp: enough for
one ``certstore serve`` process, not shared between processes.

:class:`LogoutTokenValidator` checks a logout token as §2.6 asks, reusing the
access-token validator's JWKS cache (same key set source, same allow-list of
algorithms, no ``none``, no HMAC).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from .errors import CertstoreError, Unauthorized
from .settings import CertstoreSettings
from .tokens import TokenValidator

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "InvalidLogoutToken",
    "LogoutClaims",
    "LogoutTokenValidator",
    "WalletSessions",
    "connect_wallet_redis",
]

logger = logging.getLogger(__name__)

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_LOGOUT_TYP = ("logout+jwt", "application/logout+jwt")
_MAX_TOKEN = 8192

_lock = threading.Lock()
_embedded: Any = None


def connect_wallet_redis(settings: CertstoreSettings) -> redis.Redis:
    """The configured Redis, or the process-wide in-memory stand-in."""
    global _embedded
    url = settings.common.redis_url
    if url:
        from keys.redis_urls import connect

        return connect(url, timeout=5, health_check_interval=30)  # one server, Sentinel or Cluster
    import fakeredis

    with _lock:
        if _embedded is None:
            _embedded = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_embedded)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class WalletSessions:
    """Wallet sessions keyed by ``sha256(cookie value)``, indexed by the idp's ``sid`` and ``sub``."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl: int = 3600) -> None:
        self.client = client
        self.prefix = f"{prefix}certstore:wallet:"
        self.ttl = ttl

    def _k(self, kind: str, value: str) -> str:
        return f"{self.prefix}{kind}:{value}"

    def create(self, data: Mapping[str, Any], *, sid: str | None, sub: str | None) -> str:
        """Store ``data`` and return the opaque cookie value (shown once, never stored)."""
        token = secrets.token_urlsafe(32)
        key = _digest(token)
        record = dict(data, sid=sid or "", sub=sub or "")
        # The indexes (another Cluster slot each) first, then the session: a
        # session is never missing from the index its back-channel logout reads.
        pipe = self.client.pipeline(transaction=False)
        for kind, value in (("sid", sid), ("sub", sub)):
            if value:
                idx = self._k(kind, _digest(value))
                pipe.sadd(idx, key)
                pipe.expire(idx, self.ttl)
        pipe.execute()
        self.client.set(self._k("s", key), json.dumps(record, ensure_ascii=False), ex=self.ttl)
        return token

    def get(self, token: str | None) -> dict[str, Any] | None:
        if not token or len(token) > 128:
            return None
        raw = self.client.get(self._k("s", _digest(token)))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    def delete(self, token: str | None) -> None:
        if token and len(token) <= 128:
            self.client.delete(self._k("s", _digest(token)))

    def end(self, *, sid: str | None, sub: str | None) -> int:
        """End every session of the idp session ``sid`` (or, without ``sid``, of ``sub``)."""
        kind, value = ("sid", sid) if sid else ("sub", sub)
        if not value:
            return 0
        idx = self._k(kind, _digest(value))
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in self.client.smembers(idx)]
        ended = 0
        for key in keys:
            raw = self.client.get(self._k("s", key))
            if raw is None:
                continue
            record = json.loads(raw)
            # §2.7: with both sid and sub, the session must match both.
            if sid and sub and record.get("sub") and record.get("sub") != sub:
                continue
            ended += int(self.client.delete(self._k("s", key)))
        self.client.delete(idx)
        return ended

    def first_use_of_jti(self, jti: str, ttl: int) -> bool:
        """Record a logout token's ``jti``; False when it was seen before (§2.6 step 8)."""
        return bool(self.client.set(self._k("jti", _digest(jti)), b"1", nx=True, ex=max(ttl, 60)))


class InvalidLogoutToken(CertstoreError):
    """The logout token does not pass §2.6 validation (HTTP 400, ``invalid_request``)."""

    status = 400
    code = "invalid_request"


@dataclass(frozen=True)
class LogoutClaims:
    sid: str | None
    sub: str | None
    jti: str
    exp: int


class LogoutTokenValidator:
    """OpenID Connect Back-Channel Logout 1.0 §2.6, steps 1–7 (step 8, the replay cache, is the caller's)."""

    def __init__(self, keys: TokenValidator, *, client_id: str, max_age: int = 600) -> None:
        self.keys = keys
        self.client_id = client_id
        self.max_age = max_age

    def validate(self, token: str) -> LogoutClaims:
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
            raise InvalidLogoutToken("the logout token is malformed")
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise InvalidLogoutToken("the logout token is malformed") from None
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        # §2.6 step 2 and RFC 8725 §3.1: only the idp's asymmetric algorithms, never "none".
        if alg not in self.keys.algorithms:
            raise InvalidLogoutToken("the logout token's signature algorithm is not accepted")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _LOGOUT_TYP):
            raise InvalidLogoutToken("the token is not a logout token (typ)")
        if not isinstance(kid, str) or not kid:
            raise InvalidLogoutToken("the logout token has no key id")
        try:
            keyset = self.keys._keyset_for(kid)
        except Unauthorized:
            raise InvalidLogoutToken("the logout token is signed by a key the identity provider does not publish") from None
        try:
            claims = jwt.decode(token, keyset, algorithms=self.keys.algorithms).claims
        except JoseError:
            raise InvalidLogoutToken("the logout token's signature does not verify") from None
        now = int(self.keys.clock())
        registry = jwt.JWTClaimsRegistry(
            now=lambda: now,
            leeway=self.keys.leeway,
            iss={"essential": True, "value": self.keys.issuer},  # §2.6 step 3
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError:
            raise InvalidLogoutToken("the logout token is not for this client or has expired") from None
        iat = claims.get("iat")
        if not isinstance(iat, int) or iat > now + self.keys.leeway or iat < now - self.max_age:
            raise InvalidLogoutToken("the logout token's iat is out of range")
        events = claims.get("events")  # §2.6 step 5
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise InvalidLogoutToken("the logout token has no back-channel logout event")
        if "nonce" in claims:  # §2.6 step 7
            raise InvalidLogoutToken("a logout token never carries a nonce")
        sid, sub = claims.get("sid"), claims.get("sub")
        sid = sid if isinstance(sid, str) and sid else None
        sub = sub if isinstance(sub, str) and sub else None
        if sid is None and sub is None:  # §2.6 step 6
            raise InvalidLogoutToken("the logout token names neither sid nor sub")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidLogoutToken("the logout token has no jti")
        exp = claims.get("exp")
        return LogoutClaims(sid=sid, sub=sub, jti=jti, exp=exp if isinstance(exp, int) else now + self.max_age)
