"""Building certstore's collaborators from settings, in one place.

The web app (``create_app``) and the CLI both call :func:`build_services`;
tests build their own :class:`Services` with a static JWKS source and a
fixed clock. Views and commands ask for a service, they never build one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from keys.keyring import Keyring, open_keyring

from .db import make_engine, make_session_factory
from .registry import Registry
from .service import CertificateService
from .settings import CertstoreSettings
from .tokens import (
    HttpIntrospector,
    HttpJwksSource,
    IntrospectionCache,
    Introspector,
    JwksSource,
    TokenValidator,
)

__all__ = ["Services", "build_services", "introspection_for"]


@dataclass
class Services:
    settings: CertstoreSettings
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    registry: Registry
    certificates: CertificateService
    tokens: TokenValidator

    def close(self) -> None:
        self.engine.dispose()


def build_services(
    settings: CertstoreSettings,
    *,
    jwks_source: JwksSource | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    engine: Engine | None = None,
    introspector: Introspector | None = None,
) -> Services:
    engine = engine or make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    keyring = open_keyring(settings.common.keys)
    registry = Registry(sessions, keyring)
    kwargs = {"clock": clock} if clock is not None else {}
    certificates = CertificateService(settings, sessions, keyring, registry=registry, **kwargs)
    tokens = TokenValidator(
        jwks_source or HttpJwksSource(settings.common.issuer),
        issuer=settings.common.issuer,
        audience=settings.audience,
        introspection=introspection_for(settings, introspector),
    )
    return Services(settings, engine, sessions, keyring, registry, certificates, tokens)


def introspection_for(settings: CertstoreSettings, introspector: Introspector | None = None) -> IntrospectionCache | None:
    """The revocation check (RFC 7662 at the idp, ``introspection_cache_seconds`` bound), if certstore can ask."""
    if introspector is None and settings.client_id and settings.client_secret:
        introspector = HttpIntrospector(f"{settings.common.issuer}/introspect", settings.client_id, settings.client_secret)
    if introspector is None:
        return None  # TokenValidator warns on first use: revocation then waits for expiry
    return IntrospectionCache(introspector, positive_ttl=settings.introspection_cache_seconds)
