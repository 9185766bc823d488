"""The background batch writer of the audit chain (the web process's records).

Owns the queue and the one writer thread that appends queued records in
batches: a commit costs milliseconds of disk sync on PostgreSQL, and one per
token grant would cap the token endpoint at a few hundred requests a second,
while one per batch costs nothing noticeable. It survives a database outage
(records wait, with back-off), a record the database refuses (the batch is
retried one by one), and a fork (a forked worker starts its own thread on
first use). How a batch joins the chain is :class:`~idp.audit.AuditLog`'s
business: it hands in its ``append`` and ``committed`` steps.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import Database
from .records import Pending

__all__ = ["BatchWriter"]

logger = logging.getLogger(__name__)

Append = Callable[[Session, list[Pending]], list[dict[str, Any]]]
"""Appends a batch in the caller's transaction; returns the rows written, in order."""
Write = Callable[[list[Pending]], list[dict[str, Any]]]
"""Appends a batch in a transaction of its own; returns the rows written, in order."""
Committed = Callable[[int, int, str], None]
"""Told, after the commit, how many records went in and the new head's ``seq`` and MAC."""


class BatchWriter:
    """Queues records and appends them in batches on one thread per process."""

    def __init__(
        self,
        db: Database,
        append: Append,
        committed: Committed,
        *,
        write: Write | None = None,
        batch_max: int = 500,
        queue_max: int = 50_000,
        linger_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self._append = append
        self._write = write
        """When given, a batch is written by it rather than by ``append`` in a session of ``db``."""
        self._committed = committed
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.linger_seconds = linger_seconds
        """How long the writer waits for more records after the first of a batch.

        Without it every token grant under moderate load was a batch of one:
        five SQL round trips and the ORM's work per record, on a thread that
        competes for the GIL with the request threads (profiled: the writer
        took a fifth of the worker's CPU during SSO sign-ins). Records still
        reach the database within about this delay.
        """
        self._lock = threading.Lock()
        self._queue: queue.Queue[Pending | None] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def put(self, pending: Pending) -> None:
        """Queue one record; blocks when the queue is full (the database has been away long)."""
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                # first use, or first use in a forked worker: the parent's
                # thread did not survive the fork
                self._queue = queue.Queue(self.queue_max)
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="audit-writer", daemon=True
                )
                self._thread.start()
            q = self._queue
        assert q is not None
        q.put(pending)  # back-pressure rather than an unbounded queue

    def flush(self) -> None:
        """Wait until every queued record is in the database."""
        with self._lock:
            q = self._queue if self._pid == os.getpid() else None
        if q is not None:
            q.join()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        with self._lock:
            q, thread = (self._queue, self._thread) if self._pid == os.getpid() else (None, None)
            self._queue = self._thread = None
        if q is not None and thread is not None and thread.is_alive():
            q.put(None)
            thread.join(timeout=30)

    def _run(self, q: queue.Queue[Pending | None]) -> None:
        delay = 0.1
        while True:
            first = q.get()
            if first is None:
                q.task_done()
                return
            batch = [first]
            stop = False
            # Sleep through the linger, then take what came: a writer waiting on the queue
            # is woken by every put, a thread switch per record on a busy worker (the
            # request thread's put paid for it too); asleep, it wakes once per batch.
            if self.linger_seconds > 0 and q.qsize() < self.batch_max - 1:
                time.sleep(self.linger_seconds)
            while len(batch) < self.batch_max:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            while True:
                try:
                    rows = self._write_once(batch)
                    delay = 0.1
                    self._committed(len(rows), rows[-1]["seq"], rows[-1]["hash"])
                    break
                except (sa.exc.OperationalError, sa.exc.InterfaceError):
                    # the database is away: keep the records, try again later
                    logger.warning("audit writer: database unavailable, %d records waiting", len(batch))
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
                except Exception:
                    # a record the database refuses must not block the others
                    logger.exception("audit writer: batch refused, writing one by one")
                    self._write_singly(batch)
                    break
            for _ in range(len(batch) + (1 if stop else 0)):
                q.task_done()
            if stop:
                return

    def _write_once(self, batch: list[Pending]) -> list[dict[str, Any]]:
        if self._write is not None:
            return self._write(batch)
        with self.db.session() as s:
            return self._append(s, batch)

    def _write_singly(self, batch: list[Pending]) -> None:
        for p in batch:
            try:
                self._write_once([p])
            except Exception:
                logger.error("audit writer: dropped an unwritable %s record", p.kind, exc_info=True)
