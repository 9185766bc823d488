"""Sender-constrained tokens: what a token request proved about its sender, and the ``cnf`` it yields.

The shared binding hook of issue 14. A token request may prove possession of
a DPoP key (RFC 9449, :mod:`idp.oauth.dpop` fills ``jkt``) and/or of a mutual
TLS client certificate (RFC 8705, the mTLS module fills ``x5t_s256``). The
token endpoint puts one :class:`Binding` on the Authlib request
(``request.binding``); the grants pass it to the token generator, which
writes :meth:`Binding.cnf` into the access token (RFC 7800 ``cnf``), into the
token record's ``data`` and so into introspection (RFC 7662 §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Binding", "BoundTokens", "binding_of", "cnf_of"]


@dataclass(frozen=True)
class Binding:
    """The proof-of-possession a request carried (every field optional)."""

    jkt: str | None = None
    """RFC 9449 §6.1: base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key."""
    x5t_s256: str | None = None
    """RFC 8705 §3.1: base64url SHA-256 of the client certificate (DER)."""
    bind_refresh: bool = False
    """Bind the refresh token too (RFC 9449 §5 / RFC 8705 §4: public clients)."""

    def cnf(self) -> dict[str, str] | None:
        """The RFC 7800 confirmation claim, or ``None`` for a bearer token."""
        out: dict[str, str] = {}
        if self.jkt:
            out["jkt"] = self.jkt
        if self.x5t_s256:
            out["x5t#S256"] = self.x5t_s256
        return out or None

    @property
    def refresh_cnf(self) -> dict[str, str] | None:
        """The ``cnf`` a refresh token issued with this binding keeps, if it is bound."""
        return self.cnf() if self.bind_refresh else None

    @property
    def token_type(self) -> str:
        """RFC 9449 §5: ``DPoP`` when bound to a DPoP key, else ``Bearer`` (RFC 8705 keeps Bearer)."""
        return "DPoP" if self.jkt else "Bearer"


def binding_of(request: Any) -> Binding | None:
    """The binding an Authlib request carries, if any (set by the token endpoint)."""
    return getattr(request, "binding", None)


def cnf_of(claims_or_data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``cnf`` of an access token's claims or of a token record's ``data``."""
    if not claims_or_data:
        return None
    cnf = claims_or_data.get("cnf")
    return cnf if isinstance(cnf, dict) else None


class BoundTokens:
    """Grant mixin: token generation that passes the request's binding to the provider.

    Authlib's generator signature has no request; this is the hook through
    which DPoP (``jkt``) and mTLS (``x5t#S256``) reach ``cnf``. Once the client
    is authenticated (before a code or refresh token is consumed, so a
    refused request leaves it usable) the provider's DPoP policy may refuse it.
    """

    def generate_token(self, user: Any = None, scope: Any = None, grant_type: Any = None,
                       expires_in: Any = None, include_refresh_token: bool = True) -> dict[str, Any]:
        grant: Any = self
        token: dict[str, Any] = grant.server.provider.generate_token(
            grant_type or grant.GRANT_TYPE, grant.request.client, user=user, scope=scope,
            expires_in=expires_in, include_refresh_token=include_refresh_token,
            binding=binding_of(grant.request),
        )
        return token

    def authenticate_token_endpoint_client(self) -> Any:
        grant: Any = self
        client = super().authenticate_token_endpoint_client()  # type: ignore[misc]
        grant.server.provider.dpop.after_client_known(grant.request, client)
        return client
