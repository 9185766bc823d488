"""Status lists: private certificate status, fetched whole (issue 6, "Build" 2).

Format: the IETF Token Status List (draft-ietf-oauth-status-list, -10 and
later), a JWT with header ``typ: statuslist+jwt`` (§5.1)::

    {"sub": "<the list's URI>", "iat": 1764230400, "exp": 1764316800, "ttl": 300,
     "status_list": {"bits": 2, "lst": "<base64url of the ZLIB/DEFLATE-compressed bytes>"}}

Each certificate owns one position (``idx``) in a list of at least 131,072
entries, chosen at random by certstore, and a verifier downloads the *whole*
list, so fetching it tells the issuer nothing about which certificate is
being checked. With ``bits = 2`` (§4.1) entry ``idx`` lives in byte
``idx // 4`` at bit offset ``2 * (idx % 4)``, least significant bits first;
the values (§7.1) are ``0x00`` VALID, ``0x01`` INVALID (revoked and every
other final status), ``0x02`` SUSPENDED.

The list is signed through :func:`keys.jws.encode_jws` (works with HSM keys)
by the issuing agency's signer — the same key whose certificate the verifier
already trusts for the QR payloads — and verified here with joserfc. A list
that fails its signature, names another URI, has expired, or is older than
the verifier's allowed age raises :class:`StatusListError`: a verifier then
says it cannot confirm the status, never "valid".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from keys.backend import Signer
from keys.jws import encode_jws

from .errors import SigningError

__all__ = [
    "TYP",
    "MIN_SIZE",
    "VALID",
    "INVALID",
    "SUSPENDED",
    "StatusList",
    "StatusListToken",
    "StatusListError",
    "sign_status_list",
    "verify_status_list_token",
    "describe_age",
]

logger = logging.getLogger(__name__)

TYP = "statuslist+jwt"
"""The JWT ``typ`` header of a Status List Token (draft §5.1)."""
MIN_SIZE = 131_072
"""Smallest list certstore publishes (issue 6): a large crowd to hide in."""
VALID, INVALID, SUSPENDED = 0x00, 0x01, 0x02
"""Status values (draft §7.1)."""
_BITS = (1, 2, 4, 8)
_MAX_COMPRESSED = 16 * 1024 * 1024
_MAX_RAW = 64 * 1024 * 1024
_ALGORITHMS = ["ES256", "EdDSA", "RS256"]


class _Registry(JWSRegistry):
    """joserfc's default limits (512-byte header, 128 kB payload) are for tokens;
    a trust list carries an x5c root in its header and many certificates, a status
    list of a million entries can exceed 128 kB once many are revoked."""

    max_header_length = 2048
    max_payload_length = 48 * 1024 * 1024


_REGISTRY = _Registry(algorithms=_ALGORITHMS)


class StatusListError(SigningError):
    """A status list (token) cannot be used: malformed, bad signature, expired or too old.

    ``reason`` is a short stable code: ``format``, ``signature``, ``uri``,
    ``expired``, ``too_old``, ``index``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StatusList:
    """A packed array of ``size`` entries of ``bits`` bits each (draft §4.1)."""

    def __init__(self, size: int = MIN_SIZE, bits: int = 2, *, data: bytes | None = None) -> None:
        if bits not in _BITS:
            raise ValueError(f"bits must be one of {_BITS}")
        if size <= 0 or size * bits % 8:
            raise ValueError("size * bits must be a positive multiple of 8")
        nbytes = size * bits // 8
        if data is not None and len(data) != nbytes:
            raise ValueError(f"a list of {size} entries of {bits} bits is {nbytes} bytes")
        self.bits = bits
        self.size = size
        self._data = bytearray(data) if data is not None else bytearray(nbytes)

    def _locate(self, index: int) -> tuple[int, int]:
        if type(index) is not int or not 0 <= index < self.size:
            raise StatusListError(
                f"index {index!r} is outside the list (size {self.size})", reason="index"
            )
        per_byte = 8 // self.bits
        return index // per_byte, (index % per_byte) * self.bits

    def get(self, index: int) -> int:
        byte, shift = self._locate(index)
        return (self._data[byte] >> shift) & ((1 << self.bits) - 1)

    def set(self, index: int, value: int) -> None:
        if not 0 <= value < (1 << self.bits):
            raise ValueError(f"a {self.bits}-bit status is 0 to {(1 << self.bits) - 1}")
        byte, shift = self._locate(index)
        mask = ((1 << self.bits) - 1) << shift
        self._data[byte] = (self._data[byte] & ~mask & 0xFF) | (value << shift)

    def update(self, entries: Iterable[tuple[int, int]]) -> StatusList:
        for index, value in entries:
            self.set(index, value)
        return self

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def encode(self) -> dict[str, Any]:
        """The ``status_list`` claim: bits and base64url(ZLIB(bytes)) without padding (§4.2)."""
        compressed = zlib.compress(bytes(self._data), 9)
        return {
            "bits": self.bits,
            "lst": base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii"),
        }

    @classmethod
    def decode(cls, claim: Any) -> StatusList:
        """Parse a ``status_list`` claim; raises :class:`StatusListError` on anything malformed."""
        if not isinstance(claim, Mapping):
            raise StatusListError("status_list must be an object", reason="format")
        bits, lst = claim.get("bits"), claim.get("lst")
        if type(bits) is not int or bits not in _BITS:
            raise StatusListError("status_list.bits must be 1, 2, 4 or 8", reason="format")
        if not isinstance(lst, str) or not lst or len(lst) > _MAX_COMPRESSED:
            raise StatusListError("status_list.lst must be base64url text", reason="format")
        try:
            compressed = base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4))
            inflater = zlib.decompressobj()
            raw = inflater.decompress(compressed, _MAX_RAW)
            if inflater.unconsumed_tail:
                raise StatusListError("the status list is implausibly large", reason="format")
        except (binascii.Error, ValueError, zlib.error):
            raise StatusListError(
                "status_list.lst is not base64url ZLIB data", reason="format"
            ) from None
        if not raw:
            raise StatusListError("the status list is empty", reason="format")
        return cls(size=len(raw) * 8 // bits, bits=bits, data=raw)


@dataclass(frozen=True)
class StatusListToken:
    """A verified Status List Token."""

    uri: str
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    ttl: int | None
    """Seconds a verifier may cache the token before fetching it again (§5.1)."""
    status_list: StatusList

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.issued_at

    def status(self, index: int) -> int:
        return self.status_list.get(index)


def sign_status_list(
    status_list: StatusList,
    signer: Signer,
    *,
    uri: str,
    issued_at: dt.datetime,
    lifetime: dt.timedelta = dt.timedelta(hours=24),
    ttl: int = 300,
) -> str:
    """Sign ``status_list`` as a Status List Token (JWT, ``typ: statuslist+jwt``)."""
    iat = int(issued_at.timestamp())
    claims = {
        "sub": uri,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "ttl": ttl,
        "status_list": status_list.encode(),
    }
    return encode_jws(signer, claims, typ=TYP)


def _jwk(key: PublicKeyTypes) -> ECKey | RSAKey | OKPKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    if isinstance(key, rsa.RSAPublicKey):
        return RSAKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    raise StatusListError("unsupported key type for a status list", reason="signature")


_MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold


def _ts(value: Any, name: str) -> dt.datetime:
    if type(value) is not int or not 0 < value <= _MAX_TIME:
        raise StatusListError(f"the status list's {name} must be a NumericDate", reason="format")
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _describe_age(age: dt.timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    if seconds < 172800:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"


def verify_status_list_token(
    token: str,
    keys: Sequence[PublicKeyTypes],
    *,
    uri: str,
    now: dt.datetime,
    max_age: dt.timedelta,
    skew: dt.timedelta = dt.timedelta(minutes=5),
) -> StatusListToken:
    """Verify a Status List Token signed by one of ``keys`` for the list at ``uri``.

    Refuses (raises :class:`StatusListError`): a token that is not a compact
    JWS with ``typ: statuslist+jwt``; a signature none of ``keys`` verifies;
    ``sub`` other than ``uri`` (§8.3: the list a certificate refers to and the
    list fetched must be the same); a token past ``exp``; a token issued more
    than ``max_age`` before ``now`` (a stale list could hide a revocation).
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > _MAX_COMPRESSED * 2:
        raise StatusListError("a status list token is a compact JWT", reason="format")
    try:
        header_b64 = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: JSON nested thousands deep
        raise StatusListError(
            "the status list token's header cannot be read", reason="format"
        ) from None
    if not isinstance(header, dict) or header.get("typ") != TYP:
        raise StatusListError(f"a status list token has typ {TYP}", reason="format")
    if header.get("alg") not in _ALGORITHMS:
        raise StatusListError(
            "the status list token uses an algorithm not allowed", reason="signature"
        )
    payload: bytes | None = None
    for key in keys:
        try:
            obj = jws.deserialize_compact(
                token, _jwk(key), algorithms=_ALGORITHMS, registry=_REGISTRY
            )
        except (JoseError, ValueError):
            continue
        payload = obj.payload
        break
    if payload is None:
        raise StatusListError(
            "the status list's signature does not verify with the issuer's key", reason="signature"
        )
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise StatusListError("the status list's claims are not JSON", reason="format") from None
    if not isinstance(claims, dict):
        raise StatusListError("the status list's claims are not an object", reason="format")
    if claims.get("sub") != uri:
        raise StatusListError(
            "the status list names another URI than the one the certificate refers to", reason="uri"
        )
    iat = _ts(claims.get("iat"), "iat")
    exp = _ts(claims["exp"], "exp") if "exp" in claims else None
    ttl = claims.get("ttl")
    if ttl is not None and (type(ttl) is not int or ttl < 0):
        raise StatusListError(
            "the status list's ttl must be a whole number of seconds", reason="format"
        )
    if iat > now + skew:
        raise StatusListError("the status list is dated in the future", reason="format")
    if exp is not None and now >= exp + skew:
        raise StatusListError(
            f"the status list expired {_describe_age(now - exp)} ago; its status cannot be trusted",
            reason="expired",
        )
    age = now - iat
    if age > max_age:
        raise StatusListError(
            f"the status list is {_describe_age(age)} old, older than the allowed "
            f"{_describe_age(max_age)}; the status cannot be confirmed",
            reason="too_old",
        )
    status_list = StatusList.decode(claims.get("status_list"))
    logger.debug("status list %s verified: %d entries, age %s", uri, status_list.size, age)
    return StatusListToken(uri=uri, issued_at=iat, expires_at=exp, ttl=ttl, status_list=status_list)


def describe_age(age: dt.timedelta) -> str:
    """``"3 minutes"``: how pages and the CLI say how old a cached list is."""
    return _describe_age(age)

