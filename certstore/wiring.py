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
from .tokens import HttpJwksSource, JwksSource, TokenValidator

__all__ = ["Services", "build_services"]


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
    )
    return Services(settings, engine, sessions, keyring, registry, certificates, tokens)
