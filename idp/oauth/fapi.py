"""The FAPI 2.0 Security Profile, per client: every rule in one place, free of Flask.

A client registered with ``Client.attributes["profile"] == "fapi2"``
(``idp clients add --profile fapi2``) gets, and only gets, what FAPI 2.0
Security Profile (Final) §5 asks of an authorization server. Each function
here is called from the one place that enforces its rule:

=========================================  ==============================================
rule (FAPI 2.0 SP)                         called from
=========================================  ==============================================
registration (§5.3.2.1, §5.4)              ``idp.clients.registration.build_client`` →
                                           :func:`registration_problem`
PAR, ``code``, PKCE S256 (§5.3.2.2)        ``idp.web.views_oauth.par`` → :func:`check_pushed_request`;
                                           ``idp.signin.SignIn._decide`` → :func:`check_authorization`
client auth: private_key_jwt or mTLS,      ``idp.oauth.mtls.CertificateBinding`` (every client
assertion alg and ``aud`` (§5.3.2.1,       authentication, installed by ``configure_server``) →
§5.4), sender-constrained tokens (§5.3.2.1) :func:`check_client_authentication`
codes live at most 60 s (§5.3.2.1)         ``idp.oauth.codes.CodeStore.issue`` → :func:`code_seconds`
=========================================  ==============================================

docs/fapi2.md lists each point with the test that proves it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError

from .binding import binding_of

__all__ = [
    "PROFILE",
    "FAPI2",
    "ALGORITHMS",
    "AUTH_METHODS",
    "GRANT_TYPES",
    "CODE_SECONDS",
    "is_fapi2",
    "registration_problem",
    "check_pushed_request",
    "check_authorization",
    "check_client_authentication",
    "code_seconds",
]

PROFILE = "profile"
"""The ``Client.attributes`` key."""
FAPI2 = "fapi2"
ALGORITHMS = ("PS256", "ES256", "EdDSA")
"""§5.4.1: the only signing algorithms (ID tokens, client assertions, request objects)."""
AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
"""§5.3.2.1: client authentication with private_key_jwt or mutual TLS only."""
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials",
               "urn:openid:params:grant-type:ciba")  # CIBA: signed requests required (idp.ciba.signed)
"""The device grant has no PAR, PKCE or redirect: not for a FAPI 2.0 client."""
CODE_SECONDS = 60
"""§5.3.2.1: "shall reject an authorization code ... if it has been previously used" and
"shall ... authorization code lifetime of no more than 60 seconds"."""

_LOOPBACK = ("127.0.0.1", "::1", "[::1]", "localhost")


def is_fapi2(client: Any) -> bool:
    return client is not None and client.attribute(PROFILE) == FAPI2


# ------------------------------------------------------------ registration


def registration_problem(profile: str | None, *, public: bool, auth_method: str, grant_types: Iterable[str],
                         redirect_uris: Sequence[str], id_token_alg: str, allow_loopback: bool) -> str | None:
    """Why this registration cannot have ``profile``, or ``None``."""
    if profile in (None, ""):
        return None
    if profile != FAPI2:
        return f"unknown profile {profile!r}; known: {FAPI2}"
    if public:
        return "a FAPI 2.0 client is confidential (FAPI 2.0 SP 5.3.2.1)"
    if auth_method not in AUTH_METHODS:
        return f"a FAPI 2.0 client authenticates with {', '.join(AUTH_METHODS)} (FAPI 2.0 SP 5.3.2.1)"
    other = [g for g in grant_types if g not in GRANT_TYPES]
    if other:
        return f"a FAPI 2.0 client may not use {', '.join(other)}"
    for uri in redirect_uris:
        parts = urlsplit(uri)
        if parts.scheme == "https" or (allow_loopback and parts.scheme == "http" and parts.hostname in _LOOPBACK):
            continue
        return "a FAPI 2.0 client's redirect URIs are https (FAPI 2.0 SP 5.3.2.2; loopback http only in the demo)"
    if id_token_alg not in ALGORITHMS:
        return f"a FAPI 2.0 client's ID tokens are signed with {', '.join(ALGORITHMS)} (FAPI 2.0 SP 5.4.1)"
    return None


# ------------------------------------------------- authorization requests


def _request_problem(params: Mapping[str, str]) -> str | None:
    if params.get("response_type") != "code":
        return "FAPI 2.0: response_type must be code (FAPI 2.0 SP 5.3.2.2)"
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return "FAPI 2.0: PKCE with S256 is required (FAPI 2.0 SP 5.3.2.2)"
    return None


def check_pushed_request(client: Any, params: Mapping[str, str]) -> None:
    """At the PAR endpoint: :class:`InvalidRequestError` for a FAPI 2.0 client's deviation."""
    if not is_fapi2(client):
        return
    problem = _request_problem(params)
    if problem is not None:
        raise InvalidRequestError(problem)


def check_authorization(client: Any, params: Mapping[str, str], *, pushed: bool) -> tuple[str, str] | None:
    """At the authorization endpoint: ``(error, description)`` for the client's redirect URI, or ``None``."""
    if not is_fapi2(client):
        return None
    if not pushed:
        return "invalid_request", "FAPI 2.0: the authorization request must be pushed first (RFC 9126)"
    problem = _request_problem(params)
    return ("invalid_request", problem) if problem is not None else None


# ------------------------------------------------------ client authentication


def _jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return value

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def check_client_authentication(client: Any, request: Any, endpoint: str, *, issuer: str) -> None:
    """After a client authenticated (any endpoint): the FAPI 2.0 rules on how it did, and its tokens.

    ``invalid_client`` for another method, a client assertion signed with an
    algorithm outside :data:`ALGORITHMS` or whose ``aud`` is not exactly the
    issuer; at the token endpoint, ``invalid_request`` when the tokens would
    not be sender-constrained (neither DPoP nor mTLS).
    """
    if not is_fapi2(client):
        return
    method = getattr(request, "auth_method", None)
    if method not in AUTH_METHODS:
        raise InvalidClientError(status_code=401, description="FAPI 2.0: authenticate with private_key_jwt or mutual TLS")
    if method == "private_key_jwt":
        try:
            header, claims = _jwt_parts(str(request.form.get("client_assertion") or ""))
        except (ValueError, TypeError):
            raise InvalidClientError(status_code=401, description="invalid client assertion") from None
        if header.get("alg") not in ALGORITHMS:
            raise InvalidClientError(
                status_code=401, description=f"FAPI 2.0: client assertions are signed with {', '.join(ALGORITHMS)}")
        aud = claims.get("aud")
        if aud != issuer and aud != [issuer]:
            raise InvalidClientError(status_code=401, description="FAPI 2.0: the client assertion's aud must be the issuer")
    if endpoint == "token":
        binding = binding_of(request)
        bound = binding is not None and bool(binding.jkt or binding.x5t_s256)
        # The DPoP module validates a DPoP proof (and refuses a bad one) wherever it binds it.
        if not bound and not request.headers.get("DPoP"):
            raise InvalidRequestError(
                "FAPI 2.0: tokens are sender-constrained; send a DPoP proof or use mutual TLS")


# --------------------------------------------------------------- codes


def code_seconds(client: Any, default: int) -> int:
    """How long an authorization code for ``client`` lives."""
    return min(default, CODE_SECONDS) if is_fapi2(client) else default
