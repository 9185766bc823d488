"""DPoP proof checking (RFC 9449), one implementation for every service that takes DPoP.

Framework-free: the idp's token and userinfo endpoints and certstore's
resource server call :meth:`DPoPVerifier.check` with the request's method,
the URL computed from their *configured* public URL (never from the Host
header, which the client controls) and, for a resource request, the access
token. What it checks, in RFC 9449 §4.3 order:

* a compact JWS with header ``typ: dpop+jwt``, ``alg`` in :data:`ALGORITHMS`
  (asymmetric only: never ``none``, never HMAC) and a ``jwk`` that is a
  *public* key (no private members); the signature verifies with it;
* ``htm`` equals the method, ``htu`` equals the URL (both normalised by
  :func:`normalize_htu`: no query, no fragment, RFC 3986 §6 case and port
  rules);
* ``iat`` within ``±iat_window`` seconds (plus ``leeway``);
* ``ath`` = base64url SHA-256 of the access token, when one is presented;
* ``nonce``, when the caller requires one: a value of :class:`NonceSource`
  of the current or previous window (``use_dpop_nonce`` otherwise);
* ``jti`` not seen before for this ``htu``: a Redis ``SET NX`` with expiry,
  shared by every worker (last, so a proof refused for another reason does
  not use up its jti).

It returns the proof with ``jkt``, the RFC 7638 thumbprint of its key, which
the caller binds tokens to or compares with a token's ``cnf.jkt``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from .backend import b64url

__all__ = [
    "ALGORITHMS",
    "DPoPError",
    "DPoPProof",
    "DPoPVerifier",
    "NonceSource",
    "access_token_hash",
    "jwk_thumbprint",
    "normalize_htu",
]

ALGORITHMS = ("ES256", "EdDSA", "PS256")
"""JWS ``alg`` values a proof may use (RFC 9449 §4.2: asymmetric; advertised in discovery)."""

# An RSA jwk in the header outgrows joserfc's default 512-byte header cap.
_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))
_REGISTRY.max_header_length = 4096
_KTY_FOR_ALG = {"ES256": "EC", "EdDSA": "OKP", "PS256": "RSA"}
_CRV_FOR_ALG = {"ES256": "P-256", "EdDSA": "Ed25519"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_MAX_PROOF = 8192
_MAX_JTI = 256


class DPoPError(Exception):
    """A proof that is refused: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce`` (RFC 9449 §7.1, §8)."""

    def __init__(self, description: str, *, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class DPoPProof:
    """A verified proof."""

    jkt: str
    """RFC 7638 thumbprint of the proof's public key (base64url SHA-256)."""
    jti: str
    htm: str
    htu: str
    iat: int
    jwk: dict[str, Any]


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url SHA-256 of the ASCII access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of a public JWK given as a dict."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise DPoPError("the proof's jwk is not an EC, RSA or OKP public key")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def normalize_htu(url: str) -> str:
    """RFC 9449 §4.3 item 9: the URL without query and fragment, scheme and host in lower case,
    the default port dropped (RFC 3986 §6.2.2, §6.2.3), an empty path as ``/``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        netloc = f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class NonceSource:
    """Server nonces (RFC 9449 §8) every worker agrees on with no shared state.

    A nonce is an HMAC of the current time window under a key from the
    keyring; the current and the previous window's nonces are accepted, so a
    nonce lives between one and two windows.
    """

    def __init__(self, key: bytes, *, window_seconds: int = 300, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a nonce key is at least 16 bytes")
        self._key = key
        self.window_seconds = window_seconds
        self._clock = clock
        self._cache: tuple[int, str] = (-1, "")

    def _for(self, window: int) -> str:
        mac = hmac.new(self._key, b"dpop-nonce:" + window.to_bytes(8, "big", signed=True), hashlib.sha256)
        return b64url(mac.digest()[:18])

    def _window(self) -> int:
        return int(self._clock() // self.window_seconds)

    def current(self) -> str:
        window = self._window()
        cached = self._cache
        if cached[0] != window:
            cached = (window, self._for(window))
            self._cache = cached
        return cached[1]

    def accepts(self, nonce: Any) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        window = self._window()
        return any(hmac.compare_digest(nonce, self._for(w)) for w in (window, window - 1))


class DPoPVerifier:
    """Checks proofs for one service (its own replay keys under ``prefix``)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        nonces: NonceSource,
        iat_window: int = 60,
        leeway: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = redis
        self._p = f"{prefix}dpop:"
        self.nonces = nonces
        self.iat_window = iat_window
        self.leeway = leeway
        self._clock = clock

    def check(
        self,
        proof: str,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        require_nonce: bool = False,
    ) -> DPoPProof:
        """The verified proof, or :class:`DPoPError`."""
        header, jwk, claims = self._verify_signature(proof)
        del header
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise DPoPError("the proof needs a jti")
        if claims.get("htm") != method.upper():
            raise DPoPError("the proof's htm does not match the request method")
        htu = claims.get("htu")
        expected = normalize_htu(url)
        if not isinstance(htu, str) or len(htu) > 2048 or normalize_htu(htu) != expected:
            raise DPoPError("the proof's htu does not match the request URL")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or not math.isfinite(iat):
            raise DPoPError("the proof needs a numeric iat")
        now = self._clock()
        if abs(now - iat) > self.iat_window + self.leeway:
            raise DPoPError("the proof's iat is outside the accepted window")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
                raise DPoPError("the proof's ath does not match the access token")
        if require_nonce and not self.nonces.accepts(claims.get("nonce")):
            raise DPoPError("a current DPoP-Nonce is required", error="use_dpop_nonce")
        ttl = int(2 * (self.iat_window + self.leeway)) + 1
        key = self._p + hashlib.sha256(f"{jti}\x00{expected}".encode()).hexdigest()
        if not self._r.set(key, b"1", nx=True, ex=ttl):
            raise DPoPError("the proof was used before")
        return DPoPProof(jkt=jwk_thumbprint(jwk), jti=jti, htm=method.upper(), htu=expected,
                         iat=int(iat), jwk=jwk)

    @staticmethod
    def _verify_signature(proof: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if not isinstance(proof, str) or not proof or len(proof) > _MAX_PROOF or proof.count(".") != 2:
            raise DPoPError("the DPoP header is not one compact JWS")
        try:
            header = _b64json(proof.split(".", 1)[0])
        except (ValueError, TypeError):
            raise DPoPError("the proof's header is not JSON") from None
        if not isinstance(header, dict):
            raise DPoPError("the proof's header is not a JSON object")
        if header.get("typ") != "dpop+jwt":
            raise DPoPError("the proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise DPoPError("the proof's alg is not supported")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DPoPError("the proof needs a jwk header")
        if _PRIVATE_MEMBERS & set(jwk):
            raise DPoPError("the proof's jwk must be a public key")
        if jwk.get("kty") != _KTY_FOR_ALG[alg] or jwk.get("crv", _CRV_FOR_ALG.get(alg)) != _CRV_FOR_ALG.get(alg):
            raise DPoPError("the proof's jwk does not fit its alg")
        try:
            key = import_key(jwk)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc flags EdDSA as superseded by RFC 9864's names
                token = jws.deserialize_compact(proof, key, algorithms=[alg], registry=_REGISTRY)
            claims = json.loads(token.payload)
        except (JoseError, ValueError, TypeError, KeyError):
            raise DPoPError("the proof's signature does not verify") from None
        if not isinstance(claims, dict):
            raise DPoPError("the proof's payload is not a JSON object")
        return header, jwk, claims
