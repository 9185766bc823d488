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
is marked ``Urgency: high`` (RFC 8030 §5.3).

Each push is a job on the idp's queue (actor ``ciba_webpush``, the logout
queue's broker, like the CIBA pings), so a slow push service never holds up
the CIBA request: a time-out, a refused connection, 429 or 5xx is retried
with backoff until the request expires; a subscription the push service
calls gone (404, 410) is forgotten; any other answer is final and logged
with the display id. Without a queue (a bare notifier) the push is sent at
once. Either way the request stays pending and the citizen still sees it on
the account page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dramatiq

from keys.http import FetchError, FetchFailed, FetchTimeout, bounded_request

from ..push.subscriptions import Subscription, SubscriptionStore
from ..push.vapid import Vapid
from .notify import PendingApproval

__all__ = ["WebPushNotifier", "payload_of", "build_webpush", "install_webpush", "PUSH_ACTOR"]

logger = logging.getLogger(__name__)

_KINDS = {"clerk": "counter", "agent": "hotline"}
_GONE = (404, 410)  # RFC 8030 §7.3: the subscription has expired or been removed
PUSH_ACTOR = "ciba_webpush"


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

    actor: dramatiq.Actor[Any, Any] | None = None
    """The queue's ``ciba_webpush`` actor (:func:`install_webpush`); ``None``: push at once."""

    def notify(self, pending: PendingApproval) -> None:
        now = int(self._clock())
        if pending.expires_at <= now:
            return
        payload = payload_of(pending)
        for sub in self.store.for_citizen(pending.account_id):
            if self.actor is not None:
                try:
                    self.actor.send(sub.id, payload, pending.expires_at, pending.display_id)
                    continue
                except Exception as e:  # the queue is away: this one push goes at once
                    logger.warning("could not queue a Web Push (%s); sending it now", type(e).__name__)
            self.deliver(sub, payload, pending.expires_at, pending.display_id)

    def attempt(self, subscription_id: int, payload: dict[str, Any], expires_at: int, display_id: str) -> str:
        """The ``ciba_webpush`` job: one push; raises ``TransientDelivery`` to be retried."""
        from ..logout.queue import TransientDelivery

        sub = self.store.get(subscription_id)
        if sub is None:
            return "gone"
        result = self.deliver(sub, payload, expires_at, display_id)
        if result == "retry" and expires_at > int(self._clock()):
            raise TransientDelivery("the push service did not take the message")
        return result

    def deliver(self, sub: Subscription, payload: dict[str, Any], expires_at: int, display_id: str) -> str:
        """Encrypt and POST one push: ``delivered``, ``gone`` (forgotten), ``expired``, ``retry`` or ``failed``."""
        from pywebpush import WebPusher, WebPushException

        now = int(self._clock())
        ttl = expires_at - now
        if ttl <= 0:
            return "expired"
        data = json.dumps(payload, separators=(",", ":")).encode()
        session = _BoundedSession(allow_loopback=self.allow_loopback, deadline=self.deadline)
        try:
            headers = {"Authorization": self.vapid.authorization(sub.endpoint, now), "Urgency": "high"}
            resp = WebPusher(sub.info(), requests_session=session).send(
                data, headers, ttl=ttl, content_encoding="aes128gcm")
        except (FetchTimeout, FetchFailed) as e:
            logger.info("Web Push for request %s to subscription %d: %s; retried", display_id, sub.id,
                        type(e).__name__)
            return "retry"
        except (FetchError, WebPushException, ValueError) as e:
            logger.warning("Web Push for request %s to subscription %d failed (%s)", display_id, sub.id,
                           type(e).__name__)
            return "failed"
        status = resp.status_code
        if status in _GONE:
            self.store.remove(sub.citizen_id, subscription_id=sub.id)
            logger.info("Web Push subscription %d is gone (%d): forgotten", sub.id, status)
            return "gone"
        if 200 <= status < 300:
            self.store.sent(sub.id)
            return "delivered"
        if status == 429 or status >= 500:
            return "retry"
        logger.warning("Web Push for request %s to subscription %d: push service answered %d",
                       display_id, sub.id, status)
        return "failed"


def install_webpush(broker: dramatiq.Broker, notifier: WebPushNotifier) -> dramatiq.Actor[Any, Any]:
    """Declare the ``ciba_webpush`` actor on the idp's broker (the logout queue's) for ``notifier``."""
    from ..logout.queue import QUEUE_NAME, _retry_when

    notifier.actor = dramatiq.Actor(
        notifier.attempt, broker=broker, actor_name=PUSH_ACTOR, queue_name=QUEUE_NAME, priority=0,
        options={"retry_when": _retry_when, "time_limit": 60_000},
    )
    return notifier.actor


def build_webpush(settings: Any, services: Any, *, logout: Any = None) -> WebPushNotifier | None:
    """The process's Web Push notifier, its pushes on ``logout``'s queue (``None`` without a keyring)."""
    if services.keyring is None:
        return None
    allow = settings.loopback_callbacks_allowed
    notifier = WebPushNotifier(store=SubscriptionStore(services.db, allow_loopback=allow),
                               vapid=Vapid(services.keyring, settings.issuer), allow_loopback=allow)
    if logout is not None:
        install_webpush(logout.queue.broker, notifier)
    return notifier
