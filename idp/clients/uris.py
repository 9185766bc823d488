"""Which URIs and hosts a client registration may name (issue 3 §2, issue 19 §7).

Owns the checks on every address a relying party registers: redirect URIs
(RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1, RFC 8252 §7): absolute, no
fragment, ``https``; ``http`` only on a loopback address; or a private-use
scheme in reverse-domain form (``com.example.app:/cb``) for native apps.
Back- and front-channel logout URIs, which the idp (or the citizen's browser
for it) calls, must in addition be https to a public host, by literal address
and by what the name resolves to today. Host names for the pairwise sector
identifier are checked here too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..netpolicy import OutboundUrlRefused, check_outbound_url

__all__ = [
    "Resolver",
    "hosts_of",
    "origin_of",
    "resolve_host",
    "validate_host",
    "validate_logout_uri",
    "validate_redirect_uri",
]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$")
_LOOPBACK_NAMES = ("localhost",)


def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def validate_host(host: str) -> str:
    """A DNS host name (lower-cased), for the pairwise sector identifier."""
    h = (host or "").strip().lower().rstrip(".")
    if "://" in h:
        h = urlsplit(h).hostname or ""
    if not _HOSTNAME.match(h) and not _is_ip(h):
        raise InvalidInput(f"{host!r} is not a host name")
    return h


def validate_redirect_uri(uri: str, *, allow_private_scheme: bool = True) -> str:
    """Check one redirect URI; return it unchanged or raise :class:`InvalidInput`."""
    if not uri or uri != uri.strip() or any(c.isspace() for c in uri):
        raise InvalidInput(f"redirect URI {uri!r} is empty or has white space")
    if len(uri) > 2000:
        raise InvalidInput("a redirect URI may have at most 2000 characters")
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise InvalidInput(f"redirect URI {uri!r} is not a valid URI") from None
    if not parts.scheme:
        raise InvalidInput(f"redirect URI {uri!r} must be absolute (RFC 6749 §3.1.2)")
    if "#" in uri:
        raise InvalidInput(f"redirect URI {uri!r} must not have a fragment (RFC 6749 §3.1.2)")
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not host:
            raise InvalidInput(f"redirect URI {uri!r} has no host")
        return uri
    if scheme == "http":
        if not _is_loopback_host(host):
            raise InvalidInput(
                f"redirect URI {uri!r}: plain http is allowed only on the loopback "
                "address (RFC 8252 §7.3); use https"
            )
        return uri
    if scheme in ("javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"):
        raise InvalidInput(f"redirect URI {uri!r} uses a scheme that cannot be a redirect target")
    if not allow_private_scheme:
        raise InvalidInput(f"{uri!r} must be an https URI")
    if not _PRIVATE_SCHEME.match(scheme):
        raise InvalidInput(
            f"redirect URI {uri!r}: a private-use scheme must be a reverse domain name such as "
            "com.example.app (RFC 8252 §7.1)"
        )
    return uri


Resolver = Callable[[str], list[str]]
"""A host name to its addresses (``[]`` when it does not resolve)."""


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to now; ``[]`` if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def validate_logout_uri(uri: str, what: str, *, allow_loopback: bool = False,
                        resolve: Resolver = resolve_host) -> str:
    """Back- and front-channel logout URIs: URLs the idp (or the citizen's browser for it) calls.

    Issue 19 §7: https to a public host, no fragment. A loopback, private,
    link-local, unspecified, multicast or reserved address is refused, as a
    literal (:func:`idp.netpolicy.check_outbound_url`) and as what the name
    resolves to today; the delivery checks the resolved address again (DNS
    can change). ``allow_loopback`` (the embedded demo's setting) lets
    ``http://127.0.0.1`` through, never a private address. A name that does
    not resolve yet is accepted: the RP may not be deployed yet, and
    delivery refuses it if it then resolves somewhere internal.
    """
    try:
        validate_redirect_uri(uri, allow_private_scheme=False)
        check_outbound_url(uri, allow_loopback=allow_loopback)
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e}") from None
    except OutboundUrlRefused as e:
        raise InvalidInput(
            f"{what} {uri!r}: {e}; the idp calls only https URLs on public hosts (issue 19 §7)"
        ) from None
    host = (urlsplit(uri).hostname or "").rstrip(".")
    if not _is_ip(host):
        from keys.http import FetchRefused, check_address

        for address in resolve(host):
            try:
                check_address(address, allow_loopback=allow_loopback)
            except FetchRefused:
                raise InvalidInput(
                    f"{what} {uri!r}: {host} resolves to {address}, an address the idp may not call"
                ) from None
    return uri


def hosts_of(uris: Iterable[str]) -> set[str]:
    """The distinct (lower-cased) hosts of ``uris``."""
    return {h for u in uris if (h := (urlsplit(u).hostname or "").lower())}


def origin_of(uri: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (defaulted for http and https) of ``uri``."""
    parts = urlsplit(uri)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or ""), port
