"""Issuing SD-JWT VCs (draft-ietf-oauth-sd-jwt-vc, format ``dc+sd-jwt``) through a keys/ signer.

The disclosures and the ``_sd`` digests are built by the ``sd-jwt`` library
(the IETF reference implementation, RFC 9901 / draft-ietf-oauth-selective-
disclosure-jwt): random 128-bit salts, ``sha-256`` digests, sorted, and decoy
digests so a verifier cannot count the hidden claims. The library signs with
a jwcrypto private key in hand, which an HSM never gives; so the one step it
does not do here is the signature: :class:`_KeysIssuer` replaces it with
:func:`keys.jws.encode_jws` and the agency's :class:`~keys.backend.Signer` —
the same key and ``kid`` as the QR payload, which never leaves keys/.

What the credential holds (SD-JWT VC §3.2.2):

* always visible (never selectively disclosable, §3.2.2.2): ``iss``, ``vct``,
  ``iat``, ``nbf``, ``exp`` (when the certificate expires), ``cnf.jwk`` (the
  holder key, RFC 7800 §3.2) and ``status.status_list {idx, uri}``
  (draft-ietf-oauth-status-list §6.2);
* every claim in :attr:`CredentialClaims.disclosable` — all personal claims,
  the certificate identifier and the paper serial included — each its own
  top-level disclosure, so a holder can show "resides in Beijing since 2020"
  and nothing else.

Header: ``alg`` (ES256 for the agency's P-256 key), ``kid``, ``typ: dc+sd-jwt``.
The result is the issuance form ``<jwt>~<disclosure>~…~`` (no key binding JWT:
the holder adds one per presentation).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sd_jwt.common import SDObj
from sd_jwt.issuer import SDJWTIssuer

from keys.backend import Signer
from keys.jws import encode_jws

from .errors import SigningError

__all__ = [
    "TYP",
    "FORMAT",
    "RESERVED_CLAIMS",
    "CredentialClaims",
    "IssuedCredential",
    "SdJwtIssueError",
    "check_holder_jwk",
    "issue_sd_jwt_vc",
]

TYP = "dc+sd-jwt"
"""The JWT ``typ`` of an SD-JWT VC (draft-ietf-oauth-sd-jwt-vc -09 §3.2.1)."""
FORMAT = "dc+sd-jwt"
"""The OpenID4VCI 1.0 credential format identifier (Appendix A.3)."""
RESERVED_CLAIMS = frozenset({"iss", "vct", "iat", "nbf", "exp", "cnf", "status", "_sd", "_sd_alg", "sub", "vct#integrity"})
"""Claims the credential sets itself; none may be made selectively disclosable."""

_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
}
_CURVES = {"EC": ("P-256",), "OKP": ("Ed25519",)}
_COORDINATE = {"P-256": 32, "Ed25519": 32}


class SdJwtIssueError(SigningError):
    """The credential cannot be built: a bad holder key, a reserved claim name, a bad value."""


@dataclass(frozen=True)
class CredentialClaims:
    """What one SD-JWT VC says; :func:`issue_sd_jwt_vc` signs it."""

    issuer: str
    """``iss``: the credential issuer identifier (certstore's public URL)."""
    vct: str
    """``vct``: the credential type (``<public url>/vct/<type code>``)."""
    holder_jwk: Mapping[str, Any]
    """The holder's public key (``cnf.jwk``), from the wallet's key proof."""
    status_uri: str
    """``status.status_list.uri``: the Status List Token's URI."""
    status_index: int
    """``status.status_list.idx``: the certificate's private random position."""
    issued_at: int
    """``iat`` (seconds since the epoch)."""
    disclosable: Mapping[str, Any]
    """Every personal claim: each becomes one disclosure (``None`` values are left out)."""
    not_before: int | None = None
    """``nbf``: the certificate's first valid day."""
    expires_at: int | None = None
    """``exp``: the end of the certificate's last valid day; ``None`` for an open-ended one."""
    visible: Mapping[str, Any] = field(default_factory=dict)
    """Non-personal claims shown always (e.g. the issuing agency); none of :data:`RESERVED_CLAIMS`."""


@dataclass(frozen=True)
class IssuedCredential:
    credential: str
    """The issuance form ``<issuer-signed JWT>~<disclosure>~…~``."""
    payload: dict[str, Any]
    """The signed payload (digests, not values, for the disclosable claims)."""
    disclosures: tuple[str, ...]
    """The base64url disclosures, in the order of the credential."""


def _b64_length(value: str) -> int:
    try:
        return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        return -1


def check_holder_jwk(jwk: Any) -> dict[str, str]:
    """The public members of a holder key (P-256 or Ed25519), or :class:`SdJwtIssueError`.

    A JWK carrying private members (``d``) is refused: a wallet that sends its
    private key has lost it.
    """
    if not isinstance(jwk, Mapping):
        raise SdJwtIssueError("the holder key must be a JWK object")
    if "d" in jwk or "p" in jwk or "k" in jwk:
        raise SdJwtIssueError("the holder key must be a public key (it carries private members)")
    kty = jwk.get("kty")
    members = _PUBLIC_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or jwk.get("crv") not in _CURVES[str(kty)]:
        raise SdJwtIssueError("the holder key must be an EC P-256 or an OKP Ed25519 key")
    out = {m: jwk.get(m) for m in members}
    if not all(isinstance(v, str) for v in out.values()):
        raise SdJwtIssueError("the holder key lacks a coordinate")
    size = _COORDINATE[str(jwk["crv"])]
    if _b64_length(str(out["x"])) != size or ("y" in out and _b64_length(str(out["y"])) != size):
        raise SdJwtIssueError("the holder key's coordinates have the wrong length")
    return {k: str(v) for k, v in out.items()}


class _KeysIssuer(SDJWTIssuer):  # type: ignore[misc]
    """The library's issuer with the signature made by a keys/ signer."""

    SD_JWT_HEADER = TYP

    def __init__(self, user_claims: dict[str, Any], signer: Signer, *, decoys: bool) -> None:
        self._signer = signer
        self._top_decoys = decoys
        # The library's own decoys would go into every object, cnf.jwk and status included;
        # ours go only into the top-level _sd, where the personal claims are.
        super().__init__(user_claims, issuer_key=None, sign_alg=signer.algorithm, add_decoy_claims=False)

    def _assemble_sd_jwt_payload(self) -> None:
        super()._assemble_sd_jwt_payload()
        if self._top_decoys:
            # SD-JWT §4.2.5: decoy digests hide how many claims there are.
            digests = list(self.sd_jwt_payload.get("_sd", []))
            digests += [self._create_decoy_claim_entry() for _ in range(2 + secrets.randbelow(4))]
            self.sd_jwt_payload["_sd"] = sorted(digests)

    def _create_signed_jws(self) -> None:
        # draft-ietf-oauth-sd-jwt-vc §3.2.1: typ dc+sd-jwt; kid names the agency key in the trust list.
        self.serialized_sd_jwt = encode_jws(self._signer, self.sd_jwt_payload, typ=TYP)


def issue_sd_jwt_vc(claims: CredentialClaims, signer: Signer, *, decoys: bool = True) -> IssuedCredential:
    """Sign ``claims`` as an SD-JWT VC with ``signer`` (the agency's key), bound to the holder key."""
    holder = check_holder_jwk(claims.holder_jwk)
    clash = (set(claims.disclosable) | set(claims.visible)) & RESERVED_CLAIMS
    if clash:
        raise SdJwtIssueError(f"claims the credential sets itself cannot be given: {', '.join(sorted(clash))}")
    if set(claims.disclosable) & set(claims.visible):
        raise SdJwtIssueError("a claim cannot be both disclosable and visible")
    if type(claims.status_index) is not int or claims.status_index < 0:
        raise SdJwtIssueError("the status index must be a non-negative integer")
    user: dict[Any, Any] = {"iss": claims.issuer, "vct": claims.vct, "iat": int(claims.issued_at)}
    if claims.not_before is not None:
        user["nbf"] = int(claims.not_before)
    if claims.expires_at is not None:
        user["exp"] = int(claims.expires_at)
    user["cnf"] = {"jwk": holder}
    user["status"] = {"status_list": {"idx": claims.status_index, "uri": claims.status_uri}}
    user.update(dict(claims.visible))
    for name, value in claims.disclosable.items():
        if value is not None:
            user[SDObj(name)] = value
    try:
        built = _KeysIssuer(user, signer, decoys=decoys)
    except (TypeError, ValueError) as e:
        raise SdJwtIssueError(f"the credential cannot be built: {e}") from e
    disclosures = tuple(d.b64 for d in built.ii_disclosures)
    credential = "~".join((built.serialized_sd_jwt, *disclosures)) + "~"
    return IssuedCredential(credential=credential, payload=dict(built.sd_jwt_payload), disclosures=disclosures)


def decode_disclosure(disclosure: str) -> list[Any]:
    """``[salt, name, value]`` of one disclosure (tests and tools; no verification)."""
    raw = base64.urlsafe_b64decode(disclosure + "=" * (-len(disclosure) % 4))
    value = json.loads(raw)
    if not isinstance(value, list):
        raise SdJwtIssueError("a disclosure is a JSON array")
    return value
