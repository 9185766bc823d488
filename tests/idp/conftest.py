"""Fixtures shared by the idp tests, beyond the per-test database and Redis of tests/conftest.py.

- ``redis_client``: a Redis client on this test's server (the in-process
  stand-in without ``YIWANG_TEST_REDIS_URL``), closed afterwards;
- ``app_with``: build another idp application on the test's services with
  some settings changed (``app_with(code_seconds=1)``);
- ``flask_reached``: which Flask views of the hot endpoints (token,
  introspection, userinfo) a test's requests reached — the WSGI hot path
  (idp.web.hotpaths) answers the usual ones without Flask;
- ``logout_rp``: a back-channel logout receiver listening on 127.0.0.1;
- :func:`private_idp`: an idp application on a private database and Redis
  prefix, for module-scoped fixtures (which cannot use the per-test ones).

The per-test OpenID Connect fixtures (``idp_settings``, ``idp_services``,
``app``, ``web``, ``citizen``, ``rp``) stay in tests/idp/oidc_helpers.py; the
fixtures here that take ``app`` or ``idp_services`` use those.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from idp.services import Services
from idp.settings import IdpSettings
from keys.keyring import open_keyring
from tests.conftest import TEST_REDIS_URL, private_database
from tests.idp.logout_helpers import LocalRP
from tests.idp.oidc_helpers import FAST_HASH

HOT_VIEWS = ("oauth.token", "oauth.introspect", "oauth.userinfo")


def close_app(app: Any) -> None:
    """Stop what an idp application started besides its services (the logout queue)."""
    runtime = app.extensions["yiwang"]
    if runtime.logout is not None:
        runtime.logout.close()


@pytest.fixture
def redis_client(redis_url: str | None) -> Iterator[Any]:
    if redis_url is None:
        import fakeredis

        client = fakeredis.FakeRedis()
    else:
        client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app_with(idp_settings: IdpSettings, idp_services: Services) -> Iterator[Callable[..., Any]]:
    """``app_with(**settings)``: an idp application on the test's services, with those settings changed."""
    from idp.web import create_app

    built: list[Any] = []

    def build(**changes: Any) -> Any:
        app = create_app(idp_settings.with_(**changes), services=idp_services)
        app.config["TESTING"] = False  # error handlers behave as in production
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app)


@pytest.fixture
def flask_reached(app: Any) -> list[str]:
    """The Flask views of the hot endpoints that requests reached, in order."""
    reached: list[str] = []
    for name in HOT_VIEWS:
        original = app.view_functions[name]

        def tripwire(*a: Any, _name: str = name, _orig: Any = original, **kw: Any) -> Any:
            reached.append(_name)
            return _orig(*a, **kw)

        app.view_functions[name] = tripwire
    return reached


@pytest.fixture
def logout_rp() -> Iterator[LocalRP]:
    """A back-channel logout receiver, listening."""
    server = LocalRP().start()
    yield server
    server.stop()


@dataclass
class PrivateIdp:
    settings: IdpSettings
    services: Services
    app: Any


@contextlib.contextmanager
def private_idp(root: Path, *, issuer: str, allow_insecure_http: bool = False) -> Iterator[PrivateIdp]:
    """An idp application with its own database and Redis prefix, all of it removed afterwards.

    ``allow_insecure_http``: the opt-in a plain-http issuer other than
    loopback needs (issue 19 §9).
    """
    prefix = "t" + uuid.uuid4().hex[:12] + ":"
    with private_database(root) as url:
        env = {"YIWANG_HOME": str(root / "home"), "YIWANG_DATABASE_URL": url, "YIWANG_REDIS_PREFIX": prefix,
               "YIWANG_ISSUER": issuer}
        if allow_insecure_http:
            env["YIWANG_ALLOW_INSECURE_HTTP"] = "1"
        if TEST_REDIS_URL:
            env["YIWANG_REDIS_URL"] = TEST_REDIS_URL
        settings = IdpSettings.from_env(env).with_(**FAST_HASH)
        keyring = open_keyring(settings.common.keys)
        services = Services.build(settings, pii=keyring.pii(), keyring=keyring)
        try:
            services.db.create_all()
            from idp.web import create_app

            app = create_app(settings, services=services)
            app.config["TESTING"] = False  # error handlers behave as in production
            try:
                yield PrivateIdp(settings, services, app)
            finally:
                close_app(app)
        finally:
            keys = list(services.redis.scan_iter(match=prefix + "*", count=1000))
            if keys:
                services.redis.delete(*keys)
            services.close()
