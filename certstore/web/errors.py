"""Every error certstore's web layer returns: ``application/problem+json`` (RFC 9457), or a page.

The one place where exceptions become HTTP responses: certstore's own errors
carry their status, code, title and field; werkzeug's HTTP errors (404 for an
unknown route, 413 for an oversized upload, 405 …) get the same shape; any
other exception is logged and answered with a bare 500 that reveals nothing.

A browser on one of certstore's pages (the wallet, the verify page: see
:func:`is_page_route`) that prefers ``text/html`` gets the same status as a
page in Chinese and English with a way back, never raw JSON (issue 18 §3).
The API, the wallet's back-channel logout receiver and any client that does
not ask for HTML keep problem+json.

The database or Redis being away (restarting, unreachable, read-only for a
write: :func:`certstore.db.outage_of`) is no bug: 503 ``service_unavailable``
with ``Retry-After`` (issue 20 §2), as the idp answers, so a client that
retries on 503 retries; nothing was stored, so a retry with the same
``Idempotency-Key`` is safe. No trace is logged per request: the outage is
reported to :mod:`certstore.availability`, which logs when the store goes
away and when it returns.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, json, render_template, request
from werkzeug.exceptions import HTTPException

from keys.errors import KeysError
from keys.locale import N_
from keys.redis_urls import UNAVAILABLE as REDIS_UNAVAILABLE

from ..availability import DATABASE, REDIS, RETRY_AFTER_SECONDS, Outage
from ..db import outage_of
from ..errors import CertstoreError, StoreUnavailable

__all__ = ["register_error_handlers", "problem", "is_page_route", "wants_html", "store_unavailable"]

logger = logging.getLogger(__name__)

_TYPE_BASE = "https://yiwang.example/problems/"

# Endpoints outside the wallet blueprint that render pages for people.
_PAGE_ENDPOINTS = frozenset({"public.verify_page", "public.verify_submit", "offline.page"})
# Inside it, the one a server calls (Back-Channel Logout 1.0 §2.8 wants JSON errors);
# by path too, for a wrong method, which has no endpoint.
_MACHINE_ENDPOINTS = frozenset({"wallet.backchannel_logout"})
_MACHINE_PATHS = frozenset({"/wallet/backchannel-logout"})

# What the page says for each status in Chinese; the English line is the
# error's own detail (the same text the API would send, never a traceback).
_PAGE_TEXT: dict[int, tuple[str, str]] = {
    # title and what to do, translated on the page (keys/locale); the error's own English detail is not shown
    400: (N_("The request could not be completed"), N_("Please go back and try again.")),
    401: (N_("Please sign in first"), N_("Sign in to the wallet first, then open this page.")),
    403: (N_("Not allowed"), N_("You may not open this page.")),
    404: (N_("Not found"), N_("The page or certificate you asked for was not found.")),
    405: (N_("Method not allowed"), N_("Please use the buttons and links on the pages.")),
    413: (N_("The file is too large"), N_("Please upload a smaller file.")),
    429: (N_("Too many requests"), N_("Please try again later.")),
    503: (N_("Service unavailable"), N_("Please try again later.")),
}
_PAGE_FALLBACK = (N_("Something went wrong"), N_("Something went wrong on our side. Please try again later."))


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    body.update({k: v for k, v in extra.items() if isinstance(v, str | int | float | bool)})
    resp = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def is_page_route() -> bool:
    """Whether this request is for one of certstore's pages (not the API, not a machine endpoint)."""
    path = request.path
    if path.startswith("/api/") or path in _MACHINE_PATHS:
        return False
    endpoint = request.endpoint or ""
    if endpoint in _MACHINE_ENDPOINTS:
        return False
    if request.blueprint == "wallet" or endpoint in _PAGE_ENDPOINTS:
        return True
    # an unknown URL under /wallet (a stale bookmark) has no endpoint
    return request.url_rule is None and (path == "/wallet" or path.startswith("/wallet/"))


def wants_html() -> bool:
    """A browser on a page route: ``text/html`` preferred over JSON (``*/*`` alone is not a browser)."""
    if not is_page_route():
        return False
    offered = ["application/problem+json", "application/json", "text/html"]
    return request.accept_mimetypes.best_match(offered) == "text/html"


def error_page(status: int, detail: str, *, headers: dict[str, str] | None = None) -> Response:
    """The error as a page in the page's language: status, what happened, ways back (not the English detail)."""
    title, advice = _PAGE_TEXT.get(status, _PAGE_FALLBACK)
    html = render_template("wallet_error.html", status=status, title=title, detail=advice,
                           in_wallet=request.path.startswith("/wallet"))
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        if k in ("Retry-After", "Allow"):  # the Bearer challenge means nothing to a person
            resp.headers[k] = v
    return resp


def _reply(status: int, title: str, detail: str, *, code: str, field: str | None = None,
           headers: dict[str, str] | None = None, **extra: Any) -> Response:
    if wants_html():
        return error_page(status, detail, headers=headers)
    return problem(status, title, detail, code=code, field=field, headers=headers, **extra)


def _from_certstore(e: CertstoreError) -> Response:
    extra = dict(e.extra)
    code = str(extra.pop("code", e.code))
    headers: dict[str, str] = {}
    challenge = extra.pop("www_authenticate", None)  # RFC 9449 §7.1: a DPoP challenge instead
    nonce = extra.pop("dpop_nonce", None)
    if nonce:
        headers["DPoP-Nonce"] = str(nonce)
    if e.status == 401:
        # RFC 6750 §3: tell the client how to authenticate.
        headers["WWW-Authenticate"] = challenge or f'Bearer realm="certstore", error="{code}"'
    elif code == "insufficient_scope":
        headers["WWW-Authenticate"] = (
            f'Bearer realm="certstore", error="insufficient_scope", scope="{extra.get("scope", "")}"'
        )
    retry_after = extra.get("retry_after")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)  # RFC 9110 §10.2.3: a busy service says when to come back
    if e.status >= 500 and not isinstance(e, StoreUnavailable):  # those: certstore.availability logs
        logger.warning("%s %s: %s", request.method, request.path, e)
    return _reply(e.status, e.title, str(e), code=code, field=e.field, headers=headers, **extra)


def _from_http(e: HTTPException) -> Response:
    status = e.code or 500
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status, "http_error")
    detail = e.description or e.name
    field = None
    if status == 413:
        limit = request.max_content_length
        detail = f"the upload is larger than the limit of {limit} bytes" if limit else detail
        field = "file"
    elif status == 400:
        code = "invalid_request"
        detail = "the request could not be read"
    headers: dict[str, str] = {}
    if status == 405 and e.get_response().headers.get("Allow"):
        headers["Allow"] = e.get_response().headers["Allow"]
    if status == 400 and wants_html() and e.description:
        detail = e.description  # a page's own abort(400, …) says what to do; the API's stays generic
    return _reply(status, e.name, detail, code=code, field=field, headers=headers)


def _from_keys(e: KeysError) -> Response:
    logger.warning("key store problem on %s %s: %s", request.method, request.path, e)
    return _reply(503, "Service unavailable", "the signing keys are not available", code="keys_unavailable")


_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, *REDIS_UNAVAILABLE)
"""Also a Sentinel or Cluster failover in progress (keys.redis_urls)."""


def store_unavailable(e: BaseException) -> StoreUnavailable | None:
    """The 503 an exception from the database or Redis stands for (reported once per outage), or ``None``."""
    if isinstance(e, _REDIS_DOWN):
        REDIS.lost(Outage("unreachable", type(e).__name__))
        detail = "the session store is not available for now; try again in a moment"
    else:
        outage = outage_of(e)
        if outage is None:
            return None
        DATABASE.lost(outage)
        detail = (
            "the certificate database is read-only for now: reads work, changes do not; try again in a moment"
            if outage.kind == "read-only"
            else "the certificate database is not available for now; try again in a moment"
        )
    return StoreUnavailable(detail, retry_after=RETRY_AFTER_SECONDS)


def _from_store(e: Exception) -> Response:
    mapped = store_unavailable(e)
    if mapped is None:
        return _from_bug(e)
    return _from_certstore(mapped)


def _from_bug(e: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return _reply(500, "Internal server error", "something went wrong on our side", code="internal_error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CertstoreError, _from_certstore)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(KeysError, _from_keys)
    for cls in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, *_REDIS_DOWN):
        app.register_error_handler(cls, _from_store)
    app.register_error_handler(Exception, _from_bug)
