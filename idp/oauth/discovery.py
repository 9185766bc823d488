"""The discovery document (OIDC Discovery 1.0 §3, RFC 8414 §2)."""

from __future__ import annotations

from typing import Any

from .claims import CLAIMS_SUPPORTED, SCOPES_SUPPORTED
from .grants import AUTH_METHODS
from .mtls import MTLS_AUTH_METHODS, MtlsConfig, discovery_metadata

_BASE_METHODS = [m for m in AUTH_METHODS if m not in MTLS_AUTH_METHODS]  # mTLS: only when configured

__all__ = ["discovery_document", "ACR_PASSWORD", "ACR_2FA", "ACR_PASSKEY", "ACR_VALUES"]

ACR_PASSWORD = "urn:yiwang:acr:pwd"  # noqa: S105 - an acr value, not a secret
ACR_2FA = "urn:yiwang:acr:2fa"
ACR_PASSKEY = "urn:yiwang:acr:passkey"  # a passkey with user verification (idp/oauth/acr.py)
ACR_VALUES = (ACR_PASSWORD, ACR_2FA, ACR_PASSKEY)  # in order, lowest first


def discovery_document(
    issuer: str,
    *,
    require_par: bool = False,
    end_session_path: str | None = "/logout",
    device_path: str | None = "/device/authorize",
    extra: dict[str, Any] | None = None,
    mtls: MtlsConfig | None = None,
) -> dict[str, Any]:
    """The metadata; endpoints that this deployment does not serve are left out."""
    i = issuer.rstrip("/")
    doc: dict[str, Any] = {
        "issuer": i,
        "authorization_endpoint": f"{i}/authorize",
        "token_endpoint": f"{i}/token",
        "userinfo_endpoint": f"{i}/userinfo",
        "jwks_uri": f"{i}/jwks.json",
        "introspection_endpoint": f"{i}/introspect",
        "revocation_endpoint": f"{i}/revoke",
        "pushed_authorization_request_endpoint": f"{i}/par",
        "scopes_supported": list(SCOPES_SUPPORTED),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:openid:params:grant-type:ciba",  # OpenID CIBA Core 1.0 (idp.ciba)
        ],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": list(_BASE_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": [m for m in _BASE_METHODS if m != "none"],
        "revocation_endpoint_auth_methods_supported": [m for m in _BASE_METHODS if m != "none"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_pushed_authorization_requests": require_par,
        "authorization_response_iss_parameter_supported": True,
        "ui_locales_supported": ["zh-CN", "en"],
        "claim_types_supported": ["normal"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "access_token_signing_alg_values_supported": ["ES256"],
        # RFC 9449 §5.1 (keys.dpop.ALGORITHMS, asymmetric only).
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "PS256"],
        # OpenID CIBA Core 1.0 §4 (idp.ciba: poll and ping; algorithms = idp.ciba.signed.ALGORITHMS).
        "backchannel_authentication_endpoint": f"{i}/bc-authorize",
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_authentication_request_signing_alg_values_supported": ["ES256", "PS256", "EdDSA"],
        "backchannel_user_code_parameter_supported": True,
    }
    if end_session_path:
        doc["end_session_endpoint"] = i + end_session_path
    else:
        for k in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                  "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
            doc.pop(k)
    if device_path:
        doc["device_authorization_endpoint"] = i + device_path
    else:
        doc["grant_types_supported"].remove("urn:ietf:params:oauth:grant-type:device_code")
    if mtls is not None and mtls.enabled:  # RFC 8705 §2.1.1, §2.2.1, §3.3, §5
        for key in ("token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
                    "revocation_endpoint_auth_methods_supported"):
            doc[key] = [*doc[key], *(m for m in MTLS_AUTH_METHODS if m not in doc[key])]
        doc.update(discovery_metadata(mtls))
    if extra:
        doc.update(extra)
    return doc
