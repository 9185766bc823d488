"""Ping mode (CIBA Core 1.0 §10.2): tell the client's notification endpoint that a result is ready.

After the citizen approves or denies, the OP POSTs ``{"auth_req_id": …}``
(``application/json``) to the client's registered
``backchannel_client_notification_endpoint`` with the request's
``client_notification_token`` as a bearer token; the client then fetches the
result at the token endpoint. The callbacks go through the idp's job queue
(:class:`idp.logout.queue.JobQueue`'s broker, actor ``ciba_ping``) with the
back-channel logout deliveries' retries: a 5xx, time-out or refused
connection raises :class:`~idp.logout.queue.TransientDelivery` and the
``Retries`` middleware tries again with backoff until the request expires;
any other answer but 2xx is final. The address is checked again at each
attempt (https, or loopback in the embedded demo; never private addresses),
and the answer is read the same bounded way (:data:`idp.logout.http.ANSWER_BYTES`).

The job's message holds the request's hash only; the ``auth_req_id`` and
the token are read from the pending request in Redis, so a request already
redeemed (or expired) ends its retries. Unlike a logout delivery there is no
SQL row behind the job: the request itself lives in Redis (at most 30
minutes), so a Redis that lost the job has lost the request too, and a client
that misses a ping can still poll.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import dramatiq

from ..logout.http import Outcome, post_once
from ..logout.queue import QUEUE_NAME, TransientDelivery
from ..netpolicy import check_outbound_url

__all__ = ["PING_ACTOR", "ENDPOINT_ATTRIBUTE", "PingDelivery", "post_ping", "install_ping"]

logger = logging.getLogger(__name__)

PING_ACTOR = "ciba_ping"
ENDPOINT_ATTRIBUTE = "backchannel_client_notification_endpoint"


def post_ping(uri: str, auth_req_id: str, token: str, *, timeout: float, allow_loopback: bool) -> Outcome:
    """One ping callback, classified like a back-channel logout POST (:mod:`idp.logout.http`)."""
    try:
        check_outbound_url(uri, allow_loopback=allow_loopback)
    except ValueError as e:
        return Outcome("failed", f"not sent: {e}")
    return post_once(uri, json.dumps({"auth_req_id": auth_req_id}).encode(), {
        "Content-Type": "application/json", "Authorization": f"Bearer {token}",
        "User-Agent": "Yiwang-idp CIBA ping", "Cache-Control": "no-store",
    }, timeout=timeout, allow_loopback=allow_loopback)


class PingDelivery:
    """The ``ciba_ping`` job body, and how to enqueue one."""

    def __init__(self, *, store: Any, clients: Any, timeout: float, allow_loopback: bool,
                 audit: Any = None) -> None:
        """``store``: :class:`~idp.ciba.store.CibaStore`; ``clients(client_id)`` → the Client or ``None``."""
        self.store = store
        self._clients = clients
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        self._audit = audit
        self.actor: Any = None

    def enqueue(self, h: str) -> None:
        if self.actor is None:
            logger.warning("no job queue for CIBA pings; the client must poll")
            return
        try:
            self.actor.send(h)
        except Exception:
            logger.exception("could not queue a CIBA ping; the client must poll")

    def attempt(self, h: str) -> str:
        """One callback for the request hashed ``h``; the outcome (raises to retry)."""
        target = self.store.ping_target(h)
        if target is None:
            return "gone"  # redeemed or expired: nothing to tell
        client = self._clients(target["client_id"])
        uri = client.attribute(ENDPOINT_ATTRIBUTE) if client is not None else None
        if not uri:
            return "gone"
        outcome = post_ping(uri, target["auth_req_id"], target["notification_token"], timeout=self.timeout,
                            allow_loopback=self.allow_loopback)
        if self._audit is not None:
            self._audit("ciba.ping", client_id=target["client_id"],
                        detail={"result": outcome.result, "detail": outcome.detail})
        if outcome.result == "retry" and int(target["expires_at"]) > self.store.now():
            raise TransientDelivery(outcome.detail)
        if outcome.result != "delivered":
            logger.warning("CIBA ping to client %s: %s (%s)", target["client_id"], outcome.result, outcome.detail)
        return outcome.result


def install_ping(broker: dramatiq.Broker, delivery: PingDelivery) -> Any:
    """Declare the ``ciba_ping`` actor on the idp's broker (the logout queue's) for ``delivery``."""
    from ..logout.queue import _retry_when

    delivery.actor = dramatiq.Actor(
        delivery.attempt, broker=broker, actor_name=PING_ACTOR, queue_name=QUEUE_NAME, priority=0,
        options={"retry_when": _retry_when, "time_limit": 60_000},
    )
    return delivery.actor
