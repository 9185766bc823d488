"""Registering Yiwang's grants, extensions and endpoints on an Authlib server.

The server class itself comes from the web layer (Authlib's Flask
integration); this function is the one place that says which features the
provider has, in Authlib's own idiom.
"""

from __future__ import annotations

import functools
from typing import Any

from authlib.common.urls import url_encode
from authlib.oauth2.rfc9207 import IssuerParameter

from ..device import register_device_flow
from . import fapi
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
from .mtls import CertificateBinding, MtlsConfig, SelfSignedTLSClientAuth, TLSClientAuth
from .provider import Provider

__all__ = ["configure_server", "registered_grant_types", "YiwangIssuerParameter"]


class YiwangIssuerParameter(IssuerParameter):
    """RFC 9207 §2: ``iss`` in every authorization response, errors included."""

    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer

    def add_issuer_parameter(self, authorization_server: Any, response: Any) -> None:
        # AuthorizationCodeGrant puts ``iss`` last into the code redirect it builds (one
        # encoding of the Location instead of a second parse and re-encode here, issue 16);
        # every other authorization response, errors included, gets it here as before.
        location = response.location
        if location and location.endswith(self._encoded):
            return
        super().add_issuer_parameter(authorization_server, response)

    @functools.cached_property
    def _encoded(self) -> str:
        return str(url_encode([("iss", self._issuer)]))  # as add_params_to_uri writes it


def configure_server(server: Any, provider: Provider, *, mtls: MtlsConfig | None = None,
                     ciba: Any = None) -> Any:
    """``mtls``: how mutual TLS reaches the idp (RFC 8705; ``MtlsConfig.from_settings``);
    ``ciba``: the CIBA service (``idp.ciba.service.CibaService``), whose endpoint and grant are registered."""
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
    if ciba is not None:  # OpenID CIBA Core 1.0: /bc-authorize and the urn:openid:params:grant-type:ciba grant
        from ..ciba.grant import register_ciba

        register_ciba(server, ciba)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    YiwangIssuerParameter(provider.issuer)(server)  # hooks after_create_authorization_response
    issuer = provider.issuer
    server.register_client_auth_method(
        "private_key_jwt", PrivateKeyJWTAuth(provider, [issuer, f"{issuer}/token", f"{issuer}/par",
                                                        f"{issuer}/introspect", f"{issuer}/revoke",
                                                        f"{issuer}/bc-authorize"])
    )
    # RFC 8705 §2: mutual-TLS client authentication, through the TLS proxy (idp.oauth.mtls);
    # every client authentication then binds tokens to the certificate where it must (§3)
    # and applies the FAPI 2.0 rules to a FAPI client (idp.oauth.fapi).
    mtls = mtls or MtlsConfig()
    server.mtls = mtls
    server.register_client_auth_method("tls_client_auth", TLSClientAuth(mtls.anchors))
    server.register_client_auth_method("self_signed_tls_client_auth", SelfSignedTLSClientAuth())

    def fapi_rules(client: Any, request: Any, endpoint: str) -> None:
        fapi.check_client_authentication(client, request, endpoint, issuer=issuer)

    server._client_auth = CertificateBinding(server._client_auth, after=[fapi_rules])
    provider.codes.lifetime_of = lambda client_id: fapi.code_seconds(
        provider.query_client(client_id), provider.codes.ttl_seconds)
    return server


def registered_grant_types(server: Any) -> tuple[str, ...]:
    """Every grant type the token endpoint serves (the authorization matrix test iterates them)."""
    return tuple(dict.fromkeys(cls.GRANT_TYPE for cls, _ in server._token_grants))
