"""The idp's web application: ``create_app`` binds the composition root to HTTP.

The services, session store, token service, provider and logout runtime come
from :class:`idp.container.Container` (built here unless given); this module
adds only the web pieces: the Authlib server (Flask integration) configured
by :func:`idp.oauth.server.configure_server`, the Flask application, the
blueprints and the WSGI hot path.

Blueprints per area — :mod:`.views_oauth` (authorize, token, userinfo,
introspection, revocation, PAR), :mod:`.views_auth` (login, second factor,
consent), :mod:`.views_wellknown` (discovery, JWKS, health) and
:mod:`.views_account` — plus, when present, the logout and device-flow
blueprints (``idp.web.logout``, ``idp.web.device``), which register
themselves through a module-level ``bp``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from flask import Flask

from keys.locale import install_jinja, translations
from keys.logs import RequestLog

from ..container import Container
from ..oauth.mtls import ForwardedCertificate, MtlsConfig
from ..oauth.server import configure_server
from ..settings import IdpSettings
from .common import FlowStore, IdpRuntime, current_session, page_language, remember_language
from .cors import CorsLayer
from .errors import install_error_handlers
from .hotpaths import HotPaths
from .metrics import HOT_ROUTES, install_metrics
from .oauth_server import YiwangAuthorizationServer
from .security import install_security

__all__ = ["create_app"]

_OPTIONAL_BLUEPRINTS = ("idp.web.logout", "idp.web.device", "idp.web.cas", "idp.web.views_staff", "idp.web.views_push", "idp.web.views_ciba",
                        "idp.web.views_passkeys")


def _session_id() -> str | None:
    """The SSO session a form's CSRF token is bound to (issue 19 §1)."""
    session = current_session(touch=False)
    return session.sid if session is not None else None


def create_app(settings: IdpSettings | None = None, *, services: Any = None,
               container: Container | None = None) -> Flask:
    """Build the idp application.

    ``settings`` default to the environment (this is an entry point, like
    the CLI); ``services`` default to :meth:`idp.services.Services.from_settings`;
    ``container`` (everything else) to :meth:`Container.build` on them.
    """
    if container is not None:
        services = container.services
        settings = settings or container.settings
    if settings is None:
        settings = services.settings if services is not None else IdpSettings.from_env(os.environ)
    if services is None:
        from ..services import Services

        services = Services.from_settings(settings)
    if container is None:
        container = Container.build(settings, services)
    provider = container.provider
    if provider is None:
        raise ValueError("create_app needs a container built with its provider")
    app = Flask(__name__)
    app.config["YW_CSRF_SECRET"] = services.keyring.secret("idp-cookie")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    secure = settings.issuer.startswith("https://")

    server = YiwangAuthorizationServer()
    server.init_app(app)
    mtls = MtlsConfig.from_settings(settings)
    configure_server(server, provider, mtls=mtls, ciba=container.ciba)

    app.extensions["yiwang"] = IdpRuntime(
        settings=settings, services=services, provider=provider, server=server,
        sessions=container.sessions, flows=FlowStore(services.redis, services.keyspace.base),
        logout=container.logout, secure_cookies=secure,
    )
    install_security(app, secure_cookies=secure, session_id=_session_id)
    install_error_handlers(app)
    install_metrics(app)  # GET /metrics, request latency by endpoint (issue 18)
    app.after_request(remember_language)
    install_jinja(app.jinja_env, page_language)  # _(), gettext, ngettext, |cst from keys/locale (issue 18)
    translations("zh-CN")  # the catalog is read at start: a broken .po stops the service here

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
    # CORS for browser apps (issue 21 §1), around both the hot path and Flask.
    app.wsgi_app = CorsLayer(app.wsgi_app, app.extensions["yiwang"])  # type: ignore[method-assign]
    # A request id in every log line and answer, one access line per request (issue 18).
    app.wsgi_app = RequestLog(app.wsgi_app, trust_header=settings.common.trust_request_id,  # type: ignore[method-assign]
                              access_log=settings.common.access_log, fixed_routes=HOT_ROUTES)
    if settings.trusted_proxies > 0:
        # Outermost, so the hot paths and Flask see the same client address.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]
    # Outside ProxyFix: the client-certificate header counts only from the TLS proxy itself (RFC 8705).
    app.wsgi_app = ForwardedCertificate(app.wsgi_app, mtls)  # type: ignore[method-assign]
    return app
