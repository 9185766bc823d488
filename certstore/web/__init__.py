"""certstore's web application: the JSON API, the public verify page, PKI and trust files.

``create_app`` is the one place that wires everything (Flask tutorial,
Warehouse): tests pass their own settings and services.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, request

from keys.logs import RequestLog

from ..availability import REDIS
from ..settings import CertstoreSettings
from ..wiring import Services, build_services
from .errors import register_error_handlers

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

# No inline script or style anywhere (issue 5: strict CSP on the verify page).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _personal(path: str) -> bool:
    """Paths whose answers may carry personal data (the API and the wallet, not its static files)."""
    if path.startswith("/api/v1/"):
        return True
    return (path == "/wallet" or path.startswith("/wallet/")) and not path.startswith("/wallet/static/")


def create_app(settings: CertstoreSettings | None = None, *, services: Services | None = None) -> Flask:
    if settings is None:
        settings = services.settings if services is not None else CertstoreSettings.from_env(os.environ)
    if services is None:
        services = build_services(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_upload_bytes
    # Signs the wallet's session cookie (issue 6); stable across restarts and instances.
    app.config["SECRET_KEY"] = services.keyring.secret("certstore-cookie")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.public_url.startswith("https://")
    if app.config["SESSION_COOKIE_SECURE"]:
        # Secure, Path=/, no Domain: no sibling subdomain can plant its own sign-in state (issue 19 §1).
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["certstore"] = services

    from . import api, health, lifecycle, offline, public, wallet, wallet_pages

    app.register_blueprint(api.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(lifecycle.bp)  # issue 6: status changes, status lists, signed trust list
    app.register_blueprint(wallet.bp)  # issue 6: consented sharing and lookups
    app.register_blueprint(wallet_pages.bp)  # issue 6: the citizen's wallet (OIDC sign-in)
    wallet_pages.init_wallet(app)
    app.register_blueprint(offline.bp)  # issue 6: QR verification in the browser, offline
    app.register_blueprint(health.bp)  # issue 20 §2: /healthz, /readyz
    from . import vci

    app.register_blueprint(vci.bp)  # issue 15 §1: OpenID4VCI issuer (SD-JWT VCs)
    from . import vp

    app.register_blueprint(vp.bp)  # issue 15 §2: the OpenID4VP verifier (wallet endpoints, counter page)
    app.register_blueprint(vp.api_bp)
    vp.init_vp(app)
    from . import holder_issue

    holder_issue.install(app)  # issue 15 §2: our wallet's holder receiving by signing in (authorization code)
    register_error_handlers(app)
    from .language import install_language

    install_language(app)  # issue 18: _() from the shared catalog (keys/locale), the idp's language switch
    # issue 18: /metrics and request latency; the API reference at /api/docs
    from . import apidocs, metrics

    metrics.install_metrics(app)
    apidocs.install(app)

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if _personal(request.path):
            # certificates, access logs, holders' names: never in a shared or browser cache
            resp.headers["Cache-Control"] = "no-store"
        if REDIS.down and request.blueprint == "wallet" and request.endpoint != "wallet.static" and resp.status_code < 500:
            REDIS.answered()  # the wallet's sessions live in Redis: it answered again (issue 20 §2)
        return resp

    # A request id in every log line and answer, one access line per request (issue 18).
    app.wsgi_app = RequestLog(app.wsgi_app, trust_header=settings.common.trust_request_id,  # type: ignore[method-assign]
                              access_log=settings.common.access_log)
    return app
