"""Bounded outbound HTTP: the one way both services fetch or post to another server.

Everything a service fetches from outside (back-channel logout receivers,
status lists, other regions' trust lists, the idp's discovery document and
JWKS) is an answer a stranger controls. :func:`bounded_request` gives every
such exchange the same limits (docs/design.md, Boundaries: "whatever comes from
outside is bounded"):

- **one overall deadline** per exchange, from name resolution to the last
  byte. Per-read socket time-outs alone let a server trickling one byte a
  second hold a worker for hours; here a watchdog shuts the socket down when
  the deadline passes, whatever call is blocked on it;
- **a size cap on the raw bytes** read from the socket: the body is
  streamed and reading stops one byte past the cap;
- **no decompression**: ``Accept-Encoding: identity`` is sent and any
  ``Content-Encoding`` the server sends anyway is never decoded (a 3 MB gzip
  answer expands to gigabytes);
- **no redirects** (the URL named is the one trusted to answer);
- **the address is checked, then pinned**: the host is resolved once, every
  address it resolves to must be public (loopback only when the caller
  allows it: the embedded demo), and the connection goes to that checked
  address, so a second resolution cannot swap in an internal one (DNS
  rebinding). TLS still verifies the certificate against the host *name*.

Plain library: no web framework, no settings; callers pass the limits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import http.client
import ipaddress
import itertools
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

__all__ = [
    "FetchError",
    "FetchRefused",
    "FetchTimeout",
    "FetchTooLarge",
    "FetchFailed",
    "BoundedResponse",
    "check_url",
    "check_address",
    "bounded_request",
]

logger = logging.getLogger(__name__)

_CHUNK = 16 * 1024
_USER_AGENT = "Yiwang"
_KEEP_ALIVE_MAX = 32
"""Idle connections kept per thread; the least recently used is closed past this."""
# getaddrinfo cannot be interrupted: lookups run here so the caller's deadline
# holds. A name whose DNS never answers ties one of these threads until the
# system resolver gives up; enough of them that one slow zone does not starve
# the others' lookups.
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="bounded-dns")


class FetchError(Exception):
    """An outbound exchange did not give a usable answer. Messages carry no URL query, token or body."""


class FetchRefused(FetchError, ValueError):
    """The URL or the address it resolves to is not one the services may reach."""


class FetchTimeout(FetchError):
    """The overall deadline passed before the answer was complete."""


class FetchTooLarge(FetchError):
    """The answer is longer than the cap."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"the answer is larger than {cap} bytes")
        self.cap = cap


class FetchFailed(FetchError):
    """The server could not be reached or the transfer broke off (the message names the cause only)."""


@dataclass(frozen=True)
class BoundedResponse:
    status: int
    body: bytes
    """At most the cap; with ``on_excess="cut"`` possibly the first bytes of a longer body."""
    headers: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False


# -- where we may go -------------------------------------------------------------


def _loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def check_address(address: str, *, allow_loopback: bool) -> None:
    """Raise :class:`FetchRefused` unless ``address`` (an IP literal) is a public unicast address.

    Loopback passes only with ``allow_loopback``; private, link-local,
    shared (CGNAT), multicast, unspecified and reserved addresses never do.
    """
    try:
        addr = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise FetchRefused("not an IP address") from None
    if _loopback(addr):
        if allow_loopback:
            return
        raise FetchRefused("the host is a loopback address")
    inner = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr
    if (
        inner.is_private
        or inner.is_link_local
        or inner.is_multicast
        or inner.is_unspecified
        or inner.is_reserved
        or not inner.is_global
    ):
        raise FetchRefused("the host is not a public address")


@dataclass(frozen=True)
class _Target:
    scheme: Literal["http", "https"]
    host: str
    port: int
    target: str
    """Path and query sent in the request line."""
    host_header: str


def check_url(url: str, *, allow_loopback: bool, allow_http: bool = False) -> _Target:
    """Check the URL's form (no address lookup): https, or http to a loopback host when allowed.

    ``allow_http``: plain http to any host (operator-configured URLs only).

    Raises :class:`FetchRefused`. User info in the URL is refused (it would
    be sent as credentials and hides the real host from a reader).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchRefused("the URL is malformed") from None
    host = (parts.hostname or "").rstrip(".")
    if not host or parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FetchRefused("the URL has no host, or carries user info")
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise FetchRefused("the URL contains spaces or control characters")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise FetchRefused("the host name is not a valid internationalised name") from None
    if not (parts.path + parts.query).isascii():
        raise FetchRefused("the URL's path or query is not percent-encoded ASCII")
    if parts.scheme == "https":
        scheme: Literal["http", "https"] = "https"
    elif parts.scheme == "http" and (allow_http or (allow_loopback and _is_loopback_name(host))):
        scheme = "http"
    else:
        raise FetchRefused("only https URLs may be fetched")
    port = port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    shown = f"[{host}]" if ":" in host else host
    return _Target(scheme, host, port, target, shown if default else f"{shown}:{port}")


def _is_loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return _loopback(ipaddress.ip_address(host))
    except ValueError:
        return False


def _resolve(host: str, port: int, *, allow_loopback: bool, until: float, check: bool = True) -> str:
    """The checked address to connect to; every address the name has must pass :func:`check_address`."""
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        if check:
            check_address(host, allow_loopback=allow_loopback)
        return host
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(0.0, until - time.monotonic()))
    except concurrent.futures.TimeoutError:
        raise FetchTimeout("name resolution took too long") from None
    except (OSError, UnicodeError):
        raise FetchFailed("name not resolved") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise FetchFailed("name not resolved")
    # All of them, not the first: a name with one public and one internal
    # address would otherwise reach the internal one on a later lookup.
    for address in addresses if check else ():
        check_address(address, allow_loopback=allow_loopback)
    return addresses[0]


# -- the deadline ----------------------------------------------------------------


class _Watchdog:
    """One thread that shuts sockets down when their deadline passes (cheaper than a Timer per request).

    Disarmed entries stay in the heap until their time (seconds) and are
    skipped then, so arming and disarming cost a push and a dict operation.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, when: float, action: Callable[[], None]) -> int:
        with self._cond:
            ident = next(self._ids)
            self._live[ident] = action
            heapq.heappush(self._heap, (when, ident))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bounded-http-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return ident

    def disarm(self, ident: int) -> None:
        with self._cond:
            self._live.pop(ident, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][1] not in self._live:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        action = self._live.pop(heapq.heappop(self._heap)[1])
                        break
                    self._cond.wait(wait)
            try:
                action()
            except Exception:  # the socket may be gone already: nothing left to cut
                logger.debug("watchdog action failed", exc_info=True)


_WATCHDOG = _Watchdog()


def _cut(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# -- keep-alive --------------------------------------------------------------------

_local = threading.local()
_KeepKey = tuple[str, str, int, str]


def _pool() -> OrderedDict[_KeepKey, HTTPConnection]:
    pool: OrderedDict[_KeepKey, HTTPConnection] | None = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = OrderedDict()
    return pool


def _keep(key: _KeepKey, conn: HTTPConnection) -> None:
    pool = _pool()
    pool[key] = conn
    pool.move_to_end(key)
    while len(pool) > _KEEP_ALIVE_MAX:
        pool.popitem(last=False)[1].close()


def _connection(key: _KeepKey, *, ca_certs: str | None) -> tuple[HTTPConnection, bool]:
    reused = _pool().pop(key, None)
    if reused is not None:
        if reused.is_connected:
            return reused, True
        reused.close()
    scheme, address, port, host = key
    if scheme == "https":
        conn: HTTPConnection = HTTPSConnection(
            address,
            port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or _default_ca(),
        )
    else:
        conn = HTTPConnection(address, port)
    return conn, False


def _default_ca() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


# -- the request -------------------------------------------------------------------


def bounded_request(
    method: str,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    allow_loopback: bool = False,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    on_excess: Literal["raise", "cut"] = "raise",
    connect_timeout: float = 5.0,
    ca_certs: str | None = None,
    operator_configured: bool = False,
) -> BoundedResponse:
    """Send one request and read at most ``max_bytes`` of raw body within ``deadline`` seconds.

    A body past the cap raises :class:`FetchTooLarge` (``on_excess="raise"``)
    or is cut and flagged ``truncated`` (``"cut"``: a caller that needs only
    the status). Redirects are returned as their status, never followed.
    Raises :class:`FetchRefused`, :class:`FetchTimeout`, :class:`FetchFailed`.

    ``operator_configured``: the URL comes from the operator's own settings
    (certstore's idp issuer, which may sit on an internal network and whose
    scheme the settings already checked), so the address rule and the
    https rule are not applied; the size cap, deadline, identity encoding
    and no-redirect rules still are. Never for a URL that a client, a QR
    code or a fetched document supplied.
    """
    until = time.monotonic() + deadline
    target = check_url(url, allow_loopback=allow_loopback or operator_configured, allow_http=operator_configured)
    address = _resolve(
        target.host, target.port, allow_loopback=allow_loopback, until=until, check=not operator_configured
    )
    send = {
        "Host": target.host_header,
        "User-Agent": _USER_AGENT,
        "Accept-Encoding": "identity",
        **dict(headers or {}),
    }
    send["Accept-Encoding"] = "identity"  # never negotiable: we do not decompress
    key: _KeepKey = (target.scheme, address, target.port, target.host)
    for attempt in (0, 1):
        conn, reused = _connection(key, ca_certs=ca_certs)
        try:
            return _exchange(conn, key, method, target.target, body, send, until, max_bytes, on_excess, connect_timeout)
        except _StaleConnection:
            # A kept-alive connection the server had closed: one fresh try,
            # since nothing reached the server's application.
            if not reused or attempt:
                raise FetchFailed("connection closed by the server") from None
    raise FetchFailed("connection closed by the server")  # pragma: no cover


class _StaleConnection(Exception):
    pass


def _exchange(
    conn: HTTPConnection,
    key: _KeepKey,
    method: str,
    target: str,
    body: bytes | None,
    headers: Mapping[str, str],
    until: float,
    max_bytes: int,
    on_excess: Literal["raise", "cut"],
    connect_timeout: float,
) -> BoundedResponse:
    remaining = until - time.monotonic()
    if remaining <= 0:
        conn.close()
        raise FetchTimeout("deadline passed before connecting")
    conn.timeout = min(connect_timeout, remaining) if conn.sock is None else remaining
    watch = _WATCHDOG.arm(until, lambda: _cut(conn))
    keep = False
    sent = False
    try:
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(max(0.001, until - time.monotonic()))
            conn.timeout = max(0.001, until - time.monotonic())
            conn.request(method, target, body=body, headers=headers, preload_content=False, decode_content=False)
            sent = True
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
            if time.monotonic() >= until:
                raise FetchTimeout("deadline passed") from None
            if not sent or isinstance(e, http.client.RemoteDisconnected):
                raise _StaleConnection() from None
            raise
        status = resp.status
        encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes and on_excess == "raise":
            raise FetchTooLarge(max_bytes)
        data = bytearray()
        truncated = False
        while True:
            if time.monotonic() >= until:
                raise FetchTimeout("deadline passed while reading")
            chunk = resp.read(min(_CHUNK, max_bytes + 1 - len(data)), decode_content=False)
            if not chunk:
                break
            data += chunk
            if len(data) > max_bytes:
                if on_excess == "raise":
                    raise FetchTooLarge(max_bytes)
                truncated = True
                del data[max_bytes:]
                break
        if time.monotonic() >= until:
            raise FetchTimeout("deadline passed while reading")
        if encoding not in ("identity", "") and on_excess == "raise":
            # We asked for identity; a compressed answer is refused, never inflated.
            raise FetchFailed(f"the answer is {encoding[:20]}-encoded although identity was asked for")
        keep = (
            not truncated
            and resp.version == 11
            and (resp.headers.get("Connection") or "").lower() != "close"
            and resp.isclosed()
        )
        return BoundedResponse(status, bytes(data), dict(resp.headers.items()), truncated)
    except FetchError:
        raise
    except _StaleConnection:
        raise
    except (ssl.SSLError, CertificateError) as e:
        raise FetchFailed(f"TLS failed ({type(e).__name__})") from None
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as e:
        if time.monotonic() >= until or isinstance(e, TimeoutError | socket.timeout):
            raise FetchTimeout("deadline passed") from None
        raise FetchFailed(_reason(e)) from None
    except ValueError as e:  # a malformed answer the HTTP parser refused
        raise FetchFailed(f"malformed answer ({type(e).__name__})") from None
    finally:
        _WATCHDOG.disarm(watch)
        if keep:
            _keep(key, conn)
        else:
            conn.close()


def _reason(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    text = str(e).lower()
    for word in ("refused", "reset", "unreachable", "aborted"):
        if word in text:
            return f"connection {word}"
    return f"transfer failed ({type(e).__name__})"
