"""Issuing, verifying and revoking tokens.

* Access tokens are JWTs per RFC 9068 (header ``typ: at+jwt``, §2.1; claims
  ``iss``, ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``,
  ``scope``, §2.2), signed by the active ``idp-token`` key with its ``kid``
  (``keys.jws.encode_jws``), so rotation works and resource servers verify
  them offline against the JWKS.
* ID tokens (OIDC Core §2) are signed ES256 by default, RS256 for a client
  that registered ``id_token_signed_response_alg=RS256``.
* Refresh tokens are opaque random strings; only their SHA-256 is stored
  (as the TokenRecord ``jti``). They rotate on every use, and presenting a
  rotated one again revokes the whole family (OAuth 2.0 Security BCP §4.14.2),
  except its own client's one retry within a grace window after the rotation
  (a response lost to a crash; issue 20 §1), which supersedes the undelivered child.
* Revocation state that the hot paths (introspection, userinfo) must see is
  a Redis marker per access-token ``jti`` with the token's remaining
  lifetime, so checking it costs one round trip and no SQL; the SQL
  TokenRecord is the durable record that revocation by session or family
  searches.

Token values and codes never reach a log; ``jti``s and client ids do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JoseKeySet

from keys.jws import encode_jws

from .snapshots import SnapshotWriter

__all__ = [
    "AccessTokenClaims",
    "TokenService",
    "TokenStore",
    "at_hash",
    "ACCESS_TOKEN_TYP",
    "ES_KEYSET",
    "RS_KEYSET",
]

logger = logging.getLogger(__name__)

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a JOSE typ
ES_KEYSET = "idp-token"
RS_KEYSET = "idp-token-rs256"


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 (ES256 and RS256 both use it), base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def refresh_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessTokenClaims:
    """A verified access token."""

    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def client_id(self) -> str:
        return str(self.claims.get("client_id", ""))

    @property
    def scope(self) -> str:
        return str(self.claims.get("scope", ""))

    @property
    def exp(self) -> int:
        return int(self.claims["exp"])

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def sid(self) -> str | None:
        return self.claims.get("sid")

    @property
    def cnf(self) -> dict[str, Any] | None:
        """RFC 7800 confirmation (a sender-constrained token), else ``None``."""
        cnf = self.claims.get("cnf")
        return cnf if isinstance(cnf, dict) else None


class TokenStore:
    """Durable token records (SQL) — the interface :class:`TokenService` needs.

    The SQL implementation lives in :mod:`idp.oauth.records`; tests may pass
    another. Every method takes and returns plain values.
    """

    def add(self, rows: Sequence[dict[str, Any]], *, also: Any = None) -> bool:  # pragma: no cover - interface
        """Record one grant's tokens; False (nothing recorded) if their citizen is gone or disabled."""
        raise NotImplementedError

    def get(self, jti: str) -> dict[str, Any] | None:  # pragma: no cover
        raise NotImplementedError

    @contextlib.contextmanager
    def one_connection(self) -> Iterator[None]:
        """A block whose statements may share one database connection (one token request)."""
        yield

    def take_refresh(self, jti: str, client_id: str, now: int, *, grace_seconds: int = 0,
                     jkt: str | None = None) -> tuple[str, dict[str, Any] | None]:  # pragma: no cover
        """Consume a live refresh token of ``client_id`` (or accept its one retry within
        ``grace_seconds``); ``(status, row)``, status ``ok``, ``retry``, ``reused``,
        ``revoked``, ``expired``, ``unknown`` or ``wrong_key`` (bound to a DPoP key other
        than ``jkt``: left untouched)."""
        raise NotImplementedError

    def release_refresh(self, jti: str, status: str, now: int, *,
                        drop: Iterable[str] = ()) -> bool:  # pragma: no cover
        """Undo a take (``ok``/``retry`` at ``now``) after a failure; revoke ``drop``."""
        raise NotImplementedError

    def supersede_children(self, parent_jti: str, now: int) -> list[str]:  # pragma: no cover
        """Revoke (as consumed) the refresh tokens rotated from ``parent_jti``; their jtis."""
        raise NotImplementedError

    def consume_refresh(self, jti: str, now: int) -> str:  # pragma: no cover
        """Mark a refresh token consumed; ``ok``, ``reused``, ``revoked``, ``expired`` or ``unknown``."""
        raise NotImplementedError

    def revoke(self, *, jtis: Iterable[str] = (), family_id: str | None = None,
               sid: str | None = None, citizen_id: Any = None, code_hash: str | None = None,
               include_offline: bool = True, now: int) -> list[tuple[str, str, int]]:  # pragma: no cover
        """Revoke matching live records; returns ``(jti, kind, expires_at)`` of each."""
        raise NotImplementedError


class TokenService:
    keys_reload_seconds: float = 60.0
    """How long a verification key set is used before the published keys are read again."""
    verified_cache_max: int = 8192
    """Most verified access tokens remembered (all are forgotten when the bound is hit)."""

    def __init__(
        self,
        *,
        keyring: Any,
        redis: Any,
        prefix: str,
        store: TokenStore,
        issuer: str,
        access_token_seconds: int,
        client_credentials_seconds: int,
        id_token_seconds: int,
        refresh_token_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keyring = keyring
        self._r = redis
        self._p = f"{prefix}tok:"
        self.store = store
        self.issuer = issuer
        self.access_token_seconds = access_token_seconds
        self.client_credentials_seconds = client_credentials_seconds
        self.id_token_seconds = id_token_seconds
        self.refresh_token_seconds = refresh_token_seconds
        self._clock = clock
        self._es = keyring.keyset(ES_KEYSET)
        self._rs: Any = None
        self._verify_keys: JoseKeySet | None = None
        self._verify_kids: frozenset[str] = frozenset()
        self._verify_loaded = 0.0
        self._verify_jwks: Any = None
        self._lock = threading.Lock()
        self.snapshots = SnapshotWriter(redis)
        """Userinfo snapshots of grants that write nothing else to Redis (the refresh grant)."""
        self._verified: dict[str, dict[str, Any]] = {}
        """Token string → claims of a signature already checked against the current key set
        (issue 16: introspection and userinfo see the same token again and again).
        Emptied whenever the published keys change; bounded by :attr:`verified_cache_max`."""

    # signing ----------------------------------------------------------
    def _signer(self, alg: str) -> Any:
        if alg == "RS256":
            if self._rs is None:
                self._rs = self._keyring.keyset(RS_KEYSET, algorithm="RS256")
            return self._rs.active()
        return self._es.active()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Public keys of both key sets, as served at /jwks.json."""
        keys = list(self._es.jwks()["keys"])
        rs = self._keyring.keyset(RS_KEYSET, algorithm="RS256")
        self._rs = rs
        keys.extend(rs.jwks()["keys"])
        return {"keys": keys}

    def issue_access_token(
        self,
        *,
        client_id: str,
        scope: str,
        audience: str | list[str],
        sub: str,
        sid: str | None = None,
        auth_time: int | None = None,
        acr: str | None = None,
        expires_in: int | None = None,
        cnf: dict[str, str] | None = None,
        act: dict[str, Any] | None = None,
    ) -> tuple[str, str, int]:
        """Sign an RFC 9068 access token; returns ``(token, jti, exp)``.

        ``act``: RFC 8693 §4.1, who acts for the subject (a CIBA grant started by a clerk; idp.ciba).

        ``cnf``: the RFC 7800 confirmation of a sender-constrained token
        (``{"jkt": …}`` for DPoP, ``{"x5t#S256": …}`` for mTLS; :mod:`.binding`).
        """
        now = int(self._clock())
        exp = now + (expires_in or self.access_token_seconds)
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "jti": jti,
            "iat": now,
            "exp": exp,
        }
        if sid:
            claims["sid"] = sid
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if acr:
            claims["acr"] = acr
        if cnf:
            claims["cnf"] = dict(cnf)
        if act:
            claims["act"] = dict(act)
        return encode_jws(self._signer("ES256"), claims, typ=ACCESS_TOKEN_TYP), jti, exp

    def encode_id_token(self, claims: dict[str, Any], *, alg: str = "ES256") -> str:
        now = int(self._clock())
        full = {"iss": self.issuer, "iat": now, "exp": now + self.id_token_seconds, **claims}
        return encode_jws(self._signer(alg), full, typ="JWT")

    def new_refresh_token(self) -> tuple[str, str]:
        """``(token, jti)`` where the jti is the token's SHA-256 (what is stored)."""
        token = secrets.token_urlsafe(32)
        return token, refresh_hash(token)

    @staticmethod
    def new_family() -> str:
        return uuid.uuid4().hex

    def now(self) -> int:
        return int(self._clock())

    # verification -----------------------------------------------------
    def _keys(self, kid: str | None) -> JoseKeySet:
        now = time.monotonic()
        with self._lock:
            stale = self._verify_keys is None or now - self._verify_loaded > self.keys_reload_seconds
            if stale or (kid is not None and kid not in self._verify_kids):
                if not stale and now - self._verify_loaded < 1:
                    return self._verify_keys  # type: ignore[return-value]
                jwks = self.jwks()
                if jwks != self._verify_jwks:
                    # A key added, retired or replaced: what was verified before is checked again.
                    self._verified.clear()
                    self._verify_keys = JoseKeySet.import_key_set(jwks)  # type: ignore[arg-type]
                    self._verify_kids = frozenset(k["kid"] for k in jwks["keys"])
                    self._verify_jwks = jwks
                self._verify_loaded = now
            return self._verify_keys  # type: ignore[return-value]

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` if its header and signature check out against the published keys."""
        hit = self._verified.get(token)
        if hit is not None:
            if time.monotonic() - self._verify_loaded > self.keys_reload_seconds:
                self._keys(None)  # may empty the cache: a retired key is noticed as before
                hit = self._verified.get(token)
            if hit is not None:
                return hit
        try:
            header_b64 = token.split(".", 1)[0]
            header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
            if not isinstance(header, dict) or header.get("typ") != ACCESS_TOKEN_TYP:
                return None
            keys = self._keys(header.get("kid"))
            decoded = jose_jwt.decode(token, keys, algorithms=["ES256", "RS256"])
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        claims = dict(decoded.claims)
        if keys is self._verify_keys:  # not when the keys changed meanwhile
            if len(self._verified) >= self.verified_cache_max:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def verify_access_token(self, token: str, *, check_revoked: bool = True) -> AccessTokenClaims | None:
        """The claims of one of our live access tokens, or ``None``.

        Checks signature (ES256/RS256 only, never ``none``), ``typ``,
        ``iss``, ``exp``, and the revocation marker.
        """
        if not token or len(token) > 4096 or token.count(".") != 2:
            return None
        claims = self._verified_claims(token)
        if claims is None:
            return None
        now = int(self._clock())
        try:
            if claims.get("iss") != self.issuer or int(claims["exp"]) <= now or "jti" not in claims:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        if check_revoked and self._r.exists(self._p + "rv:" + str(claims["jti"])):
            return None
        return AccessTokenClaims(dict(claims))

    # userinfo snapshot ----------------------------------------------
    # The claims a userinfo request needs, kept beside the access token for
    # its lifetime, so that userinfo is one Redis round trip and no SQL.
    # Never the ID number (docs/design.md: not stored in clear anywhere): a
    # token that may release it reads the database.
    def save_snapshot(self, jti: str, ttl: int, data: dict[str, Any], *, pipe: Any = None,
                      background: bool = False) -> None:
        """Keep the userinfo snapshot; with ``pipe``, only queue the command on it; ``background``:
        hand it to :attr:`snapshots` (a cache, userinfo reads the database without it; issue 16)."""
        if background and pipe is None:
            self.snapshots.put(self._p + "ui:" + jti, json.dumps(data), max(1, ttl))
            return
        (pipe or self._r).set(self._p + "ui:" + jti, json.dumps(data), ex=max(1, ttl))

    def snapshot_if_live(self, jti: str) -> tuple[bool, dict[str, Any] | None]:
        """``(revoked, snapshot)`` in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.exists(self._p + "rv:" + jti)
        pipe.get(self._p + "ui:" + jti)
        revoked, raw = pipe.execute()
        return bool(revoked), (json.loads(raw) if raw else None)

    def is_revoked(self, jti: str) -> bool:
        return bool(self._r.exists(self._p + "rv:" + jti))

    # revocation -------------------------------------------------------
    def _mark_revoked(self, items: Iterable[tuple[str, str, int]]) -> None:
        now = int(self._clock())
        pipe = self._r.pipeline(transaction=False)
        n = 0
        for jti, kind, exp in items:
            if kind == "access" and exp > now:
                pipe.set(self._p + "rv:" + jti, "1", ex=max(1, exp - now + 5))
                n += 1
        if n:
            pipe.execute()

    def revoke_access_token(self, jti: str, exp: int) -> None:
        """Revoke one access token (a client_credentials token may have no SQL record)."""
        self._mark_revoked([(jti, "access", exp)])
        self.store.revoke(jtis=[jti], now=int(self._clock()))

    def revoke(self, *, jtis: Iterable[str] = (), family_id: str | None = None,
               sid: str | None = None, citizen_id: Any = None, code_hash: str | None = None,
               include_offline: bool = True) -> int:
        """Revoke records matching any of the selectors; returns how many."""
        items = self.store.revoke(
            jtis=list(jtis), family_id=family_id, sid=sid, citizen_id=citizen_id, code_hash=code_hash,
            include_offline=include_offline, now=int(self._clock()),
        )
        self._mark_revoked(items)
        if items:
            logger.info("revoked %d token(s)", len(items))
        return len(items)

    def revoke_session_tokens(self, sid: str, *, include_offline: bool = False) -> int:
        """Issue 4 §6: ending a session revokes the tokens issued in it.

        Offline tokens (``offline_access``) survive an ordinary session end
        and fall only to "sign out everywhere" (``include_offline=True``).
        """
        return self.revoke(sid=sid, include_offline=include_offline)
