"""Registering Yiwang's grants, extensions and endpoints on an Authlib server.

The server class itself comes from the web layer (Authlib's Flask
integration); this function is the one place that says which features the
provider has, in Authlib's own idiom.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc9207 import IssuerParameter

from ..device import register_device_flow
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    CodeChallenge,
    OpenIDCode,
    OpenIDRefresh,
    PrivateKeyJWTAuth,
    RefreshTokenGrant,
)
from .provider import Provider

__all__ = ["configure_server", "registered_grant_types", "YiwangIssuerParameter"]


class YiwangIssuerParameter(IssuerParameter):
    """RFC 9207 §2: ``iss`` in every authorization response, errors included."""

    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer


def configure_server(server: Any, provider: Provider) -> Any:
    server.provider = provider
    # Authlib's server-wide check knows neither the client nor certs:read:<TYPE>;
    # every grant asks idp.oauth.scopes.decide instead (docs/design.md, "Boundaries"),
    # and Provider.generate_token cuts again with it.
    server.scopes_supported = None
    server.register_token_generator("default", provider.generate_token)
    server.register_grant(
        AuthorizationCodeGrant, [OpenIDCode(require_nonce=False), CodeChallenge(required=True)]
    )
    server.register_grant(RefreshTokenGrant, [OpenIDRefresh()])
    server.register_grant(ClientCredentialsGrant)
    # RFC 8628: the device grant at the token endpoint, and the device authorization endpoint.
    register_device_flow(server, provider.device_codes,
                         verification_uri=provider.issuer + provider.config.device_verification_path)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    YiwangIssuerParameter(provider.issuer)(server)  # hooks after_create_authorization_response
    issuer = provider.issuer
    server.register_client_auth_method(
        "private_key_jwt", PrivateKeyJWTAuth(provider, [issuer, f"{issuer}/token", f"{issuer}/par",
                                                        f"{issuer}/introspect", f"{issuer}/revoke"])
    )
    return server


def registered_grant_types(server: Any) -> tuple[str, ...]:
    """Every grant type the token endpoint serves (the authorization matrix test iterates them)."""
    return tuple(dict.fromkeys(cls.GRANT_TYPE for cls, _ in server._token_grants))
