"""Web Push notifier for CIBA (issue 13 §1): "a counter/hotline request is waiting" on the citizen's devices.

:class:`WebPushNotifier` implements :class:`idp.ciba.notify.Notifier` with
``pywebpush``: the message is encrypted for each of the citizen's
subscriptions (RFC 8291, ``aes128gcm``) and carries a VAPID signature of the
idp's ``idp-vapid`` key (RFC 8292, :class:`idp.push.vapid.Vapid`; the private
key stays in keys/). The POST itself goes through :func:`keys.http.bounded_request`
(the endpoint came from a browser: https to a public address, checked when
resolved, a deadline and a size cap), handed to pywebpush as its session.

The payload says only that a request is waiting and where to answer it:
``{"v": 1, "kind": "counter" | "hotline" | "request", "url": "/ciba/<display id>"}``;
no client name, no binding message, no scope, never the ``auth_req_id`` nor an
ID number. The service worker (``idp/web/static/sw.js``) words the notice in
the device's language. The push lives until the request expires (``TTL``) and
is marked ``Urgency: high`` (RFC 8030 §5.3). A subscription the push service
calls gone (404, 410) is forgotten; any other failure is logged with the
display id and the request stays pending (the citizen still sees it on the
account page).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keys.http import FetchError, bounded_request

from ..push.subscriptions import Subscription, SubscriptionStore
from ..push.vapid import Vapid
from .notify import PendingApproval

__all__ = ["WebPushNotifier", "payload_of", "build_webpush"]

logger = logging.getLogger(__name__)

_KINDS = {"clerk": "counter", "agent": "hotline"}
_GONE = (404, 410)  # RFC 8030 §7.3: the subscription has expired or been removed


def payload_of(pending: PendingApproval) -> dict[str, Any]:
    """What the push carries (nothing the lock screen should not show)."""
    kind = _KINDS.get(pending.actor.kind, "request") if pending.actor is not None else "request"
    return {"v": 1, "kind": kind, "url": f"/ciba/{pending.display_id}"}


@dataclass
class _Response:
    """The part of ``requests.Response`` pywebpush reads."""

    status_code: int
    text: str
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class _BoundedSession:
    """pywebpush's ``requests_session``: its POST through keys/http (address checks, deadline, size cap)."""

    def __init__(self, *, allow_loopback: bool, deadline: float) -> None:
        self.allow_loopback = allow_loopback
        self.deadline = deadline

    def post(self, endpoint: str, *, timeout: Any = None, data: bytes | None = None,
             headers: Mapping[str, Any] | None = None) -> _Response:
        sent = {str(k): str(v) for k, v in (headers or {}).items()}
        sent["Content-Type"] = "application/octet-stream"
        reply = bounded_request("POST", endpoint, max_bytes=4096, deadline=self.deadline,
                                allow_loopback=self.allow_loopback, body=data or b"", headers=sent, on_excess="cut")
        return _Response(reply.status, reply.body.decode("utf-8", "replace"), headers=dict(reply.headers))


class WebPushNotifier:
    """Tells every subscribed device of the citizen (see the module docstring)."""

    def __init__(self, *, store: SubscriptionStore, vapid: Vapid, allow_loopback: bool = False,
                 deadline: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.vapid = vapid
        self.allow_loopback = allow_loopback
        self.deadline = deadline
        self._clock = clock

    def notify(self, pending: PendingApproval) -> None:
        now = int(self._clock())
        ttl = pending.expires_at - now
        if ttl <= 0:
            return
        data = json.dumps(payload_of(pending), separators=(",", ":")).encode()
        for sub in self.store.for_citizen(pending.account_id):
            self._send(sub, data, ttl, now, pending.display_id)

    def _send(self, sub: Subscription, data: bytes, ttl: int, now: int, display_id: str) -> None:
        from pywebpush import WebPusher, WebPushException

        session = _BoundedSession(allow_loopback=self.allow_loopback, deadline=self.deadline)
        try:
            headers = {"Authorization": self.vapid.authorization(sub.endpoint, now), "Urgency": "high"}
            resp = WebPusher(sub.info(), requests_session=session).send(  # type: ignore[arg-type]
                data, headers, ttl=ttl, content_encoding="aes128gcm")
        except (FetchError, WebPushException, ValueError) as e:
            logger.warning("Web Push for request %s to subscription %d failed (%s)", display_id, sub.id,
                           type(e).__name__)
            return
        status = resp.status_code  # type: ignore[union-attr]
        if status in _GONE:
            self.store.remove(sub.citizen_id, subscription_id=sub.id)
            logger.info("Web Push subscription %d is gone (%d): forgotten", sub.id, status)
        elif 200 <= status < 300:
            self.store.sent(sub.id)
        else:
            logger.warning("Web Push for request %s to subscription %d: push service answered %d",
                           display_id, sub.id, status)


def build_webpush(settings: Any, services: Any) -> WebPushNotifier | None:
    """The process's Web Push notifier (``None`` without a keyring: nothing can be signed)."""
    if services.keyring is None:
        return None
    subject = getattr(settings, "webpush_subject", None) or settings.issuer
    allow = settings.loopback_callbacks_allowed
    return WebPushNotifier(store=SubscriptionStore(services.db, allow_loopback=allow),
                           vapid=Vapid(services.keyring, subject), allow_loopback=allow)
