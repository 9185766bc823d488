"""Builds the idp's domain services from the settings, in one place.

:class:`Services` holds what every idp process needs — database, Redis,
keyring, PII protector, password hasher, audit log, accounts, clients,
throttle. The composition root :class:`idp.container.Container` builds the
rest (session store, token service, provider, logout runtime) on top of it;
the web application, the worker and the CLI take their services from there
or from :meth:`Services.from_settings`, and views and commands ask for a
service, never build one (Warehouse's pattern). Tests build a
:class:`Services` with :meth:`Services.build` and their own PII protector,
database URL and Redis prefix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keys.pii import PiiProtector

from .accounts import AccountService
from .audit import AuditLog
from .clients import ClientService
from .db import Database
from .passwords import PasswordHasher
from .redis import Keyspace, connect_redis
from .throttle import Throttle, make_throttle_storage

if TYPE_CHECKING:
    import redis as redis_lib

    from .settings import IdpSettings

__all__ = ["Services"]

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """The idp's collaborators for one process."""

    settings: IdpSettings
    db: Database
    redis: redis_lib.Redis
    keyspace: Keyspace
    keyring: Any
    """``keys.keyring.Keyring`` (``None`` only in tests that need no signing keys)."""
    pii: PiiProtector
    hasher: PasswordHasher
    audit: AuditLog
    accounts: AccountService
    clients: ClientService
    throttle: Throttle

    @classmethod
    def from_settings(cls, settings: IdpSettings) -> Services:
        """Open the database, Redis and the keyring named by ``settings``.

        Audit records written outside a transaction go through the
        background writer (see :class:`~idp.audit.AuditLog`).
        """
        from keys.keyring import open_keyring

        keyring = open_keyring(settings.common.keys)
        return cls.build(settings, keyring=keyring, pii=keyring.pii(), audit_background=True)

    @classmethod
    def build(
        cls,
        settings: IdpSettings,
        *,
        pii: PiiProtector,
        keyring: Any = None,
        db: Database | None = None,
        redis_client: redis_lib.Redis | None = None,
        audit_background: bool = False,
    ) -> Services:
        """Wire the services; ``audit_background`` batches audit writes (web and worker processes)."""
        db = db or Database(settings.database_url, pool_size=settings.database_pool_size)
        client = redis_client or connect_redis(settings)
        keyspace = Keyspace(settings.common.redis_prefix)
        hasher = PasswordHasher(
            memory_kib=settings.password_hash_memory_kib,
            iterations=settings.password_hash_iterations,
        )
        audit = AuditLog(
            db,
            background=audit_background,
            keyring=keyring,
            anchor_path=settings.audit_anchor_path if keyring is not None else None,
        )
        throttle = Throttle(make_throttle_storage(settings, client, keyspace), redis=client)
        accounts = AccountService(db, pii, hasher, audit=audit, throttle=throttle)
        clients = ClientService(db, audit=audit, allow_loopback_callbacks=settings.loopback_callbacks_allowed)
        return cls(
            settings=settings,
            db=db,
            redis=client,
            keyspace=keyspace,
            keyring=keyring,
            pii=pii,
            hasher=hasher,
            audit=audit,
            accounts=accounts,
            clients=clients,
            throttle=throttle,
        )

    def close(self) -> None:
        self.audit.close()
        self.db.dispose()
        try:
            self.redis.close()
        except Exception:  # closing is best effort at shutdown
            logger.debug("closing Redis failed", exc_info=True)
