"""Mutual TLS for agencies (RFC 8705): client authentication and certificate-bound tokens.

TLS ends at a reverse proxy in front of the idp (nginx with
``ssl_verify_client``), which forwards the client certificate it verified in a
header (``YIWANG_IDP_MTLS_HEADER``, default ``X-Client-Cert``: URL-encoded PEM
as nginx's ``$ssl_client_escaped_cert``). Owns:

- :class:`MtlsConfig`: which peers are the proxies (``YIWANG_IDP_MTLS_PROXIES``,
  addresses or CIDRs), the header, the trust anchors of ``tls_client_auth``
  (``YIWANG_IDP_MTLS_CA_FILE``: the agency PKI's issuing CA) and the base URL
  of the mTLS endpoint aliases (RFC 8705 §5);
- :class:`ForwardedCertificate`, the WSGI edge: the header is believed only
  from a configured proxy; from anyone else it is dropped before the
  application sees it. What the protocol core reads is the WSGI environ key
  :data:`VERIFIED_ENVIRON`, which no HTTP header can produce (headers arrive
  as ``HTTP_*``), so without the edge no certificate is ever seen;
- the two client authentication methods, registered in
  :func:`idp.oauth.server.configure_server`: ``tls_client_auth`` (§2.1: the
  certificate chains to a trust anchor and its subject DN or a SAN is the one
  registered) and ``self_signed_tls_client_auth`` (§2.2: the certificate, or
  its public key, is one the client registered);
- :func:`bind_certificate`: a token request of a client that authenticated
  with mTLS, or registered ``tls_client_certificate_bound_access_tokens``,
  gets tokens bound to the certificate (``cnf.x5t#S256``, §3.1) through the
  shared :class:`~idp.oauth.binding.Binding`;
- :func:`check_certificate_binding`: a resource server's check (§3.2) that the
  presenter of a bound token holds the certificate.

No certificate, header value or thumbprint reaches a log; client ids do.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from .binding import Binding, binding_of

__all__ = [
    "MTLS_AUTH_METHODS",
    "TLS_CLIENT_AUTH",
    "SELF_SIGNED_TLS_CLIENT_AUTH",
    "SAN_ATTRIBUTES",
    "SUBJECT_DN",
    "BOUND_TOKENS",
    "CERTIFICATES",
    "VERIFIED_ENVIRON",
    "MtlsConfig",
    "ForwardedCertificate",
    "TLSClientAuth",
    "SelfSignedTLSClientAuth",
    "CertificateBinding",
    "parse_networks",
    "der_of_forwarded",
    "presented_certificate",
    "thumbprint",
    "bind_certificate",
    "check_certificate_binding",
    "discovery_metadata",
]

logger = logging.getLogger(__name__)

TLS_CLIENT_AUTH = "tls_client_auth"
SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"
MTLS_AUTH_METHODS = (TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH)

# Client.attributes keys (RFC 8705 §2.1.2, §3.4 client metadata names).
SUBJECT_DN = "tls_client_auth_subject_dn"
SAN_ATTRIBUTES: dict[str, type[x509.DNSName] | type[x509.UniformResourceIdentifier] | type[x509.RFC822Name]] = {
    "tls_client_auth_san_dns": x509.DNSName,
    "tls_client_auth_san_uri": x509.UniformResourceIdentifier,
    "tls_client_auth_san_email": x509.RFC822Name,
}
BOUND_TOKENS = "tls_client_certificate_bound_access_tokens"
CERTIFICATES = "tls_client_certificates_s256"
"""``self_signed_tls_client_auth``: SHA-256 thumbprints of the registered certificates."""

VERIFIED_ENVIRON = "yiwang.mtls.client_certificate"
"""The DER certificate the edge let through, in the WSGI environ (never an ``HTTP_*`` key)."""
_MAX_FORWARDED = 16 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` → networks (a bare address is a /32 or /128)."""
    out: list[Network] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an address or CIDR") from None
    return tuple(out)


@dataclass(frozen=True)
class MtlsConfig:
    """How mutual TLS reaches the idp (settings ``YIWANG_IDP_MTLS_*``)."""

    proxies: tuple[Network, ...] = ()
    """Peers whose :attr:`header` is believed; none: mTLS is off and the header always dropped."""
    header: str = "X-Client-Cert"
    """The header the proxy overwrites with the verified client certificate."""
    anchors: tuple[x509.Certificate, ...] = ()
    """CA certificates a ``tls_client_auth`` certificate must be issued by."""
    alias_base: str | None = None
    """Base URL the proxy serves the mTLS endpoints at (RFC 8705 §5 ``mtls_endpoint_aliases``)."""

    @property
    def enabled(self) -> bool:
        return bool(self.proxies)

    @classmethod
    def from_settings(cls, settings: Any) -> MtlsConfig:
        anchors: tuple[x509.Certificate, ...] = ()
        path: Path | None = getattr(settings, "mtls_ca_file", None)
        if path is not None:
            anchors = tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))
        return cls(proxies=tuple(getattr(settings, "mtls_proxies", ()) or ()),
                   header=getattr(settings, "mtls_header", "X-Client-Cert"),
                   anchors=anchors, alias_base=getattr(settings, "mtls_base_url", None))

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.proxies:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)


# ------------------------------------------------------------ the edge


def der_of_forwarded(value: str) -> bytes | None:
    """The DER certificate in a forwarded header: URL-encoded (or plain) PEM, or base64 DER."""
    if not value or len(value) > _MAX_FORWARDED:
        return None
    text = unquote(value) if "%" in value else value
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin in text:
        text = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    return der


class ForwardedCertificate:
    """WSGI middleware, outermost: the client certificate header counts only from a proxy.

    The peer is ``REMOTE_ADDR`` before any ``X-Forwarded-For`` rewriting (this
    wraps ProxyFix), so a caller cannot claim to be the proxy. A header from
    any other peer is dropped (logged without its value).
    """

    def __init__(self, app: Callable[..., Any], config: MtlsConfig) -> None:
        self.app = app
        """The wrapped application."""
        self._config = config
        self._key = "HTTP_" + config.header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(VERIFIED_ENVIRON, None)
        raw = environ.pop(self._key, None)
        if raw is not None:
            if not self._config.trusts(environ.get("REMOTE_ADDR")):
                logger.info("a %s header from a peer that is not a configured TLS proxy was dropped",
                            self._config.header)
            else:
                der = der_of_forwarded(raw)
                if der is None:
                    logger.warning("the TLS proxy forwarded an unreadable client certificate")
                else:
                    environ[VERIFIED_ENVIRON] = der
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


def presented_certificate(headers: Any) -> bytes | None:
    """The DER client certificate the edge let through for this request, or ``None``.

    ``headers`` is the request's werkzeug ``EnvironHeaders`` (Flask's and the
    hot path's); the certificate is read from its environ, never from a header.
    """
    environ = getattr(headers, "environ", None)
    der = environ.get(VERIFIED_ENVIRON) if isinstance(environ, dict) else None
    return der if isinstance(der, bytes) else None


def thumbprint(der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url SHA-256 of the DER certificate, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


# ------------------------------------------------- client authentication


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in_validity(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _chains_to(cert: x509.Certificate, anchors: Iterable[x509.Certificate], now: dt.datetime) -> bool:
    """Issued by one of ``anchors`` (a CA, valid now), valid now, and for client authentication."""
    if not _in_validity(cert, now):
        return False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            return False
    except x509.ExtensionNotFound:
        pass  # RFC 5280 §4.2.1.12: no EKU, any purpose
    for anchor in anchors:
        if anchor.subject != cert.issuer or not _in_validity(anchor, now):
            continue
        try:
            if anchor.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                cert.verify_directly_issued_by(anchor)
                return True
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
            pass  # not this anchor
    return False


def _subject_matches(cert: x509.Certificate, client: Any) -> bool:
    """RFC 8705 §2.1.2: the one registered subject DN or SAN value."""
    dn = client.attribute(SUBJECT_DN)
    if dn:
        try:
            return x509.Name.from_rfc4514_string(dn) == cert.subject
        except ValueError:
            return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    for key, kind in SAN_ATTRIBUTES.items():
        wanted = client.attribute(key)
        if wanted:
            return any(str(v) == wanted for v in sans.get_values_for_type(kind))
    return False


def _authenticate(
    query_client: Any,
    request: Any,
    method: str,
    accepts: Callable[[x509.Certificate, bytes, Any], bool],
) -> Any:
    """The client registered for ``method`` whose presented certificate ``accepts`` takes, or None.

    On success the certificate (DER) stays on the request, for the token's
    ``cnf`` binding (RFC 8705 §3).
    """
    der = presented_certificate(request.headers)
    client_id = request.payload.client_id if request.payload is not None else None
    if der is None or not client_id:
        return None
    client = query_client(client_id)
    if client is None or client.token_endpoint_auth_method != method:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    if not accepts(cert, der, client):
        logger.info("%s failed for client %s", method, client.client_id)
        return None
    request.client_certificate = der
    return client


class TLSClientAuth:
    """``tls_client_auth`` (RFC 8705 §2.1): PKI, the agency CA and the registered subject."""

    def __init__(self, anchors: Iterable[x509.Certificate], *, clock: Callable[[], dt.datetime] = _now) -> None:
        self._anchors = tuple(anchors)
        self._clock = clock

    def __call__(self, query_client: Any, request: Any) -> Any:
        return _authenticate(query_client, request, TLS_CLIENT_AUTH, self._accepts)

    def _accepts(self, cert: x509.Certificate, der: bytes, client: Any) -> bool:
        return _chains_to(cert, self._anchors, self._clock()) and _subject_matches(cert, client)


class SelfSignedTLSClientAuth:
    """``self_signed_tls_client_auth`` (RFC 8705 §2.2): a certificate or public key the client registered."""

    def __init__(self, *, clock: Callable[[], dt.datetime] = _now) -> None:
        self._clock = clock

    def __call__(self, query_client: Any, request: Any) -> Any:
        return _authenticate(query_client, request, SELF_SIGNED_TLS_CLIENT_AUTH, self._accepts)

    def _accepts(self, cert: x509.Certificate, der: bytes, client: Any) -> bool:
        return _in_validity(cert, self._clock()) and _registered(cert, der, client)


def _registered(cert: x509.Certificate, der: bytes, client: Any) -> bool:
    presented = thumbprint(der)
    if any(hmac.compare_digest(presented, t) for t in client.attribute(CERTIFICATES) or () if isinstance(t, str)):
        return True
    if not client.jwks:
        return False
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from joserfc.jwk import KeySet

    def spki(key: Any) -> bytes:
        return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))

    try:
        presented_key = spki(cert.public_key())
        return any(hmac.compare_digest(spki(k.public_key), presented_key)
                   for k in KeySet.import_key_set(client.jwks).keys if hasattr(k, "public_key"))
    except Exception:  # a key type without a public key (oct): no match
        return False


# ----------------------------------------------------------------- binding


def _wants_binding(client: Any, request: Any) -> bool:
    return (getattr(request, "auth_method", None) in MTLS_AUTH_METHODS
            or bool(client.attribute(BOUND_TOKENS)))


def bind_certificate(request: Any, client: Any) -> None:
    """RFC 8705 §3: bind this token request's tokens to its client certificate.

    For a client that authenticated with mTLS or registered
    ``tls_client_certificate_bound_access_tokens``; such a client without a
    certificate on the request gets no unbound token (``invalid_request``).
    """
    if client is None or not _wants_binding(client, request):
        return
    der = getattr(request, "client_certificate", None) or presented_certificate(request.headers)
    if der is None:
        raise InvalidRequestError("this client's tokens are bound to its TLS client certificate; "
                                  "send the request through the mutual-TLS endpoint (RFC 8705 section 3)")
    current = binding_of(request) or Binding()
    request.binding = replace(current, x5t_s256=thumbprint(der))


class CertificateBinding:
    """Authlib's client authentication, then :func:`bind_certificate` at the token endpoint.

    Wraps the server's client-authentication registry (it keeps Authlib's
    ``register`` and call interface); :func:`idp.oauth.server.configure_server`
    installs it. For a client that uses neither mTLS nor bound tokens the
    extra work is one attribute read.
    """

    def __init__(self, inner: Any, *, after: Iterable[Callable[[Any, Any, str], None]] = ()) -> None:
        self._inner = inner
        self._after = tuple(after)

    def register(self, method: str, func: Any) -> None:
        self._inner.register(method, func)

    def __call__(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        client = self._inner(request, methods, endpoint)
        if endpoint == "token":
            bind_certificate(request, client)
        for check in self._after:
            check(client, request, endpoint)
        return client


# ------------------------------------------------------- resource servers


def check_certificate_binding(cnf: Mapping[str, Any] | None, headers: Any) -> str | None:
    """RFC 8705 §3.2: ``None`` if the token may be used on this request, else why not.

    A token without ``cnf.x5t#S256`` passes; a bound one needs the request's
    (proxy-forwarded) client certificate to have that thumbprint.
    """
    wanted = (cnf or {}).get("x5t#S256")
    if not wanted:
        return None
    der = presented_certificate(headers)
    if der is None:
        return "the token is bound to a TLS client certificate and none was presented"
    if not hmac.compare_digest(thumbprint(der), str(wanted)):
        return "the token is bound to another TLS client certificate"
    return None


def discovery_metadata(config: MtlsConfig | None) -> dict[str, Any]:
    """RFC 8705 §3.3 and §5 metadata, when mTLS is configured."""
    if config is None or not config.enabled:
        return {}
    out: dict[str, Any] = {"tls_client_certificate_bound_access_tokens": True}
    if config.alias_base:
        base = config.alias_base.rstrip("/")
        out["mtls_endpoint_aliases"] = {
            "token_endpoint": f"{base}/token",
            "introspection_endpoint": f"{base}/introspect",
            "revocation_endpoint": f"{base}/revoke",
            "pushed_authorization_request_endpoint": f"{base}/par",
            "userinfo_endpoint": f"{base}/userinfo",
        }
    return out
