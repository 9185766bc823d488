"""WebAuthn challenges: random, single-use, short-lived, bound to the browser (WebAuthn §13.4.3).

A challenge is kept in Redis under the hash of the browser cookie that asked
for it and the challenge itself, with what it is for (``register`` /
``sign_in``) and, where one is known, the citizen. :meth:`ChallengeStore.take`
is a ``GETDEL``: a replayed response finds nothing, and a response made in
another browser (a phished one) looks under another key. Each key names one
challenge, so it lives in one Redis Cluster slot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from webauthn.helpers import bytes_to_base64url, generate_challenge

__all__ = ["ChallengeStore", "Challenge"]


@dataclass(frozen=True)
class Challenge:
    value: bytes
    purpose: str
    citizen_id: int | None = None
    """Registration: the account; a step-up: the account whose passkey must answer."""
    user_handle: str | None = None
    """Registration: the ``user.id`` (base64url) the options gave the authenticator."""


class ChallengeStore:
    def __init__(self, redis: Any, keyspace: Any, *, ttl_seconds: int = 300) -> None:
        self._r = redis
        self._ks = keyspace.child("passkey")
        self._ttl = ttl_seconds

    def _key(self, purpose: str, browser_hash: str, challenge_b64: str) -> str:
        digest = hashlib.sha256(challenge_b64.encode()).hexdigest()
        return str(self._ks.key("chal", purpose, f"{browser_hash}.{digest}"))

    def issue(self, purpose: str, browser_hash: str, *, citizen_id: int | None = None,
              user_handle: str | None = None) -> bytes:
        """A new 32-byte challenge for ``purpose`` in this browser."""
        if not browser_hash:
            raise ValueError("a challenge needs a browser")
        value = generate_challenge()
        body = json.dumps({"c": citizen_id, "h": user_handle})
        self._r.set(self._key(purpose, browser_hash, bytes_to_base64url(value)), body, ex=self._ttl)
        return value

    def take(self, purpose: str, browser_hash: str, challenge_b64: str) -> Challenge | None:
        """The challenge the response signed, if this browser was given it and nobody used it yet."""
        if not browser_hash or not challenge_b64 or len(challenge_b64) > 200:
            return None
        raw = self._r.getdel(self._key(purpose, browser_hash, challenge_b64))
        if raw is None:
            return None
        from webauthn.helpers import base64url_to_bytes

        data = json.loads(raw)
        cid = data.get("c")
        return Challenge(base64url_to_bytes(challenge_b64), purpose, int(cid) if cid is not None else None,
                         data.get("h"))
