"""The idp's composition root: every service one process uses, built once, here.

:class:`Container` builds, in this order, the domain services
(:class:`~idp.services.Services`: database, Redis, keyring, audit log,
accounts, clients, throttle), the SSO :class:`~idp.sessions.SessionStore`,
the one :class:`~idp.oauth.tokens.TokenService`, the OpenID provider
(:class:`~idp.oauth.provider.Provider` with its code, PAR and device-code
stores) and the single sign-out runtime (:func:`idp.logout.runtime.install_logout`:
logout service and job queue, hooked to the session store's end events).

Who uses it:

- the web application: :func:`idp.web.create_app` hands the provider to the
  Authlib server (:func:`idp.oauth.server.configure_server`) and the whole
  runtime to the Flask views and to the WSGI hot path (:mod:`idp.web.hotpaths`);
- the worker and the CLI (``idp worker``, ``idp logout …``, ``idp sessions …``,
  ``idp users set-password``): :meth:`Container.from_settings` with
  ``provider=False`` (they end sessions and deliver logout tokens, and
  issue nothing).

Nothing here knows Flask; the web layer adds the HTTP binding only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .logout.runtime import LogoutRuntime, install_logout
from .oauth.provider import Provider, ProviderConfig, build_token_service
from .services import Services
from .sessions import SessionStore

if TYPE_CHECKING:
    from .oauth.tokens import TokenService
    from .settings import IdpSettings

__all__ = ["Container"]


@dataclass
class Container:
    """The collaborators of one idp process."""

    settings: IdpSettings
    services: Services
    sessions: SessionStore
    tokens: TokenService
    provider: Provider | None
    """``None`` in processes that issue nothing (worker, CLI)."""
    logout: LogoutRuntime | None
    actors: Any = None
    """``idp.staff.actor.ActorResolver``: the clerk or agent behind a CIBA ``actor_token`` (with the provider)."""

    ciba: Any = None
    """``idp.ciba.service.CibaService`` (with the provider); the ``ciba_ping`` actor is on the logout queue."""

    def __post_init__(self) -> None:
        if self.ciba is None:  # issue 13 §1: CIBA (idp.ciba.runtime)
            from .ciba.runtime import build_ciba
            from .ciba.webpush import build_webpush

            # Notifiers besides the embedded live one: Web Push to the citizen's subscribed devices.
            # (every process with the queue declares its actor: the worker sends the pushes too)
            push = build_webpush(self.settings, self.services, logout=self.logout)
            self.ciba = build_ciba(self.settings, self.services, provider=self.provider, logout=self.logout,
                                   notifiers=[push] if push is not None and self.provider is not None else [])

    @classmethod
    def from_settings(cls, settings: IdpSettings, *, provider: bool = True, logout: bool = True) -> Container:
        """Open the database, Redis and keyring named by ``settings`` and build the rest on them."""
        return cls.build(settings, Services.from_settings(settings), provider=provider, logout=logout)

    @classmethod
    def build(
        cls,
        settings: IdpSettings,
        services: Services,
        *,
        provider: bool = True,
        logout: bool = True,
        broker: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> Container:
        """Build on ``services``; ``settings`` may differ from ``services.settings`` (tests vary a setting)."""
        sessions = SessionStore(
            services.redis, services.keyspace, settings.session_idle_seconds, settings.session_max_seconds
        )
        config = ProviderConfig.from_settings(settings)
        tokens = build_token_service(config, db=services.db, redis=services.redis, keyspace=services.keyspace,
                                     keyring=services.keyring, clock=clock)
        # The provider's session-end hook is registered before logout's, as it always was:
        # tokens are revoked first, then the relying parties are told.
        oidc = Provider(
            config, db=services.db, redis=services.redis, keyspace=services.keyspace,
            keyring=services.keyring, sessions=sessions, audit=services.audit, tokens=tokens, clock=clock,
        ) if provider else None
        runtime = install_logout(
            settings, database=services.db, redis=services.redis, prefix=services.keyspace.base,
            keyring=services.keyring, sessions=sessions, broker=broker, tokens=tokens,
        ) if logout else None
        actors = None
        if oidc is not None:  # issue 13 §1: staff accounts act for citizens (idp.staff.actor)
            from .staff.accounts import StaffService
            from .staff.actor import ActorResolver, install

            actors = ActorResolver(tokens=tokens, staff=StaffService.of(services), issuer=config.issuer)
            install(actors)
        return cls(settings=settings, services=services, sessions=sessions, tokens=tokens,
                   provider=oidc, logout=runtime, actors=actors)

    def close(self) -> None:
        """Stop the logout queue and close the services (CLI and worker processes, at exit)."""
        if self.logout is not None:
            self.logout.close()
        self.services.close()
