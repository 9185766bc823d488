"""Compact JWS signing through a :class:`~keys.backend.Signer` (RFC 7515 §7.1).

A JOSE library wants the private key in hand, which an HSM never gives; so
Yiwang *produces* compact JWS here, with the signature from ``signer.sign()``,
and *verifies* everywhere with a library (Authlib / joserfc) and the JWKS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .backend import Signer, b64url

__all__ = ["encode_jws"]

_PROTECTED = frozenset({"alg", "kid"})


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_jws(
    signer: Signer,
    claims: Mapping[str, Any],
    *,
    typ: str | None = "JWT",
    extra_headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` as a compact JWS with header ``{"alg", "kid", "typ"}``.

    ``extra_headers`` may add members (e.g. ``"typ": "logout+jwt"`` through
    ``typ``, or ``x5c``) but not replace ``alg`` or ``kid``, which always
    describe the signer. ECDSA signatures are raw ``r || s`` (RFC 7518 §3.4).
    """
    header: dict[str, Any] = {"alg": signer.algorithm, "kid": signer.kid}
    if typ is not None:
        header["typ"] = typ
    if extra_headers:
        clash = _PROTECTED & set(extra_headers)
        if clash:
            raise ValueError(f"extra_headers may not set {', '.join(sorted(clash))}")
        header.update(extra_headers)
    signing_input = b64url(_json(header)) + "." + b64url(_json(claims))
    signature = signer.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)
