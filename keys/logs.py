"""How both services log: the format (text or JSON), the request id, one line per request.

:func:`configure` is the one place the log format is chosen (``YIWANG_LOG_FORMAT``:
``text``, the default, or ``json``, one object per line through
``python-json-logger``); the command lines and the WSGI entry points call it.

:class:`RequestLog` is WSGI middleware, so it sees every request, those the
idp's hot paths answer without Flask included. It gives each request an id
(``X-Request-Id`` from the request when ``YIWANG_TRUST_REQUEST_ID`` says a
proxy in front sets it, otherwise a new one), echoes it in the response, puts
it in every log record of that request (a context variable read by
:class:`RequestIdFilter`) and writes one ``yiwang.access`` line when the
answer is ready. That line names the route (the Flask endpoint), never the
raw path or the query string: paths carry certificate identifiers and
``/wallet/callback?code=…`` an authorization code.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["configure", "make_handler", "RequestIdFilter", "RequestLog", "request_id", "ENDPOINT_KEY"]

ENDPOINT_KEY = "yiwang.endpoint"
"""The WSGI environ key where the web layer puts the route name the access line shows."""

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("yiwang_request_id", default="-")
_ACCESS = logging.getLogger("yiwang.access")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
_MARK = "_yiwang_handler"


def request_id() -> str:
    """The id of the request being answered (``-`` outside a request)."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (the context variable :class:`RequestLog` sets)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr as it is when a record is written (a test or a daemon may have replaced it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(_JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"},
                             timestamp=False)
    return logging.Formatter(_TEXT_FORMAT)


def make_handler(log_format: str = "text", stream: Any = None) -> logging.Handler:
    """A handler in the chosen format that adds the request id; ``stream`` defaults to stderr at write time."""
    handler: logging.Handler = _Stderr() if stream is None else logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(_formatter(log_format))
    return handler


def configure(level: str = "info", log_format: str = "text") -> None:
    """Install the root handler both services use (once; a later call changes the level and format).

    Like ``logging.basicConfig``, it leaves alone a root logger that its host
    (a test runner, an embedding server) has already given handlers.
    """
    root = logging.getLogger()
    ours = next((h for h in root.handlers if getattr(h, _MARK, False)), None)
    if ours is None and root.handlers:
        return
    root.setLevel(level.upper())
    if ours is None:
        ours = make_handler(log_format)
        setattr(ours, _MARK, True)
        root.addHandler(ours)
    ours.setFormatter(_formatter(log_format))


class RequestLog:
    """WSGI middleware: a request id for every request, in its logs and its answer; one access line."""

    def __init__(self, app: Callable[..., Any], *, trust_header: bool = False, access_log: bool = True,
                 fixed_routes: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.trust_header = trust_header
        self.access_log = access_log
        """Write the access line (about 20 µs a request on the token hot path; the id costs ~1 µs)."""
        self.fixed_routes = dict(fixed_routes or {})
        """Route names of paths Flask may not see (the idp's hot paths): path → name."""

    def _id_for(self, environ: dict[str, Any]) -> str:
        if self.trust_header:
            given = environ.get("HTTP_X_REQUEST_ID", "")
            if given and _VALID_ID.fullmatch(given):
                return str(given)
        return os.urandom(12).hex()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        rid = self._id_for(environ)
        token = _request_id.set(rid)
        started = time.perf_counter()
        status_line = ["-"]

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_line[0] = status.split(" ", 1)[0]
            headers.append(("X-Request-Id", rid))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            answer: Iterable[bytes] = self.app(environ, _start)
            return answer
        finally:
            if self.access_log and _ACCESS.isEnabledFor(logging.INFO):
                path = environ.get("PATH_INFO", "")
                route = environ.get(ENDPOINT_KEY) or self.fixed_routes.get(path, "-")
                elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
                _ACCESS.info(
                    "%s %s %s %.2fms", environ.get("REQUEST_METHOD", "-"), route, status_line[0], elapsed_ms,
                    extra={"method": environ.get("REQUEST_METHOD", "-"), "route": route,
                           "status": status_line[0], "duration_ms": elapsed_ms,
                           "remote_addr": environ.get("REMOTE_ADDR", "-")},
                )
            _request_id.reset(token)
