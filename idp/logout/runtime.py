"""Wiring: the logout service, its job queue, and the session-end hook, in one call.

``create_app``, ``idp worker`` and the CLI commands that end sessions call
:func:`install_logout` once per process; tests call it again with fresh
objects to play an idp restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq

from ..settings import IdpSettings
from .delivery import LogoutService
from .queue import JobQueue

__all__ = ["LogoutRuntime", "install_logout"]

logger = logging.getLogger(__name__)


@dataclass
class LogoutRuntime:
    """What a process needs for single sign-out."""

    service: LogoutService
    queue: JobQueue

    def start_worker(self, *, threads: int = 2, sweep: bool = True) -> dramatiq.Worker:
        """Start the in-process worker; first re-queue deliveries whose job was lost."""
        self.service.resend_pending(only_lost=True)
        return self.queue.start_worker(threads=threads, sweep=sweep)

    def close(self) -> None:
        self.queue.close()


def install_logout(
    settings: IdpSettings,
    *,
    database: Any,
    redis: Any,
    prefix: str,
    keyring: Any,
    sessions: Any | None = None,
    broker: dramatiq.Broker | None = None,
) -> LogoutRuntime:
    """Build the logout service and queue and hook them to ``sessions``' end events."""
    service = LogoutService(
        settings,
        database=database,
        signer=lambda: keyring.keyset("idp-token").active(),
        pairwise_salt=keyring.secret("pairwise-salt"),
        sessions=sessions,
    )
    queue = JobQueue(settings, service, redis=redis, prefix=prefix, broker=broker)
    service.queue = queue
    if sessions is not None:
        sessions.on_session_end(service.session_ended)
    return LogoutRuntime(service=service, queue=queue)
