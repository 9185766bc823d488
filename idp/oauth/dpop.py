"""DPoP (RFC 9449) at the idp: the token endpoint, PAR and userinfo.

The proof itself is checked by :mod:`keys.dpop` (shared with certstore);
this module decides *when* a proof is needed and what it binds:

* token endpoint (§5): a proof makes the tokens DPoP-bound
  (``request.binding.jkt`` → ``cnf.jkt``, ``token_type: DPoP``); a client
  registered ``dpop_bound_access_tokens`` gets no token without one; a public
  client's refresh token is bound to the key too;
* authorization code (§10): a code issued for ``dpop_jkt`` (authorization
  request or PAR) is redeemed only with a proof of that key;
* userinfo (§7): ``Authorization: DPoP`` with a proof carrying ``ath``; a
  bound token presented as Bearer is refused;
* nonces (§8, §9): at the endpoints named in ``dpop_nonce_endpoints``.

Requests without a ``DPoP`` header and unbound tokens cost one header look-up.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error

from keys.dpop import ALGORITHMS, DPoPError, DPoPProof, DPoPVerifier, NonceSource

from .binding import Binding, binding_of

__all__ = [
    "ATTRIBUTE",
    "IdpDPoP",
    "InvalidDPoPProofError",
    "UseDPoPNonceError",
    "JKT_PATTERN",
    "resource_challenge",
    "resource_refusal",
]

ATTRIBUTE = "dpop_bound_access_tokens"
"""``Client.attributes`` key (RFC 9449 §5.2): the client gets DPoP-bound tokens only."""
JKT_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""A base64url SHA-256 thumbprint (``dpop_jkt``, §10)."""
ALGS = " ".join(ALGORITHMS)


class InvalidDPoPProofError(OAuth2Error):
    """RFC 9449 §5, §7.1: the proof is missing, malformed or for another key."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):
    """RFC 9449 §8: the proof must carry the server's current nonce (given in ``DPoP-Nonce``)."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str, description: str | None = None) -> None:
        super().__init__(description or "a DPoP-Nonce is required")
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("DPoP-Nonce", self.nonce)]


def _one_header(headers: Any, name: str) -> str | None:
    value = headers.get(name)  # one look-up: a request without the header costs nothing more
    if not isinstance(value, str):
        return None
    getlist = getattr(headers, "getlist", None)
    if getlist is not None and len(getlist(name)) > 1:  # RFC 9449 §4.3 item 1
        raise DPoPError("more than one DPoP header")
    return value


class IdpDPoP:
    """The idp's DPoP policy over one :class:`~keys.dpop.DPoPVerifier`."""

    def __init__(self, verifier: DPoPVerifier, issuer: str, *, nonce_endpoints: frozenset[str] = frozenset(),
                 redis: Any = None, prefix: str = "") -> None:
        self.verifier = verifier
        self.issuer = issuer.rstrip("/")
        self.nonce_endpoints = nonce_endpoints
        self._r = redis
        self._retry_keys = f"{prefix}dpop:rt:"

    @classmethod
    def build(cls, redis: Any, prefix: str, keyring: Any, issuer: str, *, iat_window: int = 60,
              nonce_endpoints: frozenset[str] = frozenset(), clock: Any = None) -> IdpDPoP:
        kw = {"clock": clock} if clock is not None else {}
        nonces = NonceSource(keyring.secret("dpop-nonce"), **kw)
        return cls(DPoPVerifier(redis, prefix, nonces=nonces, iat_window=iat_window, **kw), issuer,
                   nonce_endpoints=nonce_endpoints, redis=redis, prefix=prefix)

    def nonce_header(self, endpoint: str) -> list[tuple[str, str]]:
        """``DPoP-Nonce`` for a response of ``endpoint`` when nonces are in use there."""
        return [("DPoP-Nonce", self.verifier.nonces.current())] if endpoint in self.nonce_endpoints else []

    def proof(self, headers: Any, *, endpoint: str, method: str = "POST",
              access_token: str | None = None) -> DPoPProof | None:
        """The request's verified proof, ``None`` without a ``DPoP`` header, else :class:`DPoPError`."""
        value = _one_header(headers, "DPoP")
        if value is None:
            return None
        return self.verifier.check(value, method=method, url=f"{self.issuer}/{endpoint}",
                                   access_token=access_token, require_nonce=endpoint in self.nonce_endpoints)

    # authorization server ------------------------------------------
    def oauth_proof(self, headers: Any, *, endpoint: str) -> DPoPProof | None:
        """:meth:`proof` with its refusals as OAuth errors (token endpoint, PAR)."""
        try:
            return self.proof(headers, endpoint=endpoint)
        except DPoPError as e:
            if e.error == "use_dpop_nonce":
                raise UseDPoPNonceError(self.verifier.nonces.current(), e.description) from None
            raise InvalidDPoPProofError(e.description) from None

    def bind_token_request(self, request: Any) -> DPoPProof | None:
        """Check the token request's proof and put its key on ``request.binding``."""
        proof = self.oauth_proof(request.headers, endpoint="token")
        if proof is not None:
            request.binding = dataclasses.replace(binding_of(request) or Binding(), jkt=proof.jkt)
        return proof

    @staticmethod
    def after_client_known(request: Any, client: Any) -> None:
        """Once the grant has authenticated the client (before a code or refresh token is taken):
        refuse a DPoP-only client without a proof, and bind a public client's refresh token
        to the key (RFC 9449 §5)."""
        binding = binding_of(request)
        jkt = binding.jkt if binding is not None else None
        if client is None:
            return
        if not jkt:
            if client.attribute(ATTRIBUTE, False):
                raise InvalidDPoPProofError("this client must send a DPoP proof (dpop_bound_access_tokens)")
            return
        if getattr(client, "is_public", False) and binding is not None:
            request.binding = dataclasses.replace(binding, bind_refresh=True)

    def check_retry_key(self, store: Any, jti: str, status: str, now: int, request: Any, grace: int) -> None:
        """Issue 20's one retry of a rotated refresh token must carry the DPoP key its first use
        carried (a bound token's key is checked in SQL; this covers a confidential client's
        unbound one). The key is remembered for the grace window, only for refreshes with a
        proof; a refused retry is released, so the honest one still works."""
        binding = binding_of(request)
        jkt = binding.jkt if binding is not None else None
        if grace <= 0 or self._r is None:
            return
        if status == "ok":
            if jkt:
                self._r.set(self._retry_keys + jti, jkt, ex=grace + 5)
            return
        first = self._r.get(self._retry_keys + jti)
        if first is not None and first.decode() != jkt:
            store.release_refresh(jti, status, now)
            raise InvalidDPoPProofError("a retried refresh must carry the DPoP key of the first request")

    def pushed_jkt(self, headers: Any, form: dict[str, str]) -> str | None:
        """PAR (§10.1): the key the pushed request binds its code to (proof or ``dpop_jkt``)."""
        jkt = form.get("dpop_jkt")
        if jkt is not None and not JKT_PATTERN.fullmatch(jkt):
            raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
        proof = self.oauth_proof(headers, endpoint="par")
        if proof is not None:
            if jkt is not None and jkt != proof.jkt:
                raise InvalidDPoPProofError("dpop_jkt does not match the DPoP proof's key")
            return proof.jkt
        return jkt


def check_code_key(code_jkt: str | None, request: Any) -> None:
    """§10: a code issued for ``dpop_jkt`` needs a proof of that very key."""
    if not code_jkt:
        return
    binding = binding_of(request)
    if binding is None or binding.jkt != code_jkt:
        raise InvalidDPoPProofError("the authorization code is bound to another DPoP key")


def resource_refusal(dpop: IdpDPoP, headers: Any, *, method: str, endpoint: str, token: str,
                     token_jkt: str | None, scheme: str) -> tuple[str, str] | None:
    """RFC 9449 §7: ``(error, description)`` when a protected resource must refuse, else ``None``.

    ``scheme`` is ``bearer`` or ``dpop`` (the Authorization header's);
    ``token_jkt`` the token's ``cnf.jkt``.
    """
    if scheme != "dpop":
        if token_jkt:
            return "invalid_token", "a DPoP-bound token must be sent with the DPoP scheme"
        return None
    if not token_jkt:
        return "invalid_token", "the access token is not DPoP-bound"
    try:
        proof = dpop.proof(headers, endpoint=endpoint, method=method, access_token=token)
    except DPoPError as e:
        return e.error, e.description
    if proof is None:
        return "invalid_dpop_proof", "a DPoP proof is required"
    if proof.jkt != token_jkt:
        return "invalid_dpop_proof", "the DPoP proof's key is not the token's"
    return None


def resource_challenge(error: str, description: str | None = None, *, status: int = 401) -> tuple[int, str]:
    """RFC 9449 §7.1 ``WWW-Authenticate: DPoP`` value, with ``algs``."""
    value = f'DPoP algs="{ALGS}"'
    if error:
        value += f', error="{error}"'
        if description:
            value += f', error_description="{description}"'
    return status, value
