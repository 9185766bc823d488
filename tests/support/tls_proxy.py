"""A small TLS-terminating reverse proxy for the mutual-TLS tests (RFC 8705 behind a proxy).

It does what the nginx snippet in docs/rp-integration.md does: terminates TLS,
asks for a client certificate and verifies it against its CA file
(``ssl_verify_client optional``), and forwards the request to the plain-HTTP
upstream with the certificate it verified in ``X-Client-Cert`` as URL-encoded
PEM (nginx's ``$ssl_client_escaped_cert``), *overwriting* whatever header of
that name the client sent. It connects to the upstream from its own loopback
address (``127.0.0.2`` by default), so the upstream can tell it apart from a
direct caller on ``127.0.0.1``.

Also here: :func:`serve_wsgi`, a threaded WSGI server for the upstream, and
:func:`make_server_certificate`, a self-signed TLS server certificate for 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["TlsProxy", "serve_wsgi", "make_server_certificate", "self_signed_client", "self_signed_pem",
           "PROXY_SOURCE"]

PROXY_SOURCE = "127.0.0.2"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_server_certificate(directory: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` of a self-signed server certificate for 127.0.0.1 (the client's CA file too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return cert_path, key_path


def self_signed_client(directory: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed client certificate (``self_signed_tls_client_auth``): ``(cert.pem, key.pem, cert)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return cert_path, key_path, cert


def self_signed_pem(name: str = "matrix-client") -> str:
    """The PEM of a fresh self-signed client certificate (its key is thrown away)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _read_request(conn: Any) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class TlsProxy:
    """TLS in front of ``upstream``; ``with TlsProxy(...) as proxy: proxy.url``."""

    def __init__(self, upstream: tuple[str, int], *, server_cert: Path, server_key: Path, ca_files: list[Path],
                 header: str = "X-Client-Cert", source: str = PROXY_SOURCE) -> None:
        self.upstream = upstream
        self.header = header
        self.source = source
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(server_cert, server_key)
        ctx.verify_mode = ssl.CERT_OPTIONAL  # nginx: ssl_verify_client optional
        for ca in ca_files:
            ctx.load_verify_locations(cafile=str(ca))
        self._ctx = ctx
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = self._ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a certificate the CA file does not verify: the handshake fails, as with nginx
        try:
            request = _read_request(conn)
            if request is None:
                return
            head, _, body = request.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            name = self.header.lower().encode()
            kept = [ln for ln in lines[1:] if ln.partition(b":")[0].strip().lower() not in (name, b"connection")]
            der = conn.getpeercert(binary_form=True)
            if der:  # overwrite: a client's own header of that name never passes
                pem = ssl.DER_cert_to_PEM_cert(der)
                kept.append(f"{self.header}: {quote(pem, safe='')}".encode())
            kept.append(b"Connection: close")
            with socket.create_connection(self.upstream, source_address=(self.source, 0)) as up:
                up.sendall(b"\r\n".join([lines[0], *kept]) + b"\r\n\r\n" + body)
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    conn.sendall(chunk)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def serve_wsgi(app: Any, host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """A threaded werkzeug server for ``app`` on a free port; yields ``(host, port)``."""
    from werkzeug.serving import make_server

    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host, server.server_port
    finally:
        server.shutdown()
        server.server_close()
