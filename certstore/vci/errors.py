"""OpenID4VCI and OAuth errors of certstore's issuer endpoints, one class per error code.

The web layer turns each into the JSON error response of its endpoint
(``{"error": code, "error_description": …}``, never a stack trace) with the
class's HTTP status; ``invalid_token`` adds the ``WWW-Authenticate``
challenge of RFC 6750 §3.
"""

from __future__ import annotations

__all__ = [
    "VciError",
    "InvalidRequest",
    "InvalidGrant",
    "UnsupportedGrantType",
    "InvalidToken",
    "InsufficientScope",
    "InvalidCredentialRequest",
    "UnknownCredentialConfiguration",
    "InvalidProof",
    "InvalidNonce",
    "CredentialRequestDenied",
    "WalletNotAllowed",
    "InvalidDpopProof",
]


class VciError(Exception):
    error = "invalid_request"
    status = 400
    challenge: str | None = None
    """A ``WWW-Authenticate`` value other than the Bearer one (a DPoP challenge)."""
    dpop_nonce: str | None = None

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def to_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(VciError):
    """RFC 6749 §5.2: the request is missing a parameter, or is otherwise malformed."""

    error = "invalid_request"


class InvalidGrant(VciError):
    """RFC 6749 §5.2: the pre-authorized code is invalid, expired, used, or the tx_code is wrong
    (OpenID4VCI 1.0 §6.3)."""

    error = "invalid_grant"


class UnsupportedGrantType(VciError):
    """RFC 6749 §5.2: this token endpoint serves the pre-authorized code grant only."""

    error = "unsupported_grant_type"


class InvalidToken(VciError):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed, or invalid."""

    error = "invalid_token"
    status = 401


class InsufficientScope(VciError):
    """RFC 6750 §3.1: the token does not carry the scope of the credential configuration."""

    error = "insufficient_scope"
    status = 403


class InvalidCredentialRequest(VciError):
    """OpenID4VCI 1.0 §8.3.1.2: the credential request is missing a parameter or malformed."""

    error = "invalid_credential_request"


class UnknownCredentialConfiguration(VciError):
    """OpenID4VCI 1.0 §8.3.1.2: the configuration is unknown, or not what the token was issued for."""

    error = "unknown_credential_configuration"


class InvalidProof(VciError):
    """OpenID4VCI 1.0 §8.3.1.2: a key proof is missing or invalid."""

    error = "invalid_proof"


class InvalidNonce(VciError):
    """OpenID4VCI 1.0 §8.3.1.2: the proof's nonce is not a fresh c_nonce of this issuer (get a new one)."""

    error = "invalid_nonce"


class CredentialRequestDenied(VciError):
    """OpenID4VCI 1.0 §8.3.1.2: no credential can be issued (no such live certificate of the holder)."""

    error = "credential_request_denied"


class WalletNotAllowed(VciError):
    """The token's client is not on certstore's wallet allow-list (``YIWANG_CERTSTORE_VCI_WALLET_CLIENTS``):
    a portal that may read a citizen's certificates may not hold credentials bound to its own key."""

    error = "access_denied"
    status = 403


class InvalidDpopProof(VciError):
    """RFC 9449 §5: the token request's DPoP proof is invalid."""

    error = "invalid_dpop_proof"

