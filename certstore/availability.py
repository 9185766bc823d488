"""Whether certstore's backing stores answer: one log line when one goes away, one when it returns.

During a database restart every request fails the same way; a stack trace
per request (issue 20 §2: 7,597 in one 77 s outage) buries the one fact an
operator needs. :class:`Availability` is a small process-wide state per store
(:data:`DATABASE`, :data:`REDIS`), thread-safe, that logs the transitions
only::

    database unavailable: read-only (SQLSTATE 25006)
    database available again after 3.2 s

What went wrong is an :class:`Outage`: its ``kind`` says what it blocks.
``unreachable`` blocks everything and any statement that succeeds ends it;
``read-only`` (a replica after a failover, ``default_transaction_read_only``)
blocks writes only, so reads that keep working do not end it, a write that
succeeds does. Who reports what: the web layer's error mapping
(:mod:`certstore.web.errors`) calls :meth:`Availability.lost` for each
request it answers 503; the database engine (:func:`certstore.db.make_engine`)
calls :meth:`Availability.answered` after each statement that succeeds, which
costs one attribute read while the store is up.

A single pooled connection that died under a request (the server restarted
between two requests; ``kind`` ``dropped``) fails that request with 503 too,
but is no outage by itself: the pool reconnects, and only when reconnecting
fails is the store unavailable. It gets at most one log line per
:data:`DROPPED_LOG_INTERVAL`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Availability",
    "DATABASE",
    "DROPPED_LOG_INTERVAL",
    "Outage",
    "REDIS",
    "RETRY_AFTER_SECONDS",
]

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
"""``Retry-After`` of a 503 for a store that is away: a restart takes about a second here."""
DROPPED_LOG_INTERVAL = 10.0
"""Seconds between two log lines about dropped connections (the pool replaces them)."""

OutageKind = Literal["unreachable", "read-only", "dropped"]


@dataclass(frozen=True)
class Outage:
    """Why a store did not answer: ``kind`` and a short reason with no data from the request."""

    kind: OutageKind
    reason: str


class Availability:
    """The up/down state of one backing store, shared by every thread of the process."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._kinds: set[OutageKind] = set()
        self._dropped_logged: float | None = None
        self.down = False
        """Whether the store is away (read without the lock: a stale answer only delays a transition)."""

    def lost(self, outage: Outage) -> None:
        """Report a failure; the first one of an outage is logged, the rest are counted by nobody."""
        now = self._clock()
        with self._lock:
            if outage.kind == "dropped":
                if self._dropped_logged is None or now - self._dropped_logged >= DROPPED_LOG_INTERVAL:
                    self._dropped_logged = now
                    logger.warning("%s connection lost (%s); reconnecting", self.name, outage.reason)
                return
            self._kinds.add(outage.kind)
            if self._since is not None:
                return
            self._since = now
            self.down = True
        logger.warning("%s unavailable: %s", self.name, outage.reason)

    def answered(self, *, wrote: bool = True) -> None:
        """Report a success: a read ends an ``unreachable`` outage, a write ends any."""
        if not self.down:
            return
        with self._lock:
            if self._since is None:
                return
            if wrote:
                self._kinds.clear()
            else:
                self._kinds.discard("unreachable")
            if self._kinds:
                return
            took = self._clock() - self._since
            self._since = None
            self.down = False
        logger.warning("%s available again after %.1f s", self.name, took)


DATABASE = Availability("database")
REDIS = Availability("redis")
