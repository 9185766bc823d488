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

__all__ = [
    "LogoutRuntime",
    "ProcessStack",
    "install_logout",
    "build_from_settings",
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

    ``tokens`` is the process's ``TokenService`` (the web app passes its
    provider's); without one, a token service is built for revocation only.
    """
    if tokens is None:
        from ..oauth.records import SqlTokenStore
        from ..oauth.tokens import TokenService

        tokens = TokenService(
            keyring=keyring,
            redis=redis,
            prefix=prefix,
            store=SqlTokenStore(database),
            issuer=settings.issuer,
            access_token_seconds=settings.access_token_seconds,
            client_credentials_seconds=settings.access_token_seconds,
            id_token_seconds=settings.id_token_seconds,
            refresh_token_seconds=settings.refresh_token_seconds,
        )
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


@dataclass
class ProcessStack:
    """The collaborators one process builds from its settings (CLI, worker)."""

    services: Any
    """``idp.services.Services``."""
    sessions: Any
    logout: LogoutRuntime

    @property
    def database(self) -> Any:
        return self.services.db

    @property
    def keyring(self) -> Any:
        return self.services.keyring

    def close(self) -> None:
        self.logout.close()
        self.services.close()


def build_from_settings(settings: IdpSettings) -> ProcessStack:
    """Services, session store and logout runtime for ``settings``."""
    from ..services import Services
    from ..sessions import SessionStore

    services = Services.from_settings(settings)
    sessions = SessionStore(
        services.redis,
        services.keyspace,
        settings.session_idle_seconds,
        settings.session_max_seconds,
    )
    runtime = install_logout(
        settings,
        database=services.db,
        redis=services.redis,
        prefix=services.keyspace.base,
        keyring=services.keyring,
        sessions=sessions,
    )
    return ProcessStack(services, sessions, runtime)


def end_sessions_after_password_change(settings: IdpSettings, citizen_id: int) -> int:
    """End every session of a citizen whose password changed (issue 4 §4: back-channel fires).

    For callers outside the web app (``idp users set-password``); deliveries
    go to the queue (drained here when it is the in-process one).
    """
    stack = build_from_settings(settings)
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
