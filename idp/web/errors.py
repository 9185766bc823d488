"""Every failure becomes a clean answer: no stack trace ever reaches a client.

Protocol errors are answered by Authlib's endpoints and
:func:`idp.web.views_oauth.oauth_error_response`; this module maps the rest:
input refused before parsing (400/413 ``invalid_request``), HTTP errors, the
database or Redis being down (503 with ``Retry-After``), and anything
unexpected (a generic 500 with no detail; the trace goes to the log only).

Who gets what is decided in one place, :func:`_wants_json`: the API
endpoints (token, userinfo, introspection, revocation, PAR, device
authorization, discovery, JWKS, health) always answer JSON — problem JSON
for an outage — and so does a client that prefers JSON; a browser on a page
(authorize, login, consent, device, account, logout) gets the error page in
its language (issue 20 §6: an outage once showed citizens raw JSON).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, make_response, request
from werkzeug.exceptions import HTTPException

from keys.locale import N_

from ..errors import IdpError
from .i18n import register
from .security import InputRejected

__all__ = ["install_error_handlers"]

logger = logging.getLogger(__name__)

_API_PREFIXES = ("/token", "/userinfo", "/introspect", "/revoke", "/par", "/jwks.json",
                 "/.well-known", "/device/authorize", "/device_authorization", "/healthz", "/readyz",
                 "/openapi.json")
"""Machine endpoints. Not ``/device`` itself: that is the citizen's page for the user code."""

RETRY_AFTER = "5"
"""Seconds a client is asked to wait after an outage answer (Redis returns within ~0.02 s of restarting)."""

MESSAGES: dict[str, str] = {
    # key → English msgid; the Chinese is in keys/locale/zh_CN/LC_MESSAGES/messages.po
    'error_unavailable': N_('The service is briefly unavailable. Please reload the page in a few seconds.'),
}
register(MESSAGES)


def _wants_json() -> bool:
    if request.path.startswith(_API_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _page(status: int, message: str, title: str = "error_title") -> Any:
    from .common import render

    try:
        return render("error.html", status, message=message, detail=None, title=title)
    except Exception:  # rendering itself failed: plain text, still no trace
        return ("error", status, {"Content-Type": "text/plain; charset=utf-8"})


def _is_outage(exc: BaseException) -> bool:
    try:
        import sqlalchemy.exc as sa_exc
    except ImportError:  # pragma: no cover
        return False
    from keys.redis_urls import (
        UNAVAILABLE as REDIS_UNAVAILABLE,  # also Sentinel and Cluster failovers
    )

    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, *REDIS_UNAVAILABLE)) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(InputRejected)
    def _rejected(e: InputRejected) -> Any:
        if _wants_json():
            resp = jsonify({"error": "invalid_request", "error_description": e.description})
            resp.status_code = e.status
            return resp
        return _page(e.status, "error_request")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Any:
        status = e.code or 500
        if _wants_json():
            error = "invalid_request" if status in (400, 413) else ("not_found" if status == 404 else "error")
            if status == 405:
                error = "invalid_request"
            resp = jsonify({"error": error, "error_description": e.name})
            resp.status_code = status
            return resp
        if status == 404:  # an unknown address is not an invalid sign-in request (issue 18 "no dead ends")
            return _page(404, "error_not_found", "error_not_found_title")
        return _page(status, "error_request" if status < 500 else "error_generic")

    @app.errorhandler(IdpError)
    def _idp(e: IdpError) -> Any:
        resp = jsonify({"type": "about:blank", "title": e.code, "status": e.status, "detail": str(e)})
        resp.status_code = e.status
        resp.mimetype = "application/problem+json"
        return resp

    @app.after_request
    def _redis_back(resp: Any) -> Any:
        # A page or answer that went through after a Redis outage: it is back (logged once).
        from ..redis import REDIS_OUTAGE

        if (REDIS_OUTAGE.down and resp.status_code < 500 and request.endpoint
                and request.endpoint.rsplit(".", 1)[-1] not in ("static", "healthz")):
            REDIS_OUTAGE.answered()
        return resp

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Any:
        if _is_outage(e):
            from keys.redis_urls import is_unavailable

            from ..redis import REDIS_OUTAGE

            if is_unavailable(e):  # one line per outage, not per request (docs/redis-ha.md)
                REDIS_OUTAGE.lost(type(e).__name__, request.path)
            else:
                logger.error("backing service unavailable on %s: %s", request.path, type(e).__name__)
            if not _wants_json():
                page = make_response(_page(503, "error_unavailable"))
                page.headers["Retry-After"] = RETRY_AFTER
                page.headers["Cache-Control"] = "no-store"
                return page
            detail = ("the session store (Redis) is unavailable; try again shortly" if is_unavailable(e)
                      else "a backing service is unavailable; try again shortly")
            resp = jsonify({"type": "about:blank", "title": "service_unavailable", "status": 503,
                            "detail": detail})
            resp.status_code = 503
            resp.mimetype = "application/problem+json"
            resp.headers["Retry-After"] = RETRY_AFTER
            return resp
        logger.exception("unexpected error on %s", request.path)
        if _wants_json():
            resp = jsonify({"error": "server_error"})
            resp.status_code = 500
            return resp
        return _page(500, "error_generic")
