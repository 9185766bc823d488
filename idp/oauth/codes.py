"""Authorization codes in Redis: single use, consumed atomically.

RFC 6749 §4.1.2: "If an authorization code is used more than once, the
authorization server MUST deny the request and SHOULD revoke (when possible)
all tokens previously issued based on that authorization code." The code is
stored under the SHA-256 of its value; :meth:`CodeStore.consume` is one Lua
script that reads and deletes it and leaves a *used* marker, so of two
concurrent redemptions exactly one wins, and a replay is recognised as such.
The records of the tokens issued for a code carry its hash, so a replay
revokes them by it (``AuthorizationCodeGrant.query_authorization_code``).
A list of jtis per code in Redis used to repeat what the records say, at the
cost of a Redis round trip per code exchange and ~300 bytes for the replay
window; it is gone (issue 16).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin

from keys.redis_urls import run_script

from ..redis import slot_tag

__all__ = ["AuthorizationCode", "CitizenSnapshot", "CodeStore", "Consumed", "snapshot_of"]

# KEYS: 1 code, 2 used marker; ARGV: used ttl
_CONSUME = """
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
  return {'ok', v}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'replayed'} end
return {'unknown'}
"""


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """What a code stands for; Authlib's grants read it through the mixin."""

    client_id: str
    redirect_uri: str
    scope: str
    citizen_id: str
    sid: str | None
    auth_time: int
    acr: str
    amr: list[str]
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    resource: list[str] = field(default_factory=list)
    citizen: dict[str, Any] | None = None
    """What the ID token and the userinfo snapshot need of the citizen, read when
    the code was issued (``id``, ``public_id``, ``name``, ``phone``, ``email``;
    never the ID number), so the token request need not read it again. The
    account's existence and state are checked when the tokens are recorded."""
    code_hash: str = ""
    dpop_jkt: str | None = None
    """RFC 9449 §10: the DPoP key the code is bound to (its redemption must prove it)."""
    staff: dict[str, Any] | None = None
    """A staff portal's code (:mod:`idp.staff.signin`): the clerk's or agent's ``sub`` and
    ID-token ``claims``; then there is no citizen (``citizen_id`` means nothing)."""

    # AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    # OIDC AuthorizationCodeMixin (authlib.oidc.core.models)
    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)

    def __repr__(self) -> str:
        return f"AuthorizationCode(client_id={self.client_id!r})"


_STORED = tuple(f.name for f in fields(AuthorizationCode) if f.name != "code_hash")
"""What a code's Redis value holds: every field but its hash (which is the key)."""


@dataclass(frozen=True)
class CitizenSnapshot:
    """The citizen's claims as an authorization code carries them (never the ID number)."""

    id: int
    public_id: str
    name: str
    phone: str | None = None
    email: str | None = None
    disabled: bool = False

    def __repr__(self) -> str:
        return f"CitizenSnapshot(id={self.id})"


def snapshot_of(citizen: Any) -> dict[str, Any] | None:
    if citizen is None:
        return None
    return {"id": int(citizen.id), "public_id": citizen.public_id, "name": citizen.name,
            "phone": citizen.phone, "email": citizen.email}


@dataclass(frozen=True)
class Consumed:
    status: str
    """``ok``, ``replayed`` or ``unknown`` (never issued or expired)."""
    code: AuthorizationCode | None = None


def _h(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class CodeStore:
    def __init__(self, redis: Any, prefix: str, *, ttl_seconds: int = 60, replay_window: int = 86400) -> None:
        self._r = redis
        self._p = f"{prefix}code:"
        self.ttl_seconds = ttl_seconds
        self.replay_window = replay_window
        self._consume = redis.register_script(_CONSUME)
        self.lifetime_of: Any = None
        """``lifetime_of(client_id)``: seconds a code for that client lives, if not
        :attr:`ttl_seconds` (FAPI 2.0: at most 60; ``configure_server`` sets it)."""

    def issue(self, data: AuthorizationCode, *, also: Any = None) -> str:
        """Store a new code and return it; ``also(pipe)`` adds commands to the same round trip."""
        code = secrets.token_urlsafe(32)
        # Not dataclasses.asdict: its deep copy was a third of the issue's CPU, and
        # json.dumps reads the nested lists and dicts as they are.
        payload = {name: getattr(data, name) for name in _STORED}
        key = self._p + "c:" + slot_tag(self._r, _h(code))
        ttl = self.ttl_seconds if self.lifetime_of is None else self.lifetime_of(data.client_id)
        if also is None:
            self._r.set(key, json.dumps(payload), ex=ttl)
            return code
        pipe = self._r.pipeline(transaction=False)
        pipe.set(key, json.dumps(payload), ex=ttl)
        also(pipe)
        pipe.execute()
        return code

    def consume(self, code: str) -> Consumed:
        if not code or len(code) > 200:
            return Consumed("unknown")
        h = _h(code)
        t = slot_tag(self._r, h)  # the code and its used marker: one Cluster slot
        # With Sentinel or Cluster the consumption WAITs for the replicas: a failover
        # that lost it would make the code redeemable a second time.
        res = run_script(self._r, self._consume, [self._p + "c:" + t, self._p + "u:" + t], [self.replay_window])
        status = res[0].decode() if isinstance(res[0], bytes) else res[0]
        if status != "ok":
            return Consumed(status)
        data = json.loads(res[1])
        return Consumed("ok", AuthorizationCode(**data, code_hash=h))

    @staticmethod
    def hash_of(code: str) -> str:
        """What TokenRecord.code_hash holds for tokens issued from ``code``."""
        return _h(code)
