"""Reading API input: JSON bodies bounded in size and depth, typed members, bounded query numbers.

Every JSON API view reads its body through :func:`json_object` and its
members through :func:`text`; query numbers through :func:`query_int`. A value
of the wrong type, too long, too deep or out of range is a 4xx problem JSON
(:class:`~certstore.errors.InvalidInput`, 422; too large, 413) before any
service sees it, so no ``RecursionError``, ``OverflowError`` or
``AttributeError`` can come out of a request (issue 11 finding 5).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from flask import request

from ..errors import InvalidInput, PayloadTooLargeError

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_QUERY_INT", "json_object", "text", "query_int", "query_text"]

MAX_JSON_BYTES = 256 * 1024
"""The largest JSON body an API accepts (an issue request with long fields is a few KiB)."""
MAX_JSON_DEPTH = 16
"""No API body nests deeper; Python's parser would recurse ~1,000 levels before failing."""
MAX_QUERY_INT = 2**31 - 1
"""Query numbers above this reach no database column (and overflow some drivers)."""

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def _too_deep(raw: bytes, limit: int) -> bool:
    """Whether ``raw`` nests arrays/objects deeper than ``limit``, without parsing it (no recursion)."""
    depth = 0
    for m in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def json_object(*, allowed: Collection[str] | None = None, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object; ``allowed`` names the only members it may have."""
    if not request.is_json:
        raise InvalidInput("the request body must be JSON, sent with Content-Type: application/json", field="body")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLargeError(f"a JSON body may be at most {max_bytes} bytes", field="body")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(f"a JSON body may be at most {max_bytes} bytes", field="body")
    if _too_deep(raw, MAX_JSON_DEPTH):
        raise InvalidInput(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    if b"\\u0000" in raw:
        # No text column takes U+0000 (PostgreSQL refuses it outright), and no certificate field needs it.
        raise InvalidInput("the JSON body contains a NUL character (\\u0000)", field="body")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as e:
        # Where the parser stopped, never what it read there (the body may hold an ID number).
        raise InvalidInput(
            f"the request body is not JSON, although its Content-Type says so: {e.msg} at line {e.lineno}, "
            f"column {e.colno}", field="body",
        ) from None
    except (ValueError, RecursionError):
        raise InvalidInput("the request body is not JSON (not UTF-8 text), although its Content-Type says so",
                           field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    if allowed is not None:
        extra = sorted(str(k) for k in body if k not in allowed)
        if extra:
            raise InvalidInput(f"unknown member {extra[0][:40]!r}", field=extra[0][:40])
    return body


def text(body: dict[str, Any], name: str, *, required: bool = False, max_len: int = 500) -> str | None:
    """Member ``name`` as stripped text of at most ``max_len`` characters (``None`` when absent)."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required (text)", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    if len(value) > max_len:
        raise InvalidInput(f"{name} may be at most {max_len} characters", field=name)
    return value.strip()


def query_int(name: str, default: int, *, low: int = 0, high: int = MAX_QUERY_INT) -> int:
    """Query parameter ``name`` as a whole number in ``[low, high]``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if len(raw) <= 12 and raw.isascii() else None
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}", field=name)
    return value


def query_text(name: str, *, max_len: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_len:
        raise InvalidInput(f"{name} may be at most {max_len} characters", field=name)
    if not raw.isprintable():
        raise InvalidInput(f"{name} may not contain control characters", field=name)
    return raw.strip()
