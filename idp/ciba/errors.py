"""The CIBA error codes (CIBA Core 1.0 §13 and §11), each one protocol error.

The backchannel authentication endpoint answers 400 (401 for
``invalid_client``, 403 for ``access_denied``) with an RFC 6749 §5.2 JSON
body; the token endpoint's CIBA errors are §11's.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error

__all__ = [
    "ExpiredLoginHintTokenError",
    "UnknownUserIdError",
    "MissingUserCodeError",
    "InvalidUserCodeError",
    "InvalidBindingMessageError",
    "CibaAccessDeniedError",
]


class ExpiredLoginHintTokenError(OAuth2Error):
    """§13: "The login_hint_token provided in the authentication request is not valid because it has expired." """

    error = "expired_login_hint_token"
    status_code = 400


class UnknownUserIdError(OAuth2Error):
    """§13: "The OpenID Provider is not able to identify which end-user the Client wishes to be authenticated
    by means of the hint provided in the request (login_hint_token, id_token_hint, or login_hint)." """

    error = "unknown_user_id"
    status_code = 400


class MissingUserCodeError(OAuth2Error):
    """§13: "User code is required but was missing from the request." """

    error = "missing_user_code"
    status_code = 400


class InvalidUserCodeError(OAuth2Error):
    """§13: "User code was invalid." """

    error = "invalid_user_code"
    status_code = 400


class InvalidBindingMessageError(OAuth2Error):
    """§13: "The binding message is invalid or unacceptable for use in the context of the given request." """

    error = "invalid_binding_message"
    status_code = 400


class CibaAccessDeniedError(OAuth2Error):
    """§13: "The resource owner or OpenID Provider denied the CIBA (Client Initiated Backchannel
    Authentication) request." (HTTP 403 at the backchannel authentication endpoint.)"""

    error = "access_denied"
    status_code = 403
