"""The device authorization grant (RFC 8628) for kiosks and TVs.

Issue 4 §7: the kiosk asks ``/device_authorization`` for a device code and a
user code, shows the user code and a QR code of ``verification_uri_complete``;
the citizen opens that on their phone, where their SSO session (or a login)
identifies them, and approves. The kiosk polls the token endpoint with
``grant_type=urn:ietf:params:oauth:grant-type:device_code``; once approved it
gets tokens that belong to the *approving session* (its ``sid``): the kiosk
client is added to that session's clients, so signing out anywhere ends the
kiosk's session too — its tokens are revoked and it gets a back-channel
logout token when it registered a ``backchannel_logout_uri``.

Authlib's :class:`DeviceAuthorizationEndpoint` and :class:`DeviceCodeGrant`
do the protocol; :class:`DeviceCodeStore` keeps the codes in Redis:

- ``dc:<sha256(device_code)>`` — a hash: client, scope, user code, expiry,
  interval, last poll, status (``pending``/``approved``/``denied``) and, once
  approved, who approved it from which session;
- ``uc:<user code>`` — the device-code hash the user code points to;
- ``used:<sha256(device_code)>`` — left behind when tokens are issued, so a
  replayed device code is told ``invalid_grant`` (RFC 6749 §5.2).

Polling faster than the interval gets ``slow_down`` and the interval grows by
five seconds for this and every later poll (RFC 8628 §3.5).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from redis.exceptions import WatchError

from keys.redis_urls import is_cluster

from .oauth.binding import BoundTokens
from .oauth.scopes import grant_scope
from .redis import get_many, slot_tag

__all__ = [
    "USER_CODE_ALPHABET",
    "DEVICE_CODE_GRANT_TYPE",
    "DeviceCodeStore",
    "DeviceApproval",
    "YiwangDeviceAuthorizationEndpoint",
    "YiwangDeviceCodeGrant",
    "normalize_user_code",
    "register_device_flow",
]

logger = logging.getLogger(__name__)

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
"""RFC 8628 §6.1: consonants only — no vowels (no words), no 0/O or 1/I confusion."""

_SLOW_DOWN_STEP = 5

# KEYS: 1 device hash; ARGV: now
# Returns 'ok' or 'slow_down'; records the poll and grows the interval on slow_down.
_POLL = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last_poll') or '0')
local interval = tonumber(redis.call('HGET', KEYS[1], 'interval') or '5')
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'last_poll', ARGV[1])
if last > 0 and now - last < interval then
  redis.call('HSET', KEYS[1], 'interval', interval + tonumber(ARGV[2]))
  return 'slow_down'
end
return 'ok'
"""

# KEYS: 1 device hash, 2 used marker, [3 user-code key: one server only]; ARGV: used ttl
# Atomically takes an approved device code: exactly one poll gets the tokens.
# On a Cluster the user-code key is in another slot: the caller deletes it after.
_TAKE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return false end
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
if KEYS[3] then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return v
"""


def _h(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def normalize_user_code(text: str) -> str | None:
    """``bcdf ghjk`` / ``BCDF-GHJK`` → ``BCDF-GHJK``; ``None`` if it cannot be one (RFC 8628 §6.1)."""
    chars = [c for c in (text or "").upper() if c.isalnum()]
    if len(chars) != 8 or any(c not in USER_CODE_ALPHABET for c in chars):
        return None
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


@dataclass(frozen=True)
class DeviceApproval:
    """Who approved a device code, from which SSO session (what the tokens carry)."""

    citizen_id: int
    public_id: str
    sid: str
    auth_time: int
    acr: str
    amr: tuple[str, ...]


class DeviceCodeStore:
    """Device and user codes in Redis (shared by every idp instance)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        expires_in: int = 600,
        interval: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = redis
        self._p = f"{prefix}device:"
        self.expires_in = expires_in
        self.interval = interval
        self._clock = clock
        self._poll = redis.register_script(_POLL)
        self._take = redis.register_script(_TAKE)

    def _kd(self, device_hash: str) -> str:
        return f"{self._p}dc:{slot_tag(self._r, device_hash)}"

    def _ku(self, user_code: str) -> str:
        return f"{self._p}uc:{user_code}"

    def _kused(self, device_hash: str) -> str:
        return f"{self._p}used:{slot_tag(self._r, device_hash)}"

    # issuing ------------------------------------------------------------
    def save(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        """Store what ``DeviceAuthorizationEndpoint`` generated (RFC 8628 §3.2)."""
        now = int(self._clock())
        dh = _h(data["device_code"])
        record = {
            "client_id": client_id,
            "scope": scope or "",
            "user_code": data["user_code"],
            "expires_at": now + int(data["expires_in"]),
            "interval": int(data["interval"]),
            "last_poll": 0,
            "status": "pending",
        }
        # Two slots on a Cluster: not a transaction. A failure raises before the
        # codes are handed out; what was written is unreachable and expires.
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(self._kd(dh), mapping=record)
        pipe.expire(self._kd(dh), int(data["expires_in"]) + 60)
        pipe.set(self._ku(data["user_code"]), dh, ex=int(data["expires_in"]))
        pipe.execute()
        logger.info("device code issued to client %s", client_id)

    # the verification page ------------------------------------------------
    def pending_for_user_code(self, user_code: str) -> dict[str, str] | None:
        """The pending request a user code names (client, scope), or ``None``."""
        code = normalize_user_code(user_code)
        if code is None:
            return None
        dh = self._r.get(self._ku(code))
        if dh is None:
            return None
        data = {_text(k): _text(v) for k, v in self._r.hgetall(self._kd(_text(dh))).items()}
        if not data or data.get("status") != "pending":
            return None
        if int(data.get("expires_at", "0")) <= int(self._clock()):
            return None
        return {"client_id": data["client_id"], "scope": data["scope"], "user_code": code}

    def decide(self, user_code: str, *, approval: DeviceApproval | None, scope: str | None = None) -> str | None:
        """Approve (``approval`` given) or deny a pending user code; returns its client id.

        A user code is decided once: a second decision finds nothing pending.
        ``scope``, on approval, replaces the requested scope with what the
        citizen consented to (the tokens are issued for it).
        """
        code = normalize_user_code(user_code)
        if code is None:
            return None
        dh = self._r.get(self._ku(code))
        if dh is None:
            return None
        key = self._kd(_text(dh))
        # WATCH/MULTI so that two decisions on the same code cannot both win.
        with self._r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                status = pipe.hget(key, "status")
                client_id = pipe.hget(key, "client_id")
                if status is None or _text(status) != "pending":
                    pipe.unwatch()
                    return None
                pipe.multi()
                if approval is None:
                    pipe.hset(key, "status", "denied")
                else:
                    pipe.hset(
                        key,
                        mapping={
                            "status": "approved",
                            "citizen_id": approval.citizen_id,
                            "public_id": approval.public_id,
                            "sid": approval.sid,
                            "auth_time": approval.auth_time,
                            "acr": approval.acr,
                            "amr": json.dumps(list(approval.amr)),
                            **({"scope": scope} if scope is not None else {}),
                        },
                    )
                pipe.execute()
            except WatchError:  # decided concurrently: the other decision stands
                return None
        return _text(client_id)

    # guessing (RFC 8628 §5.1) ---------------------------------------------
    MISS_LIMIT = 10
    """Wrong user codes per SSO session, and per account, in :attr:`MISS_WINDOW`."""
    IP_MISS_LIMIT = 50
    """Per client address: higher, as a service hall's citizens share one NAT address."""
    MISS_WINDOW = 600

    def _miss_keys(self, sid: str, account: str | None, ip: str | None) -> list[tuple[str, int]]:
        # Keyed on the session, the account and the address (issue 11 §11):
        # a new session (sign in again) or a new account from the same address
        # does not start a fresh budget.
        keys = [(f"{self._p}miss:s:{sid}", self.MISS_LIMIT)]
        if account:
            keys.append((f"{self._p}miss:a:{account}", self.MISS_LIMIT))
        if ip:
            keys.append((f"{self._p}miss:ip:{ip[:64]}", self.IP_MISS_LIMIT))
        return keys

    def locked_out(self, sid: str, *, account: str | None = None, ip: str | None = None) -> bool:
        """Too many wrong user codes lately from this session, account or address (one round trip)."""
        keys = self._miss_keys(sid, account, ip)
        counts = get_many(self._r, [k for k, _ in keys])
        return any(int(c or 0) >= limit for c, (_, limit) in zip(counts, keys, strict=True))

    def miss(self, sid: str, *, account: str | None = None, ip: str | None = None) -> None:
        """Count a wrong user code: §5.1 asks to rate-limit user-code entry."""
        pipe = self._r.pipeline(transaction=False)
        for key, _ in self._miss_keys(sid, account, ip):
            pipe.incr(key)
            pipe.expire(key, self.MISS_WINDOW)
        pipe.execute()

    # the token endpoint ---------------------------------------------------
    def credential(self, device_code: str) -> DeviceCredentialDict | None:
        """The device code's record as Authlib's grant reads it."""
        if not device_code or len(device_code) > 200:
            return None
        data = {_text(k): _text(v) for k, v in self._r.hgetall(self._kd(_h(device_code))).items()}
        if not data:
            return None
        return DeviceCredentialDict(
            device_code_hash=_h(device_code),
            client_id=data["client_id"],
            scope=data["scope"],
            user_code=data["user_code"],
            expires_at=int(data["expires_at"]),
            status=data["status"],
        )

    def was_used(self, device_code: str) -> bool:
        return bool(self._r.exists(self._kused(_h(device_code))))

    def poll(self, device_hash: str) -> str:
        """Record a poll; ``slow_down`` if it came sooner than the interval."""
        return _text(self._poll(keys=[self._kd(device_hash)], args=[int(self._clock()), _SLOW_DOWN_STEP]))

    def take_approved(self, device_hash: str, user_code: str) -> DeviceApproval | None:
        """Consume an approved code (once); ``None`` if it is not approved or already taken."""
        keys = [self._kd(device_hash), self._kused(device_hash)]
        cluster = is_cluster(self._r)
        if not cluster:
            keys.append(self._ku(user_code))
        res = self._take(keys=keys, args=[self.expires_in + 600])
        if not res:
            return None
        if cluster:  # the user code now names nothing pending; dropping it is tidying up
            self._r.delete(self._ku(user_code))
        data = {_text(res[i]): _text(res[i + 1]) for i in range(0, len(res), 2)}
        return DeviceApproval(
            citizen_id=int(data["citizen_id"]),
            public_id=data["public_id"],
            sid=data["sid"],
            auth_time=int(data["auth_time"]),
            acr=data["acr"],
            amr=tuple(json.loads(data.get("amr", "[]"))),
        )

    def status(self, device_hash: str) -> str | None:
        v = self._r.hget(self._kd(device_hash), "status")
        return _text(v) if v is not None else None


# ------------------------------------------------------------ Authlib glue


def _store(obj: Any) -> DeviceCodeStore:
    return obj.server.device_codes  # type: ignore[no-any-return]


class YiwangDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    """RFC 8628 §3.1–§3.2, client authentication per the client's registration."""

    ENDPOINT_NAME = "device_authorization"
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    @property
    def EXPIRES_IN(self) -> int:  # noqa: N802
        return _store(self).expires_in

    @property
    def INTERVAL(self) -> int:  # noqa: N802
        return _store(self).interval

    def authenticate_client(self, request: Any) -> Any:
        client = super().authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            from authlib.oauth2.rfc6749.errors import UnauthorizedClientError

            raise UnauthorizedClientError("the client is not registered for the device grant")
        return client

    def create_endpoint_response(self, request: Any) -> Any:
        """RFC 8628 §3.1–§3.2 as Authlib's, with the scope policy in place of its server-wide check.

        A scope the client may not have is ``invalid_scope`` (RFC 8628 §3.2 →
        RFC 6749 §5.2), before anything is stored; the stored scope is what
        the policy granted, so the approval page and the tokens cannot exceed it.
        """
        client = self.authenticate_client(request)
        scope = grant_scope(client, DEVICE_CODE_GRANT_TYPE, request.payload.scope, strict=True)
        user_code = self.generate_user_code()
        verification_uri = self.get_verification_uri()
        data = {
            "device_code": self.generate_device_code(),
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": add_params_to_uri(verification_uri, [("user_code", user_code)]),
            "expires_in": self.EXPIRES_IN,
            "interval": self.INTERVAL,
        }
        self.save_device_credential(client.get_client_id(), scope, data)
        return 200, data, default_json_headers

    def generate_device_code(self) -> str:
        return secrets.token_urlsafe(32)

    def generate_user_code(self) -> str:
        # RFC 8628 §6.1: 8 characters from a 20-letter alphabet: 20^8 ≈ 2^34.6,
        # enough with the short lifetime and the verification page's throttle.
        chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        return f"{chars[:4]}-{chars[4:]}"

    def get_verification_uri(self) -> str:
        return self.server.device_verification_uri  # type: ignore[no-any-return]

    def save_device_credential(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        _store(self).save(client_id, scope, data)


class YiwangDeviceCodeGrant(BoundTokens, DeviceCodeGrant):
    """RFC 8628 §3.4–§3.5 at the token endpoint; tokens carry the approving session."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict:
        credential = _store(self).credential(device_code)
        if credential is None:
            # Unknown, expired long ago, or already exchanged: RFC 6749 §5.2.
            if _store(self).was_used(device_code):
                logger.warning("device code replayed")
            raise InvalidGrantError("the device code is invalid, expired or already used")
        return credential

    def validate_device_credential(self, credential: DeviceCredentialDict) -> Any:
        from authlib.oauth2.rfc6749.errors import AccessDeniedError
        from authlib.oauth2.rfc8628.errors import (
            AuthorizationPendingError,
            ExpiredTokenError,
            SlowDownError,
        )

        store = _store(self)
        if credential.is_expired():
            raise ExpiredTokenError()
        status = credential["status"]
        if status == "denied":
            raise AccessDeniedError()
        if status == "approved":
            approval = store.take_approved(credential["device_code_hash"], credential.get_user_code())
            if approval is None:  # another poll took it first
                raise InvalidGrantError("the device code is invalid, expired or already used")
            return self._grant_user(approval)
        if store.poll(credential["device_code_hash"]) == "slow_down":
            raise SlowDownError()
        raise AuthorizationPendingError()

    def _grant_user(self, approval: DeviceApproval) -> Any:
        from .oauth.provider import GrantUser

        provider = self.server.provider
        citizen = provider.get_citizen(approval.citizen_id)
        if citizen is None or citizen.disabled:
            raise InvalidGrantError("the approving account is not available")
        # The approving session must still be alive: a sign-out between the
        # approval and the poll must not hand out tokens for a dead session.
        if provider.sessions.get(approval.sid, touch=False) is None:
            raise InvalidGrantError("the approving session has ended")
        return GrantUser(
            citizen_id=citizen.id,
            public_id=citizen.public_id,
            sid=approval.sid,
            auth_time=approval.auth_time,
            acr=approval.acr,
            amr=list(approval.amr),
        )

    # query_user_grant / should_slow_down are not used: validate_device_credential above
    def query_user_grant(self, user_code: str) -> Any:  # pragma: no cover
        return None

    def should_slow_down(self, credential: Any) -> bool:  # pragma: no cover
        return False

    def create_token_response(self) -> Any:
        status, token, headers = super().create_token_response()
        user = self.request.user
        client = self.request.client
        provider = self.server.provider
        # Issue 4 §7: the kiosk now belongs to the approving session.
        provider.sessions.add_client(user.sid, client.client_id)
        # What was granted (the policy's cut in generate_token), not what was stored.
        scopes = str(token.get("scope") or "").split() if isinstance(token, dict) else []
        if "openid" in scopes and isinstance(token, dict) and "access_token" in token:
            claims = {
                "sub": provider.subject(client, user.public_id),
                "aud": client.client_id,
                "sid": user.sid,
                "auth_time": user.auth_time,
                "acr": user.acr,
                "amr": list(user.amr),
                "azp": client.client_id,
            }
            from .oauth.tokens import at_hash

            claims["at_hash"] = at_hash(token["access_token"])
            token["id_token"] = provider.tokens.encode_id_token(
                claims, alg=client.id_token_signed_response_alg or "ES256"
            )
        provider.audit("token.device", client_id=client.client_id, detail={"sid": user.sid})
        return status, token, headers


def register_device_flow(server: Any, store: DeviceCodeStore, *, verification_uri: str) -> None:
    """Register the device grant and endpoint on an Authlib ``AuthorizationServer``.

    :func:`idp.oauth.server.configure_server` calls this with the provider's
    store; a later call on the same server (``idp.web.device`` registering
    itself) changes nothing, so the grant is registered once. The server must
    carry ``server.provider`` (``idp.oauth.provider.Provider``).
    """
    if getattr(server, "device_codes", None) is not None:
        return
    server.device_codes = store
    server.device_verification_uri = verification_uri
    server.register_grant(YiwangDeviceCodeGrant)
    server.register_endpoint(YiwangDeviceAuthorizationEndpoint)
