"""keys.http: the address rule, TLS on a pinned address, redirects, encodings, keep-alive."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keys.http import FetchFailed, FetchRefused, FetchTooLarge, bounded_request, check_address


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104
     "::", "224.0.0.1", "ff02::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "240.0.0.1"],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(FetchRefused):
        check_address(address, allow_loopback=False)


def test_loopback_only_when_allowed_and_public_always() -> None:
    check_address("127.0.0.1", allow_loopback=True)
    check_address("::ffff:127.0.0.1", allow_loopback=True)
    with pytest.raises(FetchRefused):
        check_address("10.0.0.1", allow_loopback=True)
    check_address("93.184.215.14", allow_loopback=False)
    check_address("2606:4700::1111", allow_loopback=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).connections.add(self.client_address[1])
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/small")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello" if self.path != "/gzip" else b"\x1f\x8b" + b"\0" * 30
        self.send_response(200)
        if self.path == "/gzip":
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Accept-Encoding", self.headers.get("Accept-Encoding", ""))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_identity_is_asked_redirects_returned_and_compressed_answers_refused(server: str) -> None:
    got = bounded_request("GET", server + "/small", max_bytes=100, deadline=2, allow_loopback=True,
                          headers={"Accept-Encoding": "gzip"})
    assert got.body == b"hello" and got.headers["X-Accept-Encoding"] == "identity"
    assert bounded_request("GET", server + "/redirect", max_bytes=100, deadline=2, allow_loopback=True).status == 302
    with pytest.raises(FetchFailed, match="identity"):
        bounded_request("GET", server + "/gzip", max_bytes=100, deadline=2, allow_loopback=True)
    with pytest.raises(FetchTooLarge):
        bounded_request("GET", server + "/small", max_bytes=4, deadline=2, allow_loopback=True)


def test_a_connection_is_kept_alive_per_thread(server: str) -> None:
    _Handler.connections.clear()
    for _ in range(3):
        assert bounded_request("GET", server + "/small", max_bytes=100, deadline=2, allow_loopback=True).status == 200
    assert len(_Handler.connections) == 1


def test_operator_configured_urls_skip_the_address_rule_only(server: str) -> None:
    with pytest.raises(FetchRefused):
        bounded_request("GET", server + "/small", max_bytes=100, deadline=2)
    got = bounded_request("GET", server + "/small", max_bytes=100, deadline=2, operator_configured=True)
    assert got.body == b"hello"
    with pytest.raises(FetchTooLarge):
        bounded_request("GET", server + "/small", max_bytes=2, deadline=2, operator_configured=True)


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_tls_verifies_the_host_name_on_the_pinned_address(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path, "localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        got = bounded_request("GET", f"https://localhost:{port}/small", max_bytes=100, deadline=3,
                              allow_loopback=True, ca_certs=str(cert_file))
        assert got.body == b"hello"
        # The certificate names "localhost", not the address: refused.
        with pytest.raises(FetchFailed, match="TLS"):
            bounded_request("GET", f"https://127.0.0.1:{port}/small", max_bytes=100, deadline=3,
                            allow_loopback=True, ca_certs=str(cert_file))
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "http://x.example/", "https://user:pw@x.example/", "https://x.example/a b",
     "https://x.example/\u00e4", "https://\u200b/", "https:///nohost", "https://x.example:99999/"],
)
def test_malformed_or_unsafe_urls_are_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(FetchRefused):
        bounded_request("GET", url, max_bytes=10, deadline=1)
