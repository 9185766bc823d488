"""Sender-constrained tokens at certstore: what binds an access token to its holder.

certstore as a resource server for tokens the idp bound to a key (``cnf``):

* RFC 8705 §3.2, mutual TLS: ``cnf.x5t#S256`` needs the client certificate that
  a trusted TLS proxy forwarded (:func:`forwarded_certificate_thumbprint`,
  :func:`check_certificate_binding`);
* RFC 9449 §7, DPoP: ``cnf.jkt`` needs ``Authorization: DPoP`` and a proof of
  that key (:class:`ResourceDPoP`, :func:`check_dpop_binding`), checked by
  :mod:`keys.dpop`, the code the idp uses too.

An unbound bearer token passes both checks without any work. The token's
signature, audience and scope are :mod:`certstore.tokens`' business.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .errors import ServiceUnavailable, Unauthorized

__all__ = ["forwarded_certificate_thumbprint", "check_certificate_binding", "ResourceDPoP", "check_dpop_binding"]

logger = logging.getLogger(__name__)


# -- mutual TLS (RFC 8705 §3.2): certificate-bound tokens -------------------------


def forwarded_certificate_thumbprint(value: str | None, peer: str | None,
                                     proxies: Collection[Any]) -> str | None:
    """``x5t#S256`` of the client certificate a TLS proxy forwarded, or ``None``.

    ``value`` is the header the proxy overwrites (``YIWANG_CERTSTORE_MTLS_HEADER``,
    URL-encoded PEM as nginx's ``$ssl_client_escaped_cert``); it counts only when
    the request's peer is one of ``proxies`` — anyone else could have set it.
    """
    import base64
    import binascii
    import ipaddress
    from urllib.parse import unquote

    if not value or not peer or not proxies or len(value) > 16 * 1024:
        return None
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if not any(address in net for net in proxies):
        logger.info("a client certificate header from a peer that is not a configured TLS proxy was ignored")
        return None
    text = unquote(value)
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin in text:
        text = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not der:
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def check_certificate_binding(claims: Mapping[str, Any], thumbprint: str | None) -> None:
    """RFC 8705 §3.2: a token with ``cnf.x5t#S256`` needs a client certificate of that thumbprint.

    :class:`Unauthorized` (401 ``invalid_token``) otherwise; an unbound token passes.
    """
    import hmac

    cnf = claims.get("cnf")
    wanted = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    if not wanted:
        return
    if thumbprint is None:
        raise Unauthorized("the token is bound to a TLS client certificate and none was presented")
    if not hmac.compare_digest(str(wanted), thumbprint):
        raise Unauthorized("the token is bound to another TLS client certificate")


# -- DPoP (RFC 9449 §7): proof-of-possession-bound tokens ---------------------


class ResourceDPoP:
    """certstore as a DPoP resource server: a bound token needs a proof of its key.

    The proof is checked by :mod:`keys.dpop` (the idp uses the same code) against
    the URL computed from certstore's *public URL* and the request path, never
    from the Host header. The Redis connection (the replay cache every worker
    shares) is opened on the first DPoP request: bearer traffic never touches it.
    """

    def __init__(self, public_url: str, *, redis_factory: Callable[[], Any], prefix: str,
                 nonce_key: Callable[[], bytes], iat_window: int = 60, require_nonce: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.public_url = public_url.rstrip("/")
        self.require_nonce = require_nonce
        self._redis_factory = redis_factory
        self._prefix = prefix
        self._nonce_key = nonce_key
        self._iat_window = iat_window
        self._clock = clock
        self._verifier: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, keyring: Any) -> ResourceDPoP:
        from .wallet_sessions import connect_wallet_redis

        return cls(settings.public_url, redis_factory=lambda: connect_wallet_redis(settings),
                   prefix=f"{settings.common.redis_prefix}cs:", nonce_key=lambda: keyring.secret("dpop-nonce"))

    @property
    def verifier(self) -> Any:
        with self._lock:
            if self._verifier is None:
                from keys.dpop import DPoPVerifier, NonceSource

                nonces = NonceSource(self._nonce_key(), clock=self._clock)
                self._verifier = DPoPVerifier(self._redis_factory(), self._prefix, nonces=nonces,
                                              iat_window=self._iat_window, clock=self._clock)
            return self._verifier

    def challenge(self, error: str) -> dict[str, Any]:
        """The ``Unauthorized`` extras that make certstore.web.errors answer with a DPoP challenge."""
        from keys.dpop import ALGORITHMS

        extra: dict[str, Any] = {"www_authenticate": f'DPoP algs="{" ".join(ALGORITHMS)}", error="{error}"'}
        if error == "use_dpop_nonce":
            extra["dpop_nonce"] = self.verifier.nonces.current()
        return extra


def check_dpop_binding(claims: Mapping[str, Any], token: str, *, scheme: str, proof: str | None, method: str,
                       path: str, dpop: ResourceDPoP | None) -> None:
    """RFC 9449 §7.1: a token with ``cnf.jkt`` only as ``Authorization: DPoP`` with a proof of that key
    (``ath`` the token's hash); a token sent with the DPoP scheme must be bound. An unbound Bearer
    token passes without any work. :class:`Unauthorized` with a DPoP challenge otherwise."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if scheme != "dpop" and not jkt:
        return
    if dpop is None:
        raise ServiceUnavailable("DPoP is not available at this certstore")

    def refuse(message: str, code: str) -> Unauthorized:
        return Unauthorized(message, code=code, **dpop.challenge(code))

    if scheme != "dpop":
        raise refuse("the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof", "invalid_token")
    if not jkt:
        raise refuse("the token is not DPoP-bound: send it as Authorization: Bearer", "invalid_token")
    if not proof:
        raise refuse("a DPoP proof (the DPoP header) is required with this token", "invalid_dpop_proof")
    from keys.dpop import DPoPError

    try:
        checked = dpop.verifier.check(proof, method=method, url=dpop.public_url + path, access_token=token,
                                      require_nonce=dpop.require_nonce)
    except DPoPError as e:
        raise refuse(e.description, e.error) from None
    if checked.jkt != jkt:
        raise refuse("the DPoP proof is signed by another key than the token is bound to", "invalid_dpop_proof")
