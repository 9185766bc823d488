"""c_nonces and key proofs of type ``jwt`` (OpenID4VCI 1.0 §7 and Appendix F.1).

Nonces (§7): the nonce endpoint writes nothing. A c_nonce is
``<issued-at, 16 random bytes>.<HMAC>`` under a key every worker shares
(``keyring.secret("vci-nonce")``), valid :data:`NONCE_SECONDS`. It is
*consumed* once, by the credential request that uses it (``SET NX`` in
Redis until it would have expired anyway), so an anonymous caller cannot
fill Redis through the nonce endpoint and a proof cannot be replayed.

Proofs (Appendix F.1, F.4): a compact JWS with ``typ:
openid4vci-proof+jwt``, ``alg`` in :data:`~certstore.vci.metadata.PROOF_ALGORITHMS`
(never ``none`` or a MAC), the holder's public key in the ``jwk`` header
(private members refused), signed by that key; ``aud`` the credential
issuer's identifier; ``iat`` no older than :data:`PROOF_MAX_AGE` and not in
the future beyond :data:`SKEW`; ``nonce`` a valid c_nonce of ours; ``iss``
the client id when the wallet has one (absent in the anonymous
pre-authorized code flow). The signature is checked by joserfc.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from signing.sdjwt_issue import SdJwtIssueError, check_holder_jwk

from .errors import InvalidNonce, InvalidProof
from .metadata import PROOF_ALGORITHMS

__all__ = ["PROOF_TYP", "NONCE_SECONDS", "PROOF_MAX_AGE", "SKEW", "Nonces", "Proof", "verify_proof"]

PROOF_TYP = "openid4vci-proof+jwt"
NONCE_SECONDS = 300
PROOF_MAX_AGE = 300
SKEW = 60
_MAX_PROOF = 8192
_KEY_ALG = {("EC", "P-256"): "ES256", ("OKP", "Ed25519"): "EdDSA"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Nonces:
    """Stateless c_nonces, consumed once in Redis."""

    def __init__(self, key: bytes, *, redis: Callable[[], Any], prefix: str, clock: Callable[[], float]) -> None:
        self._key = key
        self._redis = redis
        self._prefix = prefix
        self._clock = clock

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:16])

    def issue(self) -> str:
        body = _b64(int(self._clock()).to_bytes(8, "big") + secrets.token_bytes(16))
        return f"{body}.{self._mac(body)}"

    def check(self, nonce: Any) -> None:
        """A nonce we issued that has not expired (not yet consumed: see :meth:`consume`)."""
        if not isinstance(nonce, str) or len(nonce) > 128 or nonce.count(".") != 1:
            raise InvalidNonce("the proof's nonce is not a c_nonce of this issuer; ask the nonce endpoint")
        body, mac = nonce.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidNonce("the proof's nonce is not a c_nonce of this issuer; ask the nonce endpoint")
        try:
            issued = int.from_bytes(_unb64(body)[:8], "big")
        except ValueError:
            raise InvalidNonce("the proof's nonce cannot be read") from None
        if not issued - SKEW <= self._clock() <= issued + NONCE_SECONDS:
            raise InvalidNonce("the c_nonce has expired; ask the nonce endpoint for a new one")

    def consume(self, nonce: str) -> None:
        """Use ``nonce`` up (once per credential request); a second use is ``invalid_nonce``."""
        key = self._prefix + "nonce:" + hashlib.sha256(nonce.encode()).hexdigest()
        if not self._redis().set(key, b"1", nx=True, ex=NONCE_SECONDS + SKEW):
            raise InvalidNonce("this c_nonce was used already; ask the nonce endpoint for a new one")


@dataclass(frozen=True)
class Proof:
    jwk: dict[str, str]
    """The holder's public key (``kty``, ``crv``, ``x``[, ``y``])."""
    nonce: str


def _segment(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(part))
    except (ValueError, RecursionError):
        raise InvalidProof(f"the proof's {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise InvalidProof(f"the proof's {what} is not a JSON object")
    return value


def verify_proof(
    token: Any, *, audience: str, now: float, nonces: Nonces, client_id: str | None = None
) -> Proof:
    """Check one ``jwt`` key proof; the holder key and nonce it carries, or ``invalid_proof`` / ``invalid_nonce``."""
    if not isinstance(token, str) or len(token) > _MAX_PROOF or token.count(".") != 2:
        raise InvalidProof("a jwt proof is a compact JWS")
    header = _segment(token.split(".")[0], "header")
    if header.get("typ") != PROOF_TYP:
        raise InvalidProof(f"a jwt proof has typ {PROOF_TYP}")
    alg = header.get("alg")
    if alg not in PROOF_ALGORITHMS:
        raise InvalidProof("the proof's alg is not allowed (" + ", ".join(PROOF_ALGORITHMS) + ")")
    if "jwk" not in header or "kid" in header or "x5c" in header:
        raise InvalidProof("the proof must carry the holder's public key in its jwk header (kid and x5c are not supported)")
    try:
        jwk = check_holder_jwk(header["jwk"])
    except SdJwtIssueError as e:
        raise InvalidProof(str(e)) from None
    if _KEY_ALG.get((jwk["kty"], jwk["crv"])) != alg:
        raise InvalidProof("the proof's alg does not match its key")
    key = ECKey.import_key(dict(jwk)) if jwk["kty"] == "EC" else OKPKey.import_key(dict(jwk))
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[alg])
    except (JoseError, ValueError):
        raise InvalidProof("the proof's signature does not verify with its key") from None
    try:
        claims = json.loads(obj.payload)
    except (ValueError, RecursionError):
        raise InvalidProof("the proof's claims are not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidProof("the proof's claims are not a JSON object")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud and all(isinstance(a, str) for a in aud))):
        raise InvalidProof("the proof's aud is not this credential issuer")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise InvalidProof("the proof has no iat")
    if iat > now + SKEW:
        raise InvalidProof("the proof's iat is in the future")
    if iat < now - PROOF_MAX_AGE:
        raise InvalidProof("the proof is too old (iat)")
    if client_id is not None and "iss" in claims and claims["iss"] != client_id:
        raise InvalidProof("the proof's iss is not the client the token was issued to")
    nonce = claims.get("nonce")
    nonces.check(nonce)
    return Proof(jwk=jwk, nonce=str(nonce))
