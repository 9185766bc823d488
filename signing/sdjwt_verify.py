"""Verifying an SD-JWT VC presentation (issue 15 §2): issuer, disclosures, key binding.

A presentation is ``<issuer-signed JWT>~<disclosure>~…~<KB-JWT>`` (SD-JWT,
RFC 9901 §4; SD-JWT VC, draft-ietf-oauth-sd-jwt-vc). :func:`verify_presentation`
refuses it (raises :class:`SdJwtError` with a stable ``reason``) unless all of
these hold:

* the issuer JWT's header has ``typ`` ``dc+sd-jwt`` (``vc+sd-jwt``, the
  earlier name, is accepted, SD-JWT VC §3.2.1), an allowed ``alg``, and a
  ``kid`` naming a key of the trust list — the RFC 7638 thumbprint of the
  agency's key (what :mod:`signing.sdjwt_issue` writes), or the QR key id of
  its signer certificate (:func:`signing.qr.codec.qr_kid`, base64url or hex) —
  and the signature verifies with it;
* ``vct`` is ``<iss>/vct/<TYPE>`` and that issuer may issue ``TYPE``: a
  foreign region's issuer only carries the types agreed with its region
  (:mod:`signing.trustlist`), so this is also the cross-region rule;
* ``iat`` lies within the signer certificate's validity, ``nbf`` / ``exp``
  around ``now`` (± ``skew``);
* every disclosure's digest (``_sd_alg`` sha-256) is referenced exactly once
  by an ``_sd`` array or a ``{"...": digest}`` array element of the signed
  payload or of an earlier disclosure (§7.1): a disclosure nobody signed, or
  a changed one, matches no digest and is refused, not ignored; the claims
  SD-JWT VC forbids disclosing (``iss``, ``vct``, ``cnf``, ``status`` …) and
  a name that is already there are refused;
* the key-binding JWT (§4.3) has ``typ`` ``kb+jwt``, is signed by the key in
  ``cnf.jwk``, its ``aud`` is the verifier, its ``nonce`` the request's
  nonce, its ``sd_hash`` the digest of everything before it, and its ``iat``
  is fresh.

Status is not looked up here (the caller has the status list cache); the
result says where it is (``status_uri``, ``status_index``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import JWSRegistry

from keys.backend import jwk_thumbprint

from .errors import SigningError
from .qr.trust import TrustedIssuer, TrustList

__all__ = [
    "TYP",
    "KB_TYP",
    "SdJwtError",
    "Presentation",
    "verify_presentation",
    "split_presentation",
    "issuer_kid",
    "type_of_vct",
]

TYP = "dc+sd-jwt"
"""``typ`` of an SD-JWT VC (SD-JWT VC §3.2.1)."""
KB_TYP = "kb+jwt"
"""``typ`` of a key-binding JWT (RFC 9901 §4.3)."""
_TYPS = frozenset({TYP, "vc+sd-jwt"})
_ALGORITHMS = ["ES256", "ES384", "EdDSA"]
_MAX_LENGTH = 64 * 1024
_MAX_DISCLOSURES = 200
_MAX_DEPTH = 8
_NOT_DISCLOSABLE = frozenset({"iss", "nbf", "exp", "iat", "cnf", "vct", "vct#integrity", "status", "_sd", "...", "_sd_alg"})
"""Claims an issuer must not make selectively disclosable (SD-JWT VC §3.2.2.2), and the SD-JWT keywords."""


class _Registry(JWSRegistry):
    max_header_length = 2048
    max_payload_length = _MAX_LENGTH


_REGISTRY = _Registry(algorithms=_ALGORITHMS)


class SdJwtError(SigningError):
    """A presentation refused. ``reason`` is a short stable code for programs:
    ``format``, ``typ``, ``unknown_issuer``, ``signature``, ``type_not_allowed``,
    ``issuer_certificate``, ``expired``, ``not_yet_valid``, ``disclosure``,
    ``key_binding``, ``audience``, ``nonce``, ``sd_hash``, ``stale``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Presentation:
    """What a verified presentation says: only the disclosed claims beside the always-visible ones."""

    issuer: TrustedIssuer
    """The trust-list entry whose key signed the credential."""
    iss: str
    vct: str
    type_code: str
    claims: dict[str, Any]
    """The credential's claims after disclosure (the registered ones such as ``iss``, ``cnf`` apart)."""
    disclosed: frozenset[tuple[str | int | None, ...]]
    """The path of every disclosure (``None`` for an array element)."""
    status_uri: str | None
    status_index: int | None
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    holder_jwk: dict[str, Any]
    kb_issued_at: dt.datetime


def _b64d(text: str) -> bytes:
    if not isinstance(text, str) or not text or "=" in text:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _digest(text: str) -> str:
    return _b64e(hashlib.sha256(text.encode("ascii")).digest())


def _json_part(part: str, what: str) -> Any:
    try:
        return json.loads(_b64d(part))
    except (ValueError, binascii.Error, RecursionError, UnicodeDecodeError):
        raise SdJwtError(f"{what} is not base64url JSON", reason="format") from None


def split_presentation(text: str) -> tuple[str, list[str], str]:
    """``(issuer JWT, [disclosures], KB-JWT)``; the KB-JWT is required here."""
    if not isinstance(text, str) or not text or len(text) > _MAX_LENGTH or not text.isascii():
        raise SdJwtError("a presentation is an SD-JWT text of at most 64 KiB", reason="format")
    parts = text.strip().split("~")
    if len(parts) < 2:
        raise SdJwtError("not an SD-JWT (no '~' separator)", reason="format")
    jwt, disclosures, kb = parts[0], parts[1:-1], parts[-1]
    if not kb:
        raise SdJwtError("the presentation has no key-binding JWT", reason="key_binding")
    if len(disclosures) > _MAX_DISCLOSURES or any(not d for d in disclosures):
        raise SdJwtError("empty or too many disclosures", reason="format")
    if jwt.count(".") != 2 or kb.count(".") != 2:
        raise SdJwtError("the issuer JWT and the key-binding JWT are compact JWS", reason="format")
    return jwt, disclosures, kb


def issuer_kid(issuer: TrustedIssuer) -> str:
    """The ``kid`` the issuer side writes (:mod:`signing.sdjwt_issue` through :func:`keys.jws.encode_jws`):
    the RFC 7638 thumbprint of the agency key whose certificate is in the trust list."""
    cached = _THUMBPRINTS.get(issuer.certificate)
    if cached is None:
        cached = jwk_thumbprint(issuer.public_key)
        if len(_THUMBPRINTS) > 1024:
            _THUMBPRINTS.clear()
        _THUMBPRINTS[issuer.certificate] = cached
    return cached


_THUMBPRINTS: dict[Any, str] = {}


def _lookup(trust: TrustList, kid: Any) -> TrustedIssuer | None:
    """The trust-list entry a header ``kid`` names: the key's JWK thumbprint, or the QR key id
    (8 bytes, base64url or hex) — the same key either way."""
    if not isinstance(kid, str) or not (4 <= len(kid) <= 64):
        return None
    if len(kid) == 43:
        for issuer in trust:
            if hmac.compare_digest(issuer_kid(issuer), kid):
                return issuer
        return None
    candidates: list[bytes] = []
    for decode in (_b64d, bytes.fromhex):
        with contextlib.suppress(ValueError, binascii.Error):
            candidates.append(decode(kid))
    for raw in candidates:
        if len(raw) == 8 and raw in trust:
            return trust.get(raw)
    return None


def _jwk(key: PublicKeyTypes) -> ECKey | OKPKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    raise SdJwtError("the issuer's key type cannot sign an SD-JWT here", reason="signature")


def type_of_vct(vct: Any, iss: Any) -> str:
    """``TYPE`` of a ``vct`` of the form ``<iss>/vct/<TYPE>`` (the agreed shape), or refuse."""
    if not isinstance(vct, str) or not isinstance(iss, str) or not iss:
        raise SdJwtError("the credential has no vct or iss", reason="format")
    prefix = iss.rstrip("/") + "/vct/"
    code = vct[len(prefix):] if vct.startswith(prefix) else ""
    if not code or not code.isascii() or not code.replace("_", "").isalnum() or len(code) > 24:
        raise SdJwtError("vct is not <iss>/vct/<type>", reason="format")
    return code


def _time(value: Any, name: str) -> dt.datetime:
    if type(value) is not int or not (0 <= value <= 253_402_300_799):
        raise SdJwtError(f"{name} must be a NumericDate", reason="format")
    return dt.datetime.fromtimestamp(value, dt.UTC)


class _Disclosures:
    """The disclosures by digest; each must be used exactly once (RFC 9901 §7.1 steps 3–5)."""

    def __init__(self, items: list[str]) -> None:
        self.by_digest: dict[str, list[Any]] = {}
        for item in items:
            value = _json_part(item, "a disclosure")
            if not isinstance(value, list) or len(value) not in (2, 3) or not isinstance(value[0], str):
                raise SdJwtError("a disclosure is [salt, name, value] or [salt, value]", reason="disclosure")
            if len(value) == 3 and not isinstance(value[1], str):
                raise SdJwtError("a disclosure's claim name is a string", reason="disclosure")
            digest = _digest(item)
            if digest in self.by_digest:
                raise SdJwtError("the same disclosure is given twice", reason="disclosure")
            self.by_digest[digest] = value
        self.used: set[str] = set()
        self.seen: set[str] = set()
        self.paths: set[tuple[str | int | None, ...]] = set()

    def _take(self, digest: Any) -> list[Any] | None:
        if not isinstance(digest, str):
            raise SdJwtError("a digest is a string", reason="disclosure")
        if digest in self.seen:
            raise SdJwtError("a digest appears twice in the credential", reason="disclosure")
        self.seen.add(digest)
        found = self.by_digest.get(digest)
        if found is not None:
            self.used.add(digest)
        return found

    def expand(self, node: Any, path: tuple[str | int | None, ...], depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise SdJwtError("the credential is nested too deeply", reason="format")
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            digests = node.get("_sd", [])
            if not isinstance(digests, list):
                raise SdJwtError("_sd is an array of digests", reason="disclosure")
            for key, value in node.items():
                if key in ("_sd", "_sd_alg"):
                    continue
                if key == "...":
                    raise SdJwtError("'...' is only for array elements", reason="disclosure")
                out[key] = self.expand(value, path + (key,), depth + 1)
            for digest in digests:
                found = self._take(digest)
                if found is None:
                    continue  # a decoy, or a claim not disclosed
                if len(found) != 3:
                    raise SdJwtError("an array-element disclosure is referenced from an object", reason="disclosure")
                name = found[1]
                if name in _NOT_DISCLOSABLE:
                    raise SdJwtError(f"claim {name!r} may not be selectively disclosed", reason="disclosure")
                if name in out:
                    raise SdJwtError(f"claim {name!r} is disclosed beside a plain one", reason="disclosure")
                self.paths.add(path + (name,))
                out[name] = self.expand(found[2], path + (name,), depth + 1)
            return out
        if isinstance(node, list):
            items: list[Any] = []
            for element in node:
                if isinstance(element, dict) and "..." in element:
                    if len(element) != 1:
                        raise SdJwtError("an array digest stands alone", reason="disclosure")
                    found = self._take(element["..."])
                    if found is None:
                        continue
                    if len(found) != 2:
                        raise SdJwtError("an object disclosure is referenced from an array", reason="disclosure")
                    self.paths.add(path + (None,))
                    items.append(self.expand(found[1], path + (None,), depth + 1))
                else:
                    items.append(self.expand(element, path + (None,), depth + 1))
            return items
        return node


_REGISTERED = frozenset({"iss", "sub", "vct", "vct#integrity", "cnf", "status", "iat", "nbf", "exp", "jti", "aud"})


def _personal(expanded: dict[str, Any]) -> dict[str, Any]:
    """The credential's own claims, without the registered JWT / SD-JWT VC ones (reported apart)."""
    return {k: v for k, v in expanded.items() if k not in _REGISTERED}


def _verify_jws(token: str, key: ECKey | OKPKey, what: str, reason: str) -> bytes:
    try:
        obj = jws.deserialize_compact(token, key, algorithms=_ALGORITHMS, registry=_REGISTRY)
    except (JoseError, ValueError) as e:
        raise SdJwtError(f"the {what}'s signature does not verify", reason=reason) from e
    return obj.payload


def _holder_key(cnf: Any) -> tuple[dict[str, Any], ECKey | OKPKey]:
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in ("EC", "OKP"):
        raise SdJwtError("the credential binds no public holder key (cnf.jwk)", reason="key_binding")
    try:
        key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else OKPKey.import_key(jwk)
    except (JoseError, ValueError, KeyError, TypeError) as e:
        raise SdJwtError("cnf.jwk is not a usable public key", reason="key_binding") from e
    return dict(jwk), key


def verify_presentation(
    text: str,
    trust: TrustList,
    *,
    audience: str,
    nonce: str,
    now: dt.datetime,
    kb_max_age: dt.timedelta = dt.timedelta(minutes=5),
    skew: dt.timedelta = dt.timedelta(minutes=1),
) -> Presentation:
    """Verify an SD-JWT VC presentation for ``audience`` and ``nonce``; raise :class:`SdJwtError` if refused."""
    jwt, items, kb = split_presentation(text)
    header = _json_part(jwt.split(".", 1)[0], "the issuer JWT's header")
    if not isinstance(header, dict) or header.get("typ") not in _TYPS:
        raise SdJwtError(f"the credential's typ is not {TYP}", reason="typ")
    if header.get("alg") not in _ALGORITHMS:
        raise SdJwtError("the credential's alg is not allowed", reason="signature")
    issuer = _lookup(trust, header.get("kid"))
    if issuer is None:
        raise SdJwtError("the credential's key id is not in the trust list", reason="unknown_issuer")
    try:
        payload = json.loads(_verify_jws(jwt, _jwk(issuer.public_key), "credential", "signature"))
    except (ValueError, RecursionError):
        raise SdJwtError("the credential's claims are not JSON", reason="format") from None
    if not isinstance(payload, dict):
        raise SdJwtError("the credential's claims are not an object", reason="format")
    if payload.get("_sd_alg", "sha-256") != "sha-256":
        raise SdJwtError("only _sd_alg sha-256 is accepted", reason="disclosure")
    iss, vct = payload.get("iss"), payload.get("vct")
    type_code = type_of_vct(vct, iss)
    if type_code not in issuer.allowed_types:
        raise SdJwtError(
            f"issuer {issuer.uscc} (region {issuer.region}) may not issue type {type_code}", reason="type_not_allowed"
        )
    issued_at = _time(payload.get("iat"), "iat")
    cert = issuer.certificate
    if not (cert.not_valid_before_utc - skew <= issued_at <= cert.not_valid_after_utc):
        raise SdJwtError("the credential was issued outside its signer certificate's validity", reason="issuer_certificate")
    expires_at = _time(payload["exp"], "exp") if "exp" in payload else None
    if expires_at is not None and now >= expires_at + skew:
        raise SdJwtError("the credential has expired", reason="expired")
    if "nbf" in payload and now + skew < _time(payload["nbf"], "nbf"):
        raise SdJwtError("the credential is not valid yet", reason="not_yet_valid")
    if issued_at > now + skew:
        raise SdJwtError("the credential is dated in the future", reason="not_yet_valid")
    disclosures = _Disclosures(items)
    expanded = disclosures.expand(payload, ())
    if disclosures.used != set(disclosures.by_digest):
        raise SdJwtError("a disclosure is not covered by the issuer's signature", reason="disclosure")
    holder_jwk, holder_key = _holder_key(payload.get("cnf"))
    kb_at = _check_kb(kb, holder_key, jwt, items, audience=audience, nonce=nonce, now=now, max_age=kb_max_age, skew=skew)
    status_uri, status_index = _status(payload.get("status"))
    return Presentation(
        issuer=issuer,
        iss=str(iss),
        vct=str(vct),
        type_code=type_code,
        claims=_personal(expanded),
        disclosed=frozenset(disclosures.paths),
        status_uri=status_uri,
        status_index=status_index,
        issued_at=issued_at,
        expires_at=expires_at,
        holder_jwk=holder_jwk,
        kb_issued_at=kb_at,
    )


def _check_kb(
    kb: str,
    key: ECKey | OKPKey,
    jwt: str,
    items: list[str],
    *,
    audience: str,
    nonce: str,
    now: dt.datetime,
    max_age: dt.timedelta,
    skew: dt.timedelta,
) -> dt.datetime:
    """RFC 9901 §7.3: the KB-JWT's typ, signature by the holder key, aud, nonce, sd_hash, iat."""
    header = _json_part(kb.split(".", 1)[0], "the key-binding JWT's header")
    if not isinstance(header, dict) or header.get("typ") != KB_TYP:
        raise SdJwtError(f"the key-binding JWT's typ is not {KB_TYP}", reason="key_binding")
    try:
        claims = json.loads(_verify_jws(kb, key, "key-binding JWT", "key_binding"))
    except (ValueError, RecursionError):
        raise SdJwtError("the key-binding JWT's claims are not JSON", reason="format") from None
    if not isinstance(claims, dict):
        raise SdJwtError("the key-binding JWT's claims are not an object", reason="format")
    aud = claims.get("aud")
    if not isinstance(aud, str) or not hmac.compare_digest(aud.encode(), audience.encode()):
        raise SdJwtError("the presentation was made for another verifier (aud)", reason="audience")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise SdJwtError("the presentation answers another request (nonce)", reason="nonce")
    expected = _digest(jwt + "~" + "".join(d + "~" for d in items))
    sd_hash = claims.get("sd_hash")
    if not isinstance(sd_hash, str) or not hmac.compare_digest(sd_hash.encode(), expected.encode()):
        raise SdJwtError("the key-binding JWT covers other disclosures (sd_hash)", reason="sd_hash")
    at = _time(claims.get("iat"), "the key-binding JWT's iat")
    if at > now + skew or now - at > max_age:
        raise SdJwtError("the key-binding JWT is not fresh (iat)", reason="stale")
    return at


def _status(value: Any) -> tuple[str | None, int | None]:
    if value is None:
        return None, None
    ref = value.get("status_list") if isinstance(value, dict) else None
    if not isinstance(ref, dict) or not isinstance(ref.get("uri"), str) or type(ref.get("idx")) is not int or ref["idx"] < 0:
        raise SdJwtError("status is {status_list: {idx, uri}}", reason="format")
    return ref["uri"], ref["idx"]
