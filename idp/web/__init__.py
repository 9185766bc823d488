"""The idp's web application: ``create_app`` is the one place that wires everything.

Blueprints per area — :mod:`.views_oauth` (authorize, token, userinfo,
introspection, revocation, PAR), :mod:`.views_auth` (login, second factor,
consent), :mod:`.views_wellknown` (discovery, JWKS, health) and
:mod:`.views_account` — plus, when present, the logout and device-flow
blueprints (``idp.web.logout``, ``idp.web.device``), which register
themselves through a module-level ``bp``.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from flask import Flask

from ..oauth.provider import Provider, ProviderConfig
from ..oauth.server import configure_server
from ..sessions import SessionStore
from ..settings import IdpSettings
from .common import FlowStore, IdpRuntime, current_session, remember_language
from .errors import install_error_handlers
from .hotpaths import HotPaths
from .oauth_server import YiwangAuthorizationServer
from .security import install_security

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_OPTIONAL_BLUEPRINTS = ("idp.web.logout", "idp.web.device")


def _session_id() -> str | None:
    """The SSO session a form's CSRF token is bound to (issue 19 §1)."""
    session = current_session(touch=False)
    return session.sid if session is not None else None


def create_app(settings: IdpSettings | None = None, *, services: Any = None) -> Flask:
    """Build the idp application.

    ``settings`` default to the environment (this is an entry point, like
    the CLI); ``services`` default to :meth:`idp.services.Services.from_settings`.
    """
    if settings is None:
        settings = services.settings if services is not None else IdpSettings.from_env(os.environ)
    if services is None:
        from ..services import Services

        services = Services.from_settings(settings)
    app = Flask(__name__)
    app.config["YW_CSRF_SECRET"] = services.keyring.secret("idp-cookie")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    secure = settings.issuer.startswith("https://")

    sessions = SessionStore(
        services.redis, services.keyspace, settings.session_idle_seconds, settings.session_max_seconds
    )
    config = ProviderConfig(
        issuer=settings.issuer,
        access_token_seconds=settings.access_token_seconds,
        client_credentials_seconds=settings.client_credentials_seconds,
        id_token_seconds=settings.id_token_seconds,
        refresh_token_seconds=settings.refresh_token_seconds,
        code_seconds=settings.code_seconds,
        par_seconds=settings.par_seconds,
        require_par=settings.require_par,
    )
    provider = Provider(
        config, db=services.db, redis=services.redis, keyspace=services.keyspace,
        keyring=services.keyring, sessions=sessions, audit=services.audit,
    )
    server = YiwangAuthorizationServer()
    server.init_app(app)
    configure_server(server, provider)

    logout = None
    try:
        from ..logout.runtime import install_logout

        logout = install_logout(
            settings, database=services.db, redis=services.redis, prefix=services.keyspace.base,
            keyring=services.keyring, sessions=sessions,
        )
    except ImportError:  # pragma: no cover - logout not installed
        logger.warning("single sign-out is not available (idp.logout missing)")

    app.extensions["yiwang"] = IdpRuntime(
        settings=settings, services=services, provider=provider, server=server,
        sessions=sessions, flows=FlowStore(services.redis, services.keyspace.base),
        logout=logout, secure_cookies=secure,
    )
    install_security(app, secure_cookies=secure, session_id=_session_id)
    install_error_handlers(app)
    app.after_request(remember_language)

    from . import openapi, views_account, views_auth, views_oauth, views_wellknown

    for module in (views_wellknown, openapi, views_oauth, views_auth, views_account):
        app.register_blueprint(module.bp)
    for name in _OPTIONAL_BLUEPRINTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        app.register_blueprint(module.bp)
    # The token, introspection and userinfo endpoints skip Flask (see .hotpaths).
    app.wsgi_app = HotPaths(app.wsgi_app, app.extensions["yiwang"])  # type: ignore[method-assign]
    if settings.trusted_proxies > 0:
        # Outermost, so the hot paths and Flask see the same client address.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]
    return app
