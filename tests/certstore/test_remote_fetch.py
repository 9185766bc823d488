"""Remote fetches stop at their cap: trust lists by URL, status lists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from certstore.remote import TooLarge, fetch_capped
from certstore.statuslists import STATUS_LIST_MAX_BYTES, requests_fetch
from signing.statuslist import StatusListError

MIB = 1024 * 1024


class _Server:
    """A local server whose /endless answer goes on far past any cap (without Content-Length)."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                total = int(self.path.rsplit("/", 1)[-1]) * MIB if self.path.startswith(("/endless/", "/declared/")) else 0
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/small")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/small":
                    self.send_response(200)
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"hello")
                    return
                self.send_response(200)
                if self.path.startswith("/declared/"):
                    self.send_header("Content-Length", str(total))
                self.send_header("Connection", "close")
                self.end_headers()
                chunk, sent = b"A" * (256 * 1024), 0
                try:
                    while sent < total:
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # the client hung up at its cap
                owner.sent[self.path] = sent

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def wait_sent(self, path: str) -> int:
        for _ in range(200):
            if path in self.sent:
                return self.sent[path]
            threading.Event().wait(0.05)
        raise AssertionError("the server never finished")


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_fetch_stops_reading_past_the_cap(server: _Server) -> None:
    with pytest.raises(TooLarge):
        fetch_capped(f"{server.url}/endless/64", 1 * MIB, allow_loopback=True)
    assert server.wait_sent("/endless/64") < 64 * MIB  # the client hung up, it did not drain the body
    with pytest.raises(TooLarge):
        fetch_capped(f"{server.url}/declared/8", 1 * MIB, allow_loopback=True)  # refused on Content-Length alone
    assert fetch_capped(f"{server.url}/small", 5, allow_loopback=True).body == b"hello"
    assert fetch_capped(f"{server.url}/redirect", 5, allow_loopback=True).status == 302  # not followed


def test_status_list_fetch_refuses_an_oversized_answer(server: _Server) -> None:
    total = STATUS_LIST_MAX_BYTES // MIB * 2
    with pytest.raises(StatusListError, match="larger than 32 MiB"):
        requests_fetch(f"{server.url}/endless/{total}", allow_loopback=True)
    assert server.wait_sent(f"/endless/{total}") < total * MIB
    assert requests_fetch(f"{server.url}/redirect", allow_loopback=True).status == 302


def test_trust_import_refuses_an_oversized_answer(demo: Any, server: _Server, tmp_path: Path) -> None:
    root_file = tmp_path / "root.pem"
    code, _out, err = demo("ca", "root", "--out", str(root_file))
    assert code == 0, err
    code, _out, err = demo("trust", "import", f"{server.url}/endless/64", "--anchor", str(root_file))
    assert code == 2 and "larger than 4 MiB" in err, err
    assert len(err.strip().splitlines()) == 1
    assert server.wait_sent("/endless/64") < 64 * MIB
    code, _out, err = demo("trust", "import", f"{server.url}/redirect", "--anchor", str(root_file))
    assert code == 2 and "HTTP 302" in err, err
