"""A DPoP client for tests: a key pair and proofs for it (RFC 9449 §4.2), honest or crafted."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import warnings
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keys.backend import b64url
from keys.dpop import jwk_thumbprint

__all__ = ["DPoPKey", "raw_jws"]


def raw_jws(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """An unsigned (or arbitrarily signed) compact JWS, for attacks."""
    enc = lambda v: b64url(json.dumps(v, separators=(",", ":")).encode())  # noqa: E731
    return f"{enc(header)}.{enc(claims)}.{b64url(signature)}"


class DPoPKey:
    """One DPoP key pair (ES256 by default)."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg == "ES256":
            self.key: Any = ECKey.generate_key("P-256")
        elif alg == "EdDSA":
            self.key = OKPKey.generate_key("Ed25519")
        else:
            self.key = RSAKey.generate_key(2048)
        self.public = self.key.as_dict(private=False)
        self.jkt = jwk_thumbprint(self.public)

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None,
              iat: float | None = None, jti: str | None = None, header: dict[str, Any] | None = None,
              **extra: Any) -> str:
        claims: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(12), "htm": method, "htu": url,
                                  "iat": int(time.time() if iat is None else iat)}
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(extra)
        hdr = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public, **(header or {})}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jws.serialize_compact(hdr, json.dumps(claims).encode(), self.key, algorithms=[hdr["alg"]])
