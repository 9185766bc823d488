"""Pending CIBA requests in Redis (CIBA Core 1.0 §7.3, §10, §11).

A pending poll costs one Redis round trip and no SQL: the client is
authenticated from the provider's in-process client cache and
:meth:`CibaStore.poll` is one Lua script that decides ``pending``,
``slow_down``, ``expired``, ``denied``, ``wrong_client``, ``used`` or takes
an approved request (exactly once: the record is deleted and a ``used``
marker left in the same script, so a second redemption is ``invalid_grant``).

Keys (``{…}`` a Redis Cluster hash tag, so a script's keys share a slot):

- ``ciba:{<h>}:r`` — the request (a hash), ``h`` = SHA-256 of the ``auth_req_id``
  (the id itself is kept only for a ping-mode client, which must be sent it);
- ``ciba:{<h>}:used`` — left when tokens are issued (or the request is denied);
- ``ciba:d:<display id>`` — the request a display id names (the approval page's
  reference; never the ``auth_req_id``).

Polling sooner than ``interval`` seconds after the last poll (the first poll
may come at once) is ``slow_down`` and the interval grows by :data:`SLOW_DOWN_STEP` seconds for
that request from then on (§7.3, and RFC 8628 §3.5's rule, which CIBA's
``slow_down`` borrows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import WatchError

from keys.redis_urls import run_script

__all__ = ["SLOW_DOWN_STEP", "Approval", "CibaStore", "PollResult", "StoredRequest", "auth_req_hash"]

logger = logging.getLogger(__name__)

SLOW_DOWN_STEP = 5

# KEYS: 1 request, 2 used marker; ARGV: client id, now, slow-down step, used ttl
_POLL = """
local v = redis.call('HMGET', KEYS[1], 'client_id', 'status', 'expires_at', 'last_poll', 'interval')
if not v[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'used'} end
  return {'unknown'}
end
if v[1] ~= ARGV[1] then return {'wrong_client'} end
local now = tonumber(ARGV[2])
if now >= tonumber(v[3]) then return {'expired'} end
if v[2] == 'denied' then return {'denied'} end
if v[2] == 'approved' then
  local all = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  return {'approved', all}
end
local interval = tonumber(v[5])
redis.call('HSET', KEYS[1], 'last_poll', ARGV[2])
if now - tonumber(v[4]) < interval then
  redis.call('HSET', KEYS[1], 'interval', interval + tonumber(ARGV[3]))
  return {'slow_down'}
end
return {'pending'}
"""


def auth_req_hash(auth_req_id: str) -> str:
    return hashlib.sha256(auth_req_id.encode()).hexdigest()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class StoredRequest:
    """A validated backchannel authentication request, as kept until it is redeemed."""

    client_id: str
    citizen_id: int
    public_id: str
    scope: str
    expires_in: int
    interval: int
    mode: str = "poll"
    """``poll`` or ``ping`` (CIBA §5)."""
    acr: str = ""
    """The lowest acr the approval needs (``""``: any signed-in session)."""
    binding_message: str = ""
    actor: dict[str, Any] | None = None
    """The actor's display (``kind``, ``name``, ``office``) and ``act`` claim, when someone acts for the citizen."""
    notification_token: str = ""
    """Ping mode: the client's ``client_notification_token`` (sent back as a bearer)."""


@dataclass(frozen=True)
class Approval:
    """Who approved, from which SSO session (what the tokens carry)."""

    sid: str
    auth_time: int
    acr: str
    amr: tuple[str, ...]
    scope: str
    """What the citizen approved (at most what was asked)."""


@dataclass(frozen=True)
class PollResult:
    status: str
    """``pending``, ``slow_down``, ``expired``, ``denied``, ``wrong_client``, ``used``, ``unknown``, ``approved``."""
    record: dict[str, str] = field(default_factory=dict)
    """The request and its approval, when ``approved``."""


class CibaStore:
    """CIBA requests shared by every idp instance."""

    def __init__(self, redis: Any, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self._r = redis
        self._p = f"{prefix}ciba:"
        self._clock = clock
        self._poll = redis.register_script(_POLL)

    def _kr(self, h: str) -> str:
        return f"{self._p}{{{h}}}:r"

    def _kused(self, h: str) -> str:
        return f"{self._p}{{{h}}}:used"

    def _kd(self, display_id: str) -> str:
        return f"{self._p}d:{display_id}"

    def now(self) -> int:
        return int(self._clock())

    # issuing ------------------------------------------------------------
    def create(self, req: StoredRequest) -> tuple[str, str, int]:
        """Keep ``req``; returns ``(auth_req_id, display_id, expires_at)``."""
        auth_req_id = secrets.token_urlsafe(32)
        display_id = secrets.token_urlsafe(12)
        h = auth_req_hash(auth_req_id)
        now = self.now()
        expires_at = now + req.expires_in
        record = {
            "client_id": req.client_id, "citizen_id": req.citizen_id, "public_id": req.public_id,
            "scope": req.scope, "acr": req.acr, "binding_message": req.binding_message,
            "actor": json.dumps(req.actor, ensure_ascii=False) if req.actor else "",
            "mode": req.mode, "display_id": display_id, "created_at": now, "expires_at": expires_at,
            "last_poll": 0, "interval": req.interval, "status": "pending",
        }
        if req.mode == "ping":  # the client must be sent these back (CIBA §10.2)
            record["auth_req_id"] = auth_req_id
            record["notification_token"] = req.notification_token
        ttl = req.expires_in + 60
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(self._kr(h), mapping=record)
        pipe.expire(self._kr(h), ttl)
        pipe.set(self._kd(display_id), h, ex=ttl)
        pipe.execute()
        logger.info("CIBA request %s for client %s (%s mode)", display_id, req.client_id, req.mode)
        return auth_req_id, display_id, expires_at

    # the approval page ----------------------------------------------------
    def by_display_id(self, display_id: str) -> tuple[str, dict[str, str]] | None:
        """``(hash, record)`` of the request a display id names, whatever its status; ``None`` if gone."""
        if not display_id or len(display_id) > 40 or not display_id.replace("-", "").replace("_", "").isalnum():
            return None
        h = self._r.get(self._kd(display_id))
        if h is None:
            return None
        h = _text(h)
        data = {_text(k): _text(v) for k, v in self._r.hgetall(self._kr(h)).items()}
        return (h, data) if data else None

    def decide(self, h: str, citizen_id: int, approval: Approval | None) -> dict[str, str] | None:
        """Approve (``approval``) or deny a pending request of ``citizen_id``; its record, or ``None``.

        Decided once: WATCH/MULTI, so two decisions cannot both win; another
        citizen's request, an expired or decided one gives ``None``.
        """
        key = self._kr(h)
        with self._r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                data = {_text(k): _text(v) for k, v in pipe.hgetall(key).items()}
                if (not data or data.get("status") != "pending" or data.get("citizen_id") != str(citizen_id)
                        or int(data.get("expires_at", "0")) <= self.now()):
                    pipe.unwatch()
                    return None
                pipe.multi()
                if approval is None:
                    pipe.hset(key, "status", "denied")
                    data["status"] = "denied"
                else:
                    fields = {"status": "approved", "sid": approval.sid, "auth_time": approval.auth_time,
                              "session_acr": approval.acr, "amr": json.dumps(list(approval.amr)),
                              "scope": approval.scope}
                    pipe.hset(key, mapping=fields)
                    data.update({k: str(v) for k, v in fields.items()})
                pipe.execute()
            except WatchError:
                return None
        return data

    # the token endpoint ---------------------------------------------------
    def poll(self, auth_req_id: str, client_id: str) -> PollResult:
        """One poll of ``client_id`` for ``auth_req_id`` (one round trip; the module docstring)."""
        if not auth_req_id or len(auth_req_id) > 200:
            return PollResult("unknown")
        h = auth_req_hash(auth_req_id)
        # With Sentinel or Cluster the script's writes (the redemption's ``used`` marker above all)
        # WAIT for a replica on the same connection, so a failover cannot make an approval
        # redeemable twice; on one server this is the plain one-round-trip script.
        res = run_script(self._r, self._poll, [self._kr(h), self._kused(h)],
                         [client_id, self.now(), SLOW_DOWN_STEP, 24 * 3600])
        status = _text(res[0])
        if status != "approved":
            return PollResult(status)
        flat = res[1]
        return PollResult(status, {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)})

    def release(self, auth_req_id: str, record: dict[str, str]) -> None:
        """Undo a redemption whose tokens could not be issued (a backing service failed): the client's retry works."""
        h = auth_req_hash(auth_req_id)
        ttl = max(1, int(record.get("expires_at", "0")) - self.now() + 60)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._kr(h), mapping=record)
        pipe.expire(self._kr(h), ttl)
        pipe.delete(self._kused(h))
        pipe.execute()
        logger.info("CIBA request %s released after a failed token issue", record.get("display_id", "?"))

    def ping_target(self, h: str) -> dict[str, str] | None:
        """What a ping callback needs (client, auth_req_id, notification token), while the request lives."""
        values = self._r.hmget(self._kr(h), "client_id", "auth_req_id", "notification_token", "expires_at")
        if values[0] is None or values[1] is None:
            return None
        client_id, auth_req_id, token, expires_at = (_text(v) for v in values)
        return {"client_id": client_id, "auth_req_id": auth_req_id, "notification_token": token,
                "expires_at": expires_at}
