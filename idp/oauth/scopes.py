"""Scope policy: what a client may be granted, decided in one function.

docs/design.md, "Boundaries": every grant — authorization code (PAR included),
refresh, client credentials (the WSGI hot path included), device code, and
any grant added later — gets *requested ∩ registered ∩ known* scopes from
:func:`decide`, and privileged scopes also need the client's registration
to allow them. Nothing else in the idp widens or trusts a requested scope:
the token generator (:meth:`idp.oauth.provider.Provider.generate_token`)
cuts again with the same function, so a grant that forgot to ask still
cannot issue more than the policy allows.

What a grant does with the refused part is the grant's protocol choice
(docs/rp-integration.md, "Scopes"): the token endpoint and the device
authorization endpoint answer ``invalid_scope`` (RFC 6749 §5.2, RFC 8628
§3.2, as Keycloak and Hydra do); ``/authorize`` drops what it may not grant
(OIDC Core §3.1.2.1: scope values not understood SHOULD be ignored) and the
token response's ``scope`` says what was granted (RFC 6749 §5.1).

Scopes come in two kinds, and a grant gets only its own kind:

- *citizen* scopes (the OIDC scopes, ``certs:read``, ``certs:read:<TYPE>``)
  release a citizen's data and need a resource owner: authorization code,
  refresh, device code and CIBA grants only;
- *agency* scopes (``certs:issue``, ``certs:lookup``) are an agency system
  acting as itself: client credentials only, and only for a confidential
  client (a public client's identity proves nothing).

Privileged: ``id_number`` needs ``may_receive_id_number`` (and, later, the
citizen's consent — :func:`idp.oauth.flow.final_scopes`); every agency scope
is privileged (registered for the client, confidential client).

A grant type missing from :data:`GRANT_KINDS` is granted nothing: a new grant
fails closed until its kind is stated here (and the matrix test in
tests/idp/test_authz_matrix_grants.py has no rows for it, so it fails).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from .claims import ID_NUMBER_SCOPE, SCOPE_CLAIMS

__all__ = [
    "AGENCY_SCOPES",
    "CITIZEN_SCOPES",
    "CIBA",
    "DEVICE_CODE",
    "GRANT_KINDS",
    "ScopeDecision",
    "allowed_scopes",
    "decide",
    "grant_scope",
    "is_known",
    "is_privileged",
    "kind_of",
]

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
CIBA = "urn:openid:params:grant-type:ciba"

CERTS_READ = "certs:read"
CITIZEN_SCOPES: frozenset[str] = frozenset(SCOPE_CLAIMS) | {CERTS_READ}
"""The OIDC scopes (OIDC Core §5.4) and consented certificate sharing."""
AGENCY_SCOPES: frozenset[str] = frozenset({"certs:issue", "certs:lookup"})
"""certstore's agency APIs: issuing, and the purpose-bound lookup by ID number."""

# certs:read:<TYPE>: one certificate type, as certstore's TYPE_CODE_PATTERN
# (certstore/identifier.py; the idp may not import certstore).
_CERTS_READ_TYPE = re.compile(r"certs:read:[0-9A-Z]{2,24}")

GRANT_KINDS: dict[str, str] = {
    "authorization_code": "citizen",
    "refresh_token": "citizen",
    DEVICE_CODE: "citizen",
    CIBA: "citizen",  # OpenID CIBA Core 1.0: the citizen approves on their own device (idp.ciba)
    "client_credentials": "agency",
}
"""Which kind of scope each grant may carry; a grant not listed gets none."""

_MAX_SCOPES = 32
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3


def kind_of(scope: str) -> str | None:
    """``citizen``, ``agency``, or ``None`` for a scope this server does not know."""
    if scope in CITIZEN_SCOPES or _CERTS_READ_TYPE.fullmatch(scope):
        return "citizen"
    if scope in AGENCY_SCOPES:
        return "agency"
    return None


def is_known(scope: str) -> bool:
    return kind_of(scope) is not None


def is_privileged(scope: str) -> bool:
    """Needs more of the registration than the scope being listed in it."""
    return scope == ID_NUMBER_SCOPE or scope in AGENCY_SCOPES


@lru_cache(maxsize=4096)
def _allowed(grant_type: str, registered: tuple[str, ...], public: bool, may_id_number: bool) -> frozenset[str]:
    grant_kind = GRANT_KINDS.get(grant_type)
    if grant_kind is None:
        return frozenset()
    out = set()
    for s in registered:
        if kind_of(s) != grant_kind:
            continue
        if s == ID_NUMBER_SCOPE and not may_id_number:
            continue
        if s in AGENCY_SCOPES and public:
            continue
        out.add(s)
    return frozenset(out)


def allowed_scopes(client: Any, grant_type: str) -> frozenset[str]:
    """registered ∩ known ∩ this grant's kind, less privileged scopes the registration does not allow.

    Memoised on the registration's values (a frozenset per client and grant),
    so the client-credentials hot path does set look-ups only.
    """
    return _allowed(grant_type, tuple(client.scopes or ()), bool(client.is_public),
                    bool(client.may_receive_id_number))


@dataclass(frozen=True)
class ScopeDecision:
    granted: tuple[str, ...]
    """Requested and allowed, in the order asked, without duplicates."""
    refused: tuple[str, ...]
    """Requested and not allowed: unknown, unregistered, of the other kind, or privileged."""

    @property
    def scope(self) -> str:
        return " ".join(self.granted)


def decide(client: Any, grant_type: str, requested: str | Iterable[str] | None) -> ScopeDecision:
    """THE scope policy: what of ``requested`` this client may be granted through ``grant_type``."""
    if requested is None:
        return ScopeDecision((), ())
    items = requested.split() if isinstance(requested, str) else list(requested)
    allowed = allowed_scopes(client, grant_type)
    granted: list[str] = []
    refused: list[str] = []
    for s in items:
        if s in allowed:
            if s not in granted:
                granted.append(s)
        elif s not in refused:
            refused.append(s)
    return ScopeDecision(tuple(granted), tuple(refused))


def grant_scope(client: Any, grant_type: str, requested: str | None, *, strict: bool) -> str:
    """The granted scope string; with ``strict``, ``invalid_scope`` if anything was refused.

    RFC 6749 §5.2: "The requested scope is invalid, unknown, malformed, or
    exceeds the scope granted by the resource owner."
    """
    decision = decide(client, grant_type, requested)
    if strict and decision.refused:
        raise InvalidScopeError(_refusal(decision.refused))
    return decision.scope


def _refusal(refused: tuple[str, ...]) -> str:
    # Only names that are valid scope tokens are echoed: an error description
    # may hold only these characters (RFC 6749 §5.2), and anything else is
    # the caller's own input anyway.
    shown = [s for s in refused[:_MAX_SCOPES] if _SCOPE_TOKEN.fullmatch(s)][:5]
    if not shown:
        return "a requested scope is malformed, unknown or not allowed for this client"
    return "scope not allowed for this client: " + " ".join(shown)
