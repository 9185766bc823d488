"""Building the CIBA service for one process (called by :class:`idp.container.Container`).

The web process gets the whole :class:`~idp.ciba.service.CibaService`; every
process with a job queue (the web process and ``idp worker``) declares the
``ciba_ping`` actor on it (:func:`idp.ciba.ping.install_ping`), so whichever
worker takes a ping job can deliver it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from keys.errors import ConfigurationError

from .live import LiveNotifier
from .notify import Notifier
from .ping import PingDelivery, install_ping
from .request import CibaConfig
from .service import CibaService
from .store import CibaStore

__all__ = ["build_ciba", "config_of"]

logger = logging.getLogger(__name__)


def config_of(settings: Any) -> CibaConfig:
    interval, expiry = settings.ciba_interval_seconds, settings.ciba_expiry_seconds
    if not 1 <= interval <= 60:
        raise ConfigurationError("YIWANG_IDP_CIBA_INTERVAL_SECONDS must be 1 to 60",
                                 variable="YIWANG_IDP_CIBA_INTERVAL_SECONDS")
    base = CibaConfig()
    if not base.min_expiry <= expiry <= base.max_expiry:
        raise ConfigurationError("YIWANG_IDP_CIBA_EXPIRY_SECONDS must be 30 to 1800",
                                 variable="YIWANG_IDP_CIBA_EXPIRY_SECONDS")
    return CibaConfig(default_expiry=expiry, interval=interval)


def build_ciba(settings: Any, services: Any, *, provider: Any = None, logout: Any = None,
               notifiers: Sequence[Notifier] = ()) -> CibaService | None:
    """The service (``provider`` given), with pings on ``logout``'s queue; without a provider, only the actor."""
    prefix = services.keyspace.base
    store = CibaStore(services.redis, prefix)

    def client(client_id: str) -> Any:
        return provider.query_client(client_id) if provider is not None else services.clients.get(client_id)

    def audit(kind: str, **kw: Any) -> None:
        if services.audit is not None:
            try:
                services.audit.record(kind, **kw)
            except Exception:  # an audit failure never stops a ping
                logger.exception("audit record %s failed", kind)

    ping = PingDelivery(store=store, clients=client, timeout=settings.logout_timeout_seconds,
                        allow_loopback=settings.loopback_callbacks_allowed, audit=audit)
    if logout is not None:
        install_ping(logout.queue.broker, ping)
    if provider is None:
        return None
    return CibaService(store=store, live=LiveNotifier(services.redis, prefix), provider=provider,
                       accounts=services.accounts, config=config_of(settings), notifiers=tuple(notifiers),
                       ping=ping, audit=provider.audit)
