"""Pushed authorization requests (RFC 9126).

The client POSTs its authorization parameters to ``/par`` (authenticated as
at the token endpoint) and gets back a ``request_uri`` of the form
``urn:ietf:params:oauth:request_uri:<random>`` (§2.2) that it then sends to
the authorization endpoint with its ``client_id``. The parameters wait in
Redis for ``expires_in`` seconds and are used once (§4: "the authorization
server SHOULD treat a request_uri as one-time use").
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = ["PushedRequestStore", "REQUEST_URI_PREFIX"]

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


class PushedRequestStore:
    def __init__(self, redis: Any, prefix: str, *, ttl_seconds: int = 60) -> None:
        self._r = redis
        self._p = f"{prefix}par:"
        self.ttl_seconds = ttl_seconds

    def push(self, client_id: str, params: dict[str, str]) -> str:
        ref = secrets.token_urlsafe(24)
        self._r.set(
            self._p + ref, json.dumps({"client_id": client_id, "params": params}), ex=self.ttl_seconds
        )
        return REQUEST_URI_PREFIX + ref

    def take(self, request_uri: str, client_id: str | None) -> dict[str, str] | None:
        """The pushed parameters, once; ``None`` if unknown, used, expired or another client's."""
        if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
            return None
        raw = self._r.getdel(self._p + request_uri[len(REQUEST_URI_PREFIX):])
        if raw is None:
            return None
        data = json.loads(raw)
        if client_id is not None and data["client_id"] != client_id:
            return None
        return dict(data["params"])
