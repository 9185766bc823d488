"""Which URIs and hosts a client registration may name (issue 3 §2, issue 19 §7).

Owns the checks on every address a relying party registers: redirect URIs
(RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1, RFC 8252 §7): absolute, no
fragment, ``https``; ``http`` only on a loopback address; or a private-use
scheme in reverse-domain form (``com.example.app:/cb``) for native apps.
Back- and front-channel logout URIs, which the idp (or the citizen's browser
for it) calls, must in addition be https to a public host, by literal address
and by what the name resolves to today. Host names for the pairwise sector
identifier are checked here too.

Browser and native apps (issue 21): a web origin a single-page app calls the
token endpoint from (:func:`validate_web_origin`: exactly
``scheme://host[:port]``, https or, in the embedded demo, http on loopback,
no wildcard), and the rule that a private-use scheme is the reverse of a
domain the client registers (:func:`check_private_schemes`, RFC 8252 §7.1).
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
    "validate_web_origin",
    "check_private_schemes",
    "registered_domains",
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


def validate_web_origin(origin: str, *, allow_loopback: bool = False) -> str:
    """One web origin (RFC 6454 §6.2 serialisation) a browser app calls from; normalised.

    Exactly ``scheme://host[:port]``: no path, query, fragment, user
    information or wildcard, since it is compared byte for byte with the
    ``Origin`` header a browser sends. https; http only on a loopback
    address and only where ``allow_loopback`` (the embedded demo). The
    default port is dropped and the host lower-cased, as browsers
    serialise it.
    """
    text = (origin or "").strip()
    if not text or "*" in text or any(c.isspace() for c in text) or len(text) > 300:
        raise InvalidInput(f"web origin {origin!r}: an exact origin such as https://app.example.cn, "
                           "no wildcard")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"web origin {origin!r} is not a valid origin") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if (parts.path not in ("", "/") or parts.query or parts.fragment or "#" in text or "?" in text
            or parts.username is not None or parts.password is not None or not host):
        raise InvalidInput(f"web origin {origin!r}: scheme://host[:port] only, no path or query")
    if not _HOSTNAME.match(host) and not _is_ip(host.strip("[]")):
        raise InvalidInput(f"web origin {origin!r}: {host!r} is not a host name")
    if scheme == "http":
        if not (allow_loopback and _is_loopback_host(host.strip("[]"))):
            raise InvalidInput(f"web origin {origin!r}: https only (http on loopback in the embedded demo)")
    elif scheme != "https":
        raise InvalidInput(f"web origin {origin!r}: https only")
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{shown}" + (f":{port}" if port is not None and port != default else "")


def registered_domains(redirect_uris: Iterable[str], web_origins: Iterable[str],
                       sector_identifier: str | None) -> set[str]:
    """The DNS names a client registers: https redirect and web origin hosts, its sector."""
    names = {h for h in hosts_of(u for u in [*redirect_uris, *web_origins] if u.lower().startswith("https:"))
             if not _is_ip(h.strip("[]"))}
    if sector_identifier and not _is_ip(sector_identifier):
        names.add(sector_identifier.lower())
    return names


def check_private_schemes(redirect_uris: Iterable[str], domains: set[str]) -> None:
    """RFC 8252 §7.1: a private-use scheme is a domain the client controls, in reverse order.

    ``cn.gov.example.app`` is ``app.example.gov.cn``, which must be one of
    ``domains`` (:func:`registered_domains`) or under one of them. A client
    that registers no domain at all declares its scheme's domain by the
    scheme itself (its owner is vetted at registration, docs/idp-admin.md).
    """
    if not domains:
        return
    for uri in redirect_uris:
        scheme = urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            continue
        domain = ".".join(reversed(scheme.split(".")))
        if not any(domain == d or domain.endswith("." + d) for d in domains):
            raise InvalidInput(
                f"redirect URI {uri!r}: the private-use scheme must be the reverse of a domain "
                f"this client registers ({', '.join(sorted(domains))}), e.g. "
                f"{'.'.join(reversed(sorted(domains)[0].split('.')))}.app (RFC 8252 §7.1)"
            )
