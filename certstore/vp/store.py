"""Verifier requests in Redis, short-lived (issue 15 §2).

One key per request, ``<prefix>vp:{<id>}:req`` (the id in a hash tag: a
request's keys stay on one Cluster slot), holding what the response check
needs: nonce, state, the DCQL query, the per-request decryption key of a
``direct_post.jwt`` response, the hash of the counter's view key. It expires
after :data:`REQUEST_SECONDS`. The first response *claims* the request
(``SET NX``): a second answer to the same request — a replay, or a race — is
refused whatever it carries. The result (only the disclosed claims the
request asked for, the issuer, the status) is kept :data:`RESULT_SECONDS`
for the counter page to show, then gone: nothing else of the credential is
stored.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

__all__ = ["REQUEST_SECONDS", "RESULT_SECONDS", "RequestStore", "RedisLike"]

REQUEST_SECONDS = 300
"""How long a wallet has to fetch the request and answer it."""
RESULT_SECONDS = 600
"""How long the counter page can read the result."""


class RedisLike(Protocol):
    def set(self, name: str, value: Any, *, ex: int | None = None, nx: bool = False) -> Any: ...
    def get(self, name: str) -> Any: ...
    def delete(self, *names: str) -> Any: ...


class RequestStore:
    def __init__(self, client: RedisLike, *, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, request_id: str, what: str) -> str:
        return f"{self.prefix}vp:{{{request_id}}}:{what}"

    def put(self, request_id: str, data: dict[str, Any]) -> None:
        self.client.set(self._k(request_id, "req"), json.dumps(data, separators=(",", ":")), ex=REQUEST_SECONDS)

    def get(self, request_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self._k(request_id, "req"))
        return None if raw is None else dict(json.loads(raw))

    def claim(self, request_id: str) -> bool:
        """True for the first answer to this request only."""
        return bool(self.client.set(self._k(request_id, "answered"), "1", ex=REQUEST_SECONDS + RESULT_SECONDS, nx=True))

    def mark_fetched(self, request_id: str) -> None:
        self.client.set(self._k(request_id, "fetched"), "1", ex=REQUEST_SECONDS)

    def fetched(self, request_id: str) -> bool:
        return self.client.get(self._k(request_id, "fetched")) is not None

    def put_result(self, request_id: str, result: dict[str, Any]) -> None:
        self.client.set(self._k(request_id, "result"), json.dumps(result, ensure_ascii=False, separators=(",", ":")),
                        ex=RESULT_SECONDS)

    def result(self, request_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self._k(request_id, "result"))
        return None if raw is None else dict(json.loads(raw))
