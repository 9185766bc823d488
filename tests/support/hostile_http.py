"""A hostile HTTP server on 127.0.0.1 and a memory meter, for the outbound resource-limit tests.

:class:`HostileServer` answers any GET or POST according to its path:

- ``/plain``: ``Content-Length`` claims 1 GiB, the body streams as fast as the
  client reads it (at most :data:`PLAIN_SENT_MAX` bytes, then the server hangs
  up by itself);
- ``/gzip``: ``Content-Encoding: gzip``, a 1 MiB body that inflates to 1 GiB;
- ``/trickle``: a 200 with ``Content-Length: 100`` and then one byte a second
  (for at most ``trickle_seconds``);
- ``/small``: a well-behaved 200 with ``hello``.

Every handler stops by itself and at :meth:`HostileServer.stop`, so a client
that never hangs up cannot keep the test running. :class:`RssMeter` samples
this process's resident memory (``VmRSS``) in a thread and reports the peak
growth over the level when it started.
"""

from __future__ import annotations

import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HostileServer", "RssMeter", "gzip_bomb", "GIB", "MIB"]

MIB = 1024 * 1024
GIB = 1024 * MIB
PLAIN_SENT_MAX = 256 * MIB
"""What ``/plain`` sends before hanging up, though it claims 1 GiB (keeps a failing run gentle)."""
TRICKLE_SECONDS = 12.0

_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB of zeros (64 gzip members of 16 MiB each)."""
    global _BOMB
    if _BOMB is None:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip member
        member = c.compress(b"\0" * (16 * MIB)) + c.flush()
        _BOMB = member * 64
    return _BOMB


class HostileServer:
    def __init__(self, *, trickle_seconds: float = TRICKLE_SECONDS) -> None:
        self.trickle_seconds = trickle_seconds
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(min(length, 1 * MIB))
                owner._answer(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client hanging up at its cap is the point of these tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> HostileServer:
        gzip_bomb()  # built before any measurement starts: its 16 MiB of zeros are not the client's
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        try:
            if path == "/plain":
                h.send_response(200)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Content-Length", str(GIB))
                h.end_headers()
                chunk, sent = b"A" * MIB, 0
                while sent < PLAIN_SENT_MAX and not self.stopping.is_set():
                    h.wfile.write(chunk)
                    sent += len(chunk)
                h.close_connection = True
            elif path == "/gzip":
                bomb = gzip_bomb()
                h.send_response(200)
                h.send_header("Content-Type", "application/statuslist+jwt")
                h.send_header("Content-Encoding", "gzip")
                h.send_header("Content-Length", str(len(bomb)))
                h.end_headers()
                h.wfile.write(bomb)
            elif path == "/trickle":
                h.send_response(200)
                h.send_header("Content-Length", "100")
                h.end_headers()
                h.wfile.flush()
                until = time.monotonic() + self.trickle_seconds
                while time.monotonic() < until and not self.stopping.wait(1.0):
                    h.wfile.write(b"x")
                    h.wfile.flush()
                h.close_connection = True
            elif path == "/small":
                h.send_response(200)
                h.send_header("Content-Length", "5")
                h.end_headers()
                h.wfile.write(b"hello")
            else:
                h.send_response(404)
                h.send_header("Content-Length", "0")
                h.end_headers()
        except OSError:
            h.close_connection = True  # the client hung up


class RssMeter:
    """Peak growth of this process's resident memory while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.start_kib = 0
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_kib() -> int:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/self/status")

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_kib = max(self.peak_kib, self.rss_kib())

    def __enter__(self) -> RssMeter:
        self.start_kib = self.peak_kib = self.rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.rss_kib())

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.start_kib) / 1024
