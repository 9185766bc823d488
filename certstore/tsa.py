"""The local RFC 3161 time-stamping authority: a small WSGI service over the region's TSA key.

The embedded default and ``make demo`` timestamp PDFs here (production may
point ``YIWANG_CERTSTORE_TSA_URL`` at an external TSA instead). The answers
are built by :class:`signing.pades.tsa.KeysTimeStamper` — pyHanko's RFC 3161
responder with the signature made by the key backend — and the key and
certificate come from :func:`keys.pki.tsa_signer` (profile: EKU timeStamping
critical, issued by the issuing CA). The service re-reads the certificate when
``certstore tsa issue`` replaces it, so a rotation needs no restart.

RFC 3161 §3.4 over HTTP: ``POST /tsa`` with ``Content-Type:
application/timestamp-query``, answered ``application/timestamp-reply``;
``GET /healthz`` for supervisors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from keys import pki
from keys.errors import KeyNotFound
from keys.keyring import Keyring
from signing.pades.tsa import KeysTimeStamper, answer

__all__ = ["TsaApp", "ensure_tsa", "running_tsa_server", "serve_tsa", "TSA_PATH"]

logger = logging.getLogger(__name__)

TSA_PATH = "/tsa"
_MAX_REQUEST = 16 * 1024  # a TimeStampReq is ~100 bytes; anything big is not one

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def ensure_tsa(keyring: Keyring) -> pki.TsaSigner:
    """The region's TSA key and certificate, issued on first use (after ``certstore init``)."""
    try:
        return pki.tsa_signer(keyring)
    except KeyNotFound:
        logger.info("the region has no TSA certificate yet: issuing one")
        return pki.issue_tsa(keyring)


class TsaApp:
    """WSGI app answering RFC 3161 requests with the region TSA key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._lock = threading.Lock()
        self._stamp: object = object()
        self._stamper: KeysTimeStamper | None = None

    def stamper(self) -> KeysTimeStamper:
        stamp = pki.tsa_stamp(self.keyring)
        with self._lock:
            if self._stamper is None or stamp != self._stamp:
                tsa = ensure_tsa(self.keyring)
                self._stamper = KeysTimeStamper(tsa.signer, tsa.certificate, tsa.chain)
                self._stamp = pki.tsa_stamp(self.keyring)
            return self._stamper

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in ("GET", "HEAD"):
            return _reply(start_response, "200 OK", b"ok\n", "text/plain")
        if path != TSA_PATH:
            return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")
        if method != "POST":
            return _reply(start_response, "405 Method Not Allowed", b"POST a timestamp query\n", "text/plain",
                          [("Allow", "POST")])
        ctype = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if ctype != "application/timestamp-query":
            return _reply(start_response, "415 Unsupported Media Type",
                          b"expected application/timestamp-query\n", "text/plain")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= _MAX_REQUEST:
            return _reply(start_response, "400 Bad Request", b"bad request length\n", "text/plain")
        body = environ["wsgi.input"].read(length)
        reply = answer(self.stamper(), body)
        return _reply(start_response, "200 OK", reply, "application/timestamp-reply")


def _reply(
    start_response: StartResponse, status: str, body: bytes, ctype: str, extra: list[tuple[str, str]] = ()  # type: ignore[assignment]
) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra])
    return [body]


@contextmanager
def running_tsa_server(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a thread (tests, the benchmark); yields the base URL."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="tsa", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def serve_tsa(keyring: Keyring, *, host: str, port: int) -> None:
    """``certstore tsa serve``: answer until interrupted."""
    from werkzeug.serving import make_server

    app = TsaApp(keyring)
    tsa = app.stamper()
    server = make_server(host, port, app, threaded=True)
    logger.info(
        "time-stamping authority on http://%s:%d%s (certificate %x, valid until %s)",
        host, server.server_port, TSA_PATH, tsa.tsa_cert.serial_number,
        tsa.tsa_cert.not_valid_after.date(),
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
