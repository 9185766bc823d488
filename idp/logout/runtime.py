"""Wiring: the logout service, its job queue, and the session-end hook, in one call.

The composition root (:class:`idp.container.Container`, used by ``create_app``,
``idp worker`` and the CLI commands that end sessions) calls
:func:`install_logout` once per process with the process's session store and
token service; tests call it again with fresh objects to play an idp restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq

from ..settings import IdpSettings
from .delivery import LogoutService
from .queue import JobQueue

__all__ = [
    "LogoutRuntime",
    "install_logout",
    "end_sessions_after_password_change",
]

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
    tokens: Any | None = None,
) -> LogoutRuntime:
    """Build the logout service and queue and hook them to ``sessions``' end events.

    ``tokens`` is the process's ``TokenService`` (the composition root passes
    the one it built); without one, one is built here for revocation only.
    """
    if tokens is None:
        from ..oauth.provider import ProviderConfig, build_token_service

        tokens = build_token_service(ProviderConfig.from_settings(settings), db=database, redis=redis,
                                     keyspace=prefix, keyring=keyring)
    service = LogoutService(
        settings,
        database=database,
        signer=lambda alg: (
            keyring.keyset("idp-token-rs256", algorithm="RS256").active()
            if alg == "RS256"
            else keyring.keyset("idp-token").active()
        ),
        pairwise_salt=keyring.secret("pairwise-salt"),
        sessions=sessions,
        tokens=tokens,
    )
    queue = JobQueue(settings, service, redis=redis, prefix=prefix, broker=broker)
    service.queue = queue
    if sessions is not None:
        sessions.on_session_end(service.session_ended)
    return LogoutRuntime(service=service, queue=queue)


def end_sessions_after_password_change(settings: IdpSettings, citizen_id: int) -> int:
    """End every session of a citizen whose password changed (issue 4 §4: back-channel fires).

    For callers outside the web app (``idp users set-password``); deliveries
    go to the queue (drained here when it is the in-process one).
    """
    from ..container import Container

    stack = Container.from_settings(settings, provider=False)
    try:
        ended = stack.sessions.end_all_for_citizen(str(citizen_id), "password_change")
        if ended and stack.logout.queue.in_process:
            stack.logout.queue.start_worker(sweep=False)
            try:
                stack.logout.queue.join(timeout_ms=10_000)
            except Exception:  # still pending: recovered by the next worker start
                logger.info("some logout deliveries are still pending")
        return len(ended)
    finally:
        stack.close()
