"""Pre-authorized codes, their tx_codes, and certstore's own access tokens, in Redis.

OpenID4VCI 1.0 §3.5 and §6.1: at issuance the agency's system (or the
counter, through it) asks for a credential offer for one certificate. It
gets a *pre-authorized code* (inside the offer the wallet fetches by
``credential_offer_uri``) and a *tx_code* it delivers to the citizen through
another channel (SMS, the printed receipt). Whoever redeems the code at
certstore's token endpoint must also send the tx_code:

* a code redeems once: the record is deleted by the ``DEL`` that redeems it
  (two concurrent redemptions: one ``DEL`` returns 1, the other 0 →
  ``invalid_grant``), and it expires after :data:`OFFER_SECONDS`;
* every redemption counts an attempt first (``HINCRBY``); a wrong tx_code is
  ``invalid_grant``, and after :data:`MAX_TX_ATTEMPTS` wrong ones the code is
  gone, so six digits cannot be guessed;
* Redis holds keyed HMACs of the offer id, the code and the tx_code, the
  certificate identifier and the configuration id; the code itself is
  derived from the offer id with the key when the wallet fetches the offer,
  so a Redis dump reveals no offer, code, tx_code or token.

The access token the token endpoint returns is opaque (``ywvci_…``), kept
under its HMAC for :data:`TOKEN_SECONDS`, and names the one certificate the
offer was for: it can fetch credentials of that certificate only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keys.redis_urls import run_script

from .errors import InvalidGrant, InvalidToken

_REDEEM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
local tx = redis.call('HGET', KEYS[1], 'tx')
if not tx or not redis.call('HGET', KEYS[1], 'identifier') then
  redis.call('DEL', KEYS[1])
  return {'unknown'}
end
if tx == ARGV[1] then
  local record = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  return {'ok', record}
end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
return {'wrong', n}
"""

__all__ = [
    "OFFER_SECONDS",
    "TOKEN_SECONDS",
    "MAX_TX_ATTEMPTS",
    "TX_CODE_LENGTH",
    "TOKEN_PREFIX",
    "Grant",
    "Offer",
    "GrantStore",
]

OFFER_SECONDS = 900
"""How long an offer and its pre-authorized code live (the citizen scans it at the counter)."""
TOKEN_SECONDS = 300
MAX_TX_ATTEMPTS = 3
TX_CODE_LENGTH = 6
TOKEN_PREFIX = "ywvci_"  # noqa: S105 - a prefix, not a secret
PRE_AUTHORIZED = "pre-authorized_code"
AUTHORIZATION_CODE = "authorization_code"


@dataclass(frozen=True)
class Grant:
    """What an access token lets a wallet receive."""

    flow: str
    """``pre-authorized_code`` or ``authorization_code``."""
    configuration_ids: tuple[str, ...]
    identifier: str | None = None
    """The one certificate (pre-authorized code flow)."""
    holder_index: str | None = None
    """The citizen's blind index (authorization code flow: their own certificates only)."""
    types: frozenset[str] | None = None
    """Types the token's scope allows (authorization code flow; ``None``: every type)."""
    client_id: str | None = None
    jkt: str | None = None
    """RFC 9449: the DPoP key certstore's own token is bound to (``None``: a Bearer token)."""


@dataclass(frozen=True)
class Offer:
    offer_id: str
    code: str
    tx_code: str
    identifier: str
    configuration_id: str


class GrantStore:
    def __init__(self, key: bytes, *, redis: Callable[[], Any], prefix: str) -> None:
        self._key = key
        self._redis = redis
        self._prefix = prefix

    def _h(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _k(self, kind: str, value: str) -> str:
        return f"{self._prefix}{kind}:{self._h(kind, value)}"

    # -- offers and pre-authorized codes -------------------------------------

    def _code_of(self, offer_id: str) -> str:
        """The pre-authorized code behind an offer, derived (keyed) from its id: never stored."""
        mac = hmac.new(self._key, f"pre-authorized-code:{offer_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def create_offer(self, identifier: str, configuration_id: str) -> Offer:
        tx_code = "".join(secrets.choice("0123456789") for _ in range(TX_CODE_LENGTH))
        offer_id = secrets.token_urlsafe(24)
        code = self._code_of(offer_id)
        r = self._redis()
        pipe = r.pipeline(transaction=False)
        key = self._k("pac", code)
        pipe.hset(key, mapping={
            "identifier": identifier, "configuration": configuration_id,
            "tx": self._h("tx", tx_code), "attempts": 0,
        })
        pipe.expire(key, OFFER_SECONDS)
        pipe.set(self._k("offer", offer_id), json.dumps({"configuration": configuration_id}), ex=OFFER_SECONDS)
        pipe.execute()
        return Offer(offer_id, code, tx_code, identifier, configuration_id)

    def offer(self, offer_id: str) -> dict[str, str] | None:
        """The code and configuration behind ``offer_id`` (the wallet may fetch it more than once)."""
        if not isinstance(offer_id, str) or len(offer_id) > 64:
            return None
        raw = self._redis().get(self._k("offer", offer_id))
        if raw is None:
            return None
        value: dict[str, str] = json.loads(raw)
        return {"configuration": value["configuration"], "code": self._code_of(offer_id)}

    def redeem(self, code: Any, tx_code: Any) -> Grant:
        """The grant of a pre-authorized code, once; ``invalid_grant`` for anything else."""
        if not isinstance(code, str) or not code or len(code) > 128:
            raise InvalidGrant("the pre-authorized code is missing or malformed")
        given = tx_code if isinstance(tx_code, str) and len(tx_code) <= 64 else ""
        r = self._redis()
        # One script: racing redemptions with the right tx_code give one token, and never count as
        # wrong attempts (a HINCRBY before the check once let eight racing right answers withdraw
        # the offer). Comparing keyed HMACs in Lua leaks nothing useful by its timing.
        res = run_script(r, r.register_script(_REDEEM), [self._k("pac", code)], [self._h("tx", given), MAX_TX_ATTEMPTS])
        verdict = res[0].decode() if isinstance(res[0], bytes) else res[0]
        if verdict == "unknown":
            raise InvalidGrant("the pre-authorized code is unknown, expired or already used")
        if verdict == "wrong":
            left = MAX_TX_ATTEMPTS - int(res[1])
            if left <= 0:
                raise InvalidGrant("wrong tx_code; no attempts are left, the offer is withdrawn")
            raise InvalidGrant(f"wrong tx_code ({left} attempts left)")
        flat = [v.decode() if isinstance(v, bytes) else v for v in res[1]]
        record = dict(zip(flat[::2], flat[1::2], strict=True))
        return Grant(flow=PRE_AUTHORIZED, configuration_ids=(record["configuration"],),
                     identifier=record["identifier"])

    # -- certstore's own access tokens ---------------------------------------

    def issue_token(self, grant: Grant) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        value = {"flow": grant.flow, "configurations": list(grant.configuration_ids), "identifier": grant.identifier,
                 "jkt": grant.jkt}
        self._redis().set(self._k("at", token), json.dumps(value), ex=TOKEN_SECONDS)
        return token

    def token(self, token: str) -> Grant:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise InvalidToken("the access token is not one of this issuer's")
        raw = self._redis().get(self._k("at", token))
        if raw is None:
            raise InvalidToken("the access token is unknown or expired")
        value = json.loads(raw)
        return Grant(flow=value["flow"], configuration_ids=tuple(value["configurations"]),
                     identifier=value["identifier"], jkt=value.get("jkt"))
