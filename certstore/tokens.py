"""Validating the idp's access tokens: certstore as an OAuth 2.0 resource server.

certstore never imports ``idp`` (docs/design.md, dependency rule): it trusts the
idp exactly as any other agency's system would, through the discovery
document at ``{issuer}/.well-known/openid-configuration`` (OpenID Connect
Discovery 1.0 §4) and the JWKS it points to.

Checks (RFC 9068 §4, JWT profile for access tokens; RFC 8725 §3.1 and §3.11):

* ``typ`` header is ``at+jwt``; ``alg`` is in the allow-list
  (ES256, RS256, EdDSA — never ``none`` or HMAC);
* the signature verifies under the JWKS key named by ``kid`` (joserfc does
  the cryptography);
* ``iss`` equals the configured issuer, ``aud`` contains certstore's
  audience, ``exp`` / ``nbf`` / ``iat`` are sane (with a small leeway);
* the caller's ``scope`` holds the scope the endpoint needs.

The JWKS is cached for ``ttl`` seconds. A token with an unknown ``kid``
triggers one refetch (the idp may have rotated), but refetches are spaced by
``min_refetch_interval`` so that a flood of made-up ``kid`` values cannot
turn certstore into a load generator against the idp.

Revocation (issue 11 finding 7). A JWT stays valid by signature until its
``exp`` even after the idp revoked it or its SSO session ended, so a token
that passes the offline checks is also introspected at the idp (RFC 7662
§2) with certstore's own client credentials, and ``active: false`` is a 401
``invalid_token``. A positive answer is cached for ``cache_seconds`` (30 s
by default, ``YIWANG_CERTSTORE_INTROSPECTION_CACHE_SECONDS``): that is the
bound within which a revocation or a sign-out reaches certstore, and the
price of the bound is one introspection per token per ``cache_seconds``.
A negative answer is cached until the token expires (it can never become
active again). When the idp cannot be asked, the request is refused (503),
never waved through.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from .errors import Forbidden, ServiceUnavailable, Unauthorized

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AccessToken",
    "Introspector",
    "HttpIntrospector",
    "IntrospectionCache",
    "JwksSource",
    "HttpJwksSource",
    "StaticJwksSource",
    "TokenValidator",
]

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("ES256", "RS256", "EdDSA")
_TYP = ("at+jwt", "application/at+jwt")
_MAX_TOKEN = 8192


class JwksSource(Protocol):
    """Where the idp's current public keys come from."""

    def fetch(self) -> Mapping[str, Any]:
        """The JWKS document (``{"keys": [...]}``); raises on failure."""
        ...


@dataclass
class StaticJwksSource:
    """A JWKS held in memory (tests, or an air-gapped deployment)."""

    jwks: Mapping[str, Any]
    fetches: int = field(default=0, init=False)

    def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        return self.jwks


_IDP_ANSWER_MAX_BYTES = 256 * 1024
"""Discovery, JWKS and introspection answers are a few KiB; nothing bigger is read."""


class _IdpAnswerError(ValueError):
    """The idp's answer was refused before being parsed (status, encoding, size, time)."""


def _idp_json(session: Any, method: str, url: str, *, timeout: float, **kwargs: Any) -> Any:
    """One request to the operator-configured idp, read within a size cap and one overall deadline.

    The idp is configured by the operator (``YIWANG_ISSUER``), so the address
    rules of :mod:`keys.http` do not apply, but its answer is still bounded
    the same way (issue 19 §2): streamed, ``identity`` only, no redirects,
    at most :data:`_IDP_ANSWER_MAX_BYTES`, and at most ``timeout`` seconds
    for the whole exchange. Stays on ``requests`` so a deployment (or a
    test) can hand in its own session and transport.
    """
    until = time.monotonic() + timeout
    headers = {"Accept-Encoding": "identity", "Accept": "application/json"}
    with session.request(
        method, url, headers=headers, timeout=timeout, stream=True, allow_redirects=False, **kwargs
    ) as resp:
        if resp.status_code != 200:
            raise _IdpAnswerError(f"HTTP {resp.status_code}")
        if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
            raise _IdpAnswerError("compressed answer refused")
        body = bytearray()
        for chunk in resp.iter_content(4096):
            body += chunk
            if len(body) > _IDP_ANSWER_MAX_BYTES:
                raise _IdpAnswerError("answer over the size cap")
            if time.monotonic() > until:
                raise _IdpAnswerError("answer over the deadline")
    return json.loads(bytes(body))


class HttpJwksSource:
    """The idp's JWKS found through its discovery document."""

    def __init__(self, issuer: str, *, timeout: float = 5.0, session: Any = None) -> None:
        import requests

        self.issuer = issuer.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()
        self._jwks_uri: str | None = None

    def _discover(self) -> str:
        url = f"{self.issuer}/.well-known/openid-configuration"
        doc = _idp_json(self._session, "GET", url, timeout=self.timeout)
        # OpenID Connect Discovery 1.0 §4.3: the issuer in the document must be the one asked.
        if doc.get("issuer", "").rstrip("/") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise ValueError("the discovery document has no jwks_uri")
        return uri

    def fetch(self) -> Mapping[str, Any]:
        if self._jwks_uri is None:
            self._jwks_uri = self._discover()
        doc = _idp_json(self._session, "GET", self._jwks_uri, timeout=self.timeout)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError("the JWKS document has no keys")
        return doc


class Introspector(Protocol):
    """Asks the idp whether a token is still active (RFC 7662)."""

    def introspect(self, token: str) -> Mapping[str, Any]:
        """The introspection answer; raises :class:`ServiceUnavailable` when the idp cannot answer."""
        ...


class HttpIntrospector:
    """RFC 7662 §2.1 at the idp, authenticated as certstore (``client_secret_basic``, RFC 6749 §2.3.1)."""

    def __init__(
        self, endpoint: str, client_id: str, client_secret: str, *, timeout: float = 5.0, session: Any = None
    ) -> None:
        import requests

        self.endpoint = endpoint
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"HttpIntrospector({self.endpoint!r}, client_id={self.client_id!r})"

    def introspect(self, token: str) -> Mapping[str, Any]:
        try:
            data = _idp_json(
                self._session, "POST", self.endpoint, timeout=self.timeout,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.client_id, self._secret),
            )
        except Exception as e:  # network, size, status or JSON: the idp cannot vouch for the token now
            logger.warning("introspection at the idp failed: %s", e if isinstance(e, _IdpAnswerError) else type(e).__name__)
            raise ServiceUnavailable("the identity provider cannot be asked about the token") from None
        if not isinstance(data, dict):
            logger.warning("introspection at the idp answered no JSON object")
            raise ServiceUnavailable("the identity provider cannot be asked about the token")
        return data


class IntrospectionCache:
    """Introspection answers per token (keyed by its SHA-256), bounded in time and size.

    ``active`` answers live ``positive_ttl`` seconds: the revocation bound.
    Inactive ones live until the token's ``exp``. The ID number an answer may
    carry is never kept: only the verdict is.
    """

    def __init__(
        self,
        introspector: Introspector,
        *,
        positive_ttl: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if positive_ttl < 0:
            raise ValueError("positive_ttl must not be negative")
        self.introspector = introspector
        self.positive_ttl = positive_ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def active(self, token: str, *, client_id: str, exp: int) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        answer = self.introspector.introspect(token)
        # RFC 7662 §2.2: "active" is the one required member; the client must be the token's.
        is_active = answer.get("active") is True and answer.get("client_id", client_id) == client_id
        until = now + self.positive_ttl if is_active else float(exp)
        with self._lock:
            self._entries[key] = (is_active, until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return is_active


@dataclass(frozen=True)
class AccessToken:
    """A validated access token."""

    client_id: str
    scopes: frozenset[str]
    subject: str | None
    claims: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"AccessToken(client_id={self.client_id!r}, scopes={sorted(self.scopes)})"


class TokenValidator:
    def __init__(
        self,
        source: JwksSource,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str] = ALLOWED_ALGORITHMS,
        ttl: float = 300.0,
        min_refetch_interval: float = 30.0,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
        introspection: IntrospectionCache | None = None,
    ) -> None:
        bad = set(algorithms) - set(ALLOWED_ALGORITHMS)
        if bad:
            raise ValueError(f"algorithms not allowed for access tokens: {sorted(bad)}")
        self.source = source
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.algorithms = list(algorithms)
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.leeway = leeway
        self.clock = clock
        self.introspection = introspection
        """Without it a revoked token is honoured until it expires (no client credentials at the idp)."""
        self._warned = False
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")

    # -- keys --------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            doc = self.source.fetch()
            members = list(doc.get("keys") or [])
            keys = KeySet.import_key_set({"keys": members}) if members else KeySet([])
        except Exception as e:  # network, JSON, key import: all mean "no keys now"
            logger.warning("fetching the idp's JWKS failed: %s", type(e).__name__)
            if self._keys is None:
                raise ServiceUnavailable("the identity provider's keys cannot be fetched") from None
            return
        finally:
            self._fetched_at = self.clock()
        self._keys = keys
        self._kids = frozenset(str(k.kid) for k in keys.keys if k.kid)
        logger.info("loaded %d keys from the idp's JWKS", len(self._kids))

    def _keyset_for(self, kid: str) -> KeySet:
        with self._lock:
            age = self.clock() - self._fetched_at
            stale = age >= self.ttl
            unknown_kid = kid not in self._kids and age >= self.min_refetch_interval
            if self._keys is None and age < min(self.min_refetch_interval, 5.0):
                raise ServiceUnavailable("the identity provider's keys cannot be fetched")
            if self._keys is None or stale or unknown_kid:
                self._refresh()
            assert self._keys is not None
            if kid not in self._kids:
                raise Unauthorized("the token is signed by a key the identity provider does not publish")
            return self._keys

    # -- validation --------------------------------------------------------

    def validate(self, token: str, *, scope: str | None = None) -> AccessToken:
        """Validate ``token`` and, when ``scope`` is given, require it."""
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
            raise Unauthorized("the access token is malformed")
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise Unauthorized("the access token is malformed") from None
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if alg not in self.algorithms:
            raise Unauthorized("the token's signature algorithm is not accepted")
        if not isinstance(typ, str) or typ.lower() not in _TYP:
            raise Unauthorized("the token is not an access token (typ must be at+jwt)")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token has no key id")
        keys = self._keyset_for(kid)
        try:
            decoded = jwt.decode(token, keys, algorithms=self.algorithms)
        except JoseError:
            raise Unauthorized("the token's signature does not verify") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
            client_id={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as e:
            raise Unauthorized(_claim_problem(e, scope)) from None
        if claims.get("iat", 0) > self.clock() + self.leeway:
            raise Unauthorized("the token was issued in the future")
        if not isinstance(claims.get("client_id"), str) or not isinstance(claims.get("exp"), int):
            raise Unauthorized("the token is not valid here (claims)")
        raw_scope = claims.get("scope", "")
        scopes = frozenset(raw_scope.split()) if isinstance(raw_scope, str) else frozenset()
        # Revocation before scope: a revoked token learns nothing about what it may do.
        if self.introspection is None and not self._warned:
            self._warned = True
            logger.warning("no client credentials at the idp: revoked access tokens are honoured until they expire")
        if self.introspection is not None and not self.introspection.active(
            token, client_id=claims["client_id"], exp=claims["exp"]
        ):
            raise Unauthorized("the token has been revoked or its session has ended")
        if scope is not None and scope not in scopes:
            raise Forbidden(
                f"this token lacks the scope {scope}: ask the identity provider for a token with scope={scope}",
                code="insufficient_scope", scope=scope,
            )
        return AccessToken(
            client_id=str(claims["client_id"]),
            scopes=scopes,
            subject=claims["sub"] if isinstance(claims.get("sub"), str) else None,
            claims=claims,
        )


def _claim_problem(e: JoseError, scope: str | None) -> str:
    """What is wrong with the token, said so that the caller knows what to ask for instead."""
    name = type(e).__name__
    if name == "ExpiredTokenError":
        return "the token is not valid here (expired): get a new one"
    claim = getattr(e, "claim", None)
    if claim == "aud":
        # The idp gives certstore's audience only to tokens carrying a certs:* scope (issue 18).
        need = f"scope={scope}" if scope else "a certs:* scope"
        return f"this token was not issued for certstore (its aud): ask the identity provider for a token with {need}"
    if claim:
        return f"the token is not valid here (claim {claim})"
    return "the token is not valid here (" + (e.error if isinstance(getattr(e, "error", None), str) else "claims") + ")"
