"""Where waiting sign-in flows live: Redis, 30 minutes, one JSON record per :class:`~idp.oauth.flow.Flow`."""

from __future__ import annotations

import secrets
from typing import Any

from .flow import Flow

__all__ = ["FlowStore"]


class FlowStore:
    """Authorization requests waiting for a login, second factor or consent (Redis, 30 min)."""

    def __init__(self, redis: Any, prefix: str, ttl_seconds: int = 1800) -> None:
        self._r = redis
        self._p = f"{prefix}flow:"
        self.ttl = ttl_seconds

    def create(self, flow: Flow) -> str:
        """Store a new flow under a fresh random id (also set on ``flow.id``)."""
        fid = secrets.token_urlsafe(18)
        flow.id = fid
        self._r.set(self._p + fid, flow.to_json(), ex=self.ttl)
        return fid

    def get(self, fid: str | None) -> Flow | None:
        """The flow, or ``None`` when unknown, expired, or stored in another format."""
        if not fid or len(fid) > 64:
            return None
        return Flow.from_json(self._r.get(self._p + fid), flow_id=fid)

    def save(self, flow: Flow, *, pipe: Any = None) -> None:
        """Write the flow (it must have an id); with ``pipe`` the write joins that pipeline's round trip."""
        if flow.id is None:
            raise ValueError("a flow is saved after it was created")
        (pipe if pipe is not None else self._r).set(self._p + flow.id, flow.to_json(), ex=self.ttl)

    def keep(self, flow: Flow) -> str:
        """Save ``flow``, creating it first if it has no id yet; returns its id."""
        if flow.id is None:
            return self.create(flow)
        self.save(flow)
        return flow.id

    def delete(self, fid: str, *, pipe: Any = None) -> None:
        """Forget the flow; with ``pipe`` the delete joins that pipeline's round trip."""
        (pipe if pipe is not None else self._r).delete(self._p + fid)
