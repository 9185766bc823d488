"""Userinfo snapshots written in the background, many per Redis round trip (issue 16).

A snapshot (``tok:ui:<jti>``, :meth:`idp.oauth.tokens.TokenService.save_snapshot`)
is a cache: userinfo reads the database when it is missing
(:func:`idp.oauth.endpoints.userinfo_claims`), so a grant need not wait for it.
The refresh grant, whose only Redis write it is, hands it to this writer
instead of spending a round trip of its own: one thread per process takes
what is queued and sends it as one pipeline. A snapshot lost to a Redis
failure or a crash only sends that token's userinfo to the database.

Nothing that guards anything goes this way: revocation markers, the code's
used marker and sessions are written in the request, as before.

The writer lingers :attr:`SnapshotWriter.linger_seconds` after the first
snapshot of a batch for more, as the audit writer does: under load a batch
of one or two per round trip cost the refresh grant about a tenth of its
process's CPU (the pipeline, the socket and the thread's wake-up are per
batch). A userinfo request in that window reads the database instead.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

__all__ = ["SnapshotWriter"]

logger = logging.getLogger(__name__)


class SnapshotWriter:
    """``put(key, value, ttl)`` now, ``SET key value EX ttl`` soon, batched."""

    max_batch = 500
    linger_seconds = 0.02
    """How long the writer waits for more snapshots after the first of a batch."""

    def __init__(self, redis: Any, *, linger_seconds: float | None = None) -> None:
        self._r = redis
        if linger_seconds is not None:
            self.linger_seconds = linger_seconds
        self._q: queue.SimpleQueue[tuple[str, str, int] | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()

    def put(self, key: str, value: str, ttl: int) -> None:
        self._ensure_thread()
        with self._idle:
            self._pending += 1
        self._q.put((key, value, max(1, ttl)))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was sent (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _ensure_thread(self) -> None:
        # Started on first use and again in a forked worker (a thread does not survive fork).
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                if self._pid != os.getpid():
                    self._q = queue.SimpleQueue()
                    self._pending = 0
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="userinfo-snapshots", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._q
        while True:
            item = q.get()
            batch = [item]
            # Asleep through the linger, not waiting on the queue: every put would wake a
            # waiting writer (a thread switch per snapshot); a sleeping one wakes once per batch.
            if self.linger_seconds > 0 and q.qsize() < self.max_batch - 1:
                time.sleep(self.linger_seconds)
            while len(batch) < self.max_batch:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if b is not None]
            try:
                pipe = self._r.pipeline(transaction=False)
                for key, value, ttl in items:
                    pipe.set(key, value, ex=ttl)
                pipe.execute()
            except Exception as e:  # a cache: userinfo reads the database without it
                logger.warning("%d userinfo snapshot(s) not written (%s)", len(items), type(e).__name__)
            with self._idle:
                self._pending -= len(items)
                self._idle.notify_all()
