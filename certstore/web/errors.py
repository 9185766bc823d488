"""Every error certstore's web layer returns, as ``application/problem+json`` (RFC 9457).

The one place where exceptions become HTTP responses: certstore's own errors
carry their status, code, title and field; werkzeug's HTTP errors (404 for an
unknown route, 413 for an oversized upload, 405 …) get the same shape; any
other exception is logged and answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from keys.errors import KeysError

from ..errors import CertstoreError

__all__ = ["register_error_handlers", "problem"]

logger = logging.getLogger(__name__)

_TYPE_BASE = "https://yiwang.example/problems/"


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


def _from_certstore(e: CertstoreError) -> Response:
    extra = dict(e.extra)
    code = str(extra.pop("code", e.code))
    headers: dict[str, str] = {}
    if e.status == 401:
        # RFC 6750 §3: tell the client how to authenticate.
        headers["WWW-Authenticate"] = f'Bearer realm="certstore", error="{code}"'
    elif code == "insufficient_scope":
        headers["WWW-Authenticate"] = (
            f'Bearer realm="certstore", error="insufficient_scope", scope="{extra.get("scope", "")}"'
        )
    retry_after = extra.get("retry_after")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)  # RFC 9110 §10.2.3: a busy service says when to come back
    if e.status >= 500:
        logger.warning("%s %s: %s", request.method, request.path, e)
    return problem(e.status, e.title, str(e), code=code, field=e.field, headers=headers, **extra)


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
    resp = problem(status, e.name, detail, code=code, field=field)
    if status == 405 and e.get_response().headers.get("Allow"):
        resp.headers["Allow"] = e.get_response().headers["Allow"]
    return resp


def _from_keys(e: KeysError) -> Response:
    logger.warning("key store problem on %s %s: %s", request.method, request.path, e)
    return problem(503, "Service unavailable", "the signing keys are not available", code="keys_unavailable")


def _from_bug(e: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "Internal server error", "something went wrong on our side", code="internal_error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CertstoreError, _from_certstore)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(KeysError, _from_keys)
    app.register_error_handler(Exception, _from_bug)
