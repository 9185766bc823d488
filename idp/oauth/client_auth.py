"""``client_secret_basic`` (RFC 6749 §2.3.1), strict about what a header may hold.

Authlib's own parser decodes the credentials with ``bytes.decode()`` and a
lenient base64, so a header such as ``Basic`` + base64(b"\\xff\\xfe:x") or a
non-ASCII header escaped as an exception: an unauthenticated 500 at every
endpoint that authenticates clients (token, introspection, revocation, PAR,
device authorization). Here a malformed header is what it is, a client that
failed to authenticate: ``invalid_client`` with 401 and ``WWW-Authenticate``
(RFC 6749 §5.2, "the client attempted to authenticate via the Authorization
request header field").

The credentials are form-urlencoded before they are put in the header
(RFC 6749 §2.3.1, Appendix B), so they are percent- and ``+``-decoded here.
No round trip is added: the client is looked up once, as Authlib did.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749.authenticate_client import (
    ClientAuthentication as _AuthlibClientAuthentication,
)
from authlib.oauth2.rfc6749.errors import InvalidClientError

__all__ = [
    "parse_basic_credentials", "authenticate_client_secret_basic", "MAX_BASIC_CREDENTIALS",
    "ClientAuthentication", "WRONG_CREDENTIALS",
]

logger = logging.getLogger(__name__)

MAX_BASIC_CREDENTIALS = 1024
"""Characters of the base64 part: a client id (64) and a secret (43) need far fewer."""

WRONG_CREDENTIALS = (
    "client authentication failed: the client id or secret is wrong, or the client is registered "
    "for another authentication method (token_endpoint_auth_method)"
)
"""What ``invalid_client`` says when no method authenticated the client (issue 18).

Authlib's own text listed the methods it tried, which sent integrators
looking at methods when their secret was wrong. The same words for an
unknown client and a wrong secret: the answer tells no one which ids exist.
"""


class ClientAuthentication(_AuthlibClientAuthentication):
    """Authlib's client authentication, with an ``invalid_client`` that says what to check.

    Only the generic failure's description changes; the error code, the
    status (401 with ``WWW-Authenticate`` when Basic was possible) and the
    specific descriptions (a malformed Basic header, a bad client assertion)
    stay as they are.
    """

    def authenticate(self, request: Any, methods: list[str], endpoint: str) -> Any:
        try:
            return super().authenticate(request, methods, endpoint)
        except InvalidClientError as e:
            if (e.description or "").startswith("The client cannot authenticate with methods"):
                e.description = WRONG_CREDENTIALS
            raise


def _malformed() -> InvalidClientError:
    return InvalidClientError(status_code=401, description="malformed HTTP Basic client credentials")


def parse_basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of an ``Authorization: Basic`` header.

    ``None`` when the request carries no Basic credentials (another method may
    apply); :class:`InvalidClientError` (401) when it carries malformed ones.
    """
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    token = rest.strip()
    if not token or len(token) > MAX_BASIC_CREDENTIALS:
        raise _malformed()
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
        text = raw.decode("utf-8")
        client_id, sep, secret = text.partition(":")
        if not sep:
            raise ValueError("no colon")
        # RFC 6749 §2.3.1: application/x-www-form-urlencoded before Basic. The ids and
        # secrets the idp issues have nothing to decode (the hot path skips it).
        if "%" in client_id or "+" in client_id:
            client_id = unquote_plus(client_id, errors="strict")
        if "%" in secret or "+" in secret:
            secret = unquote_plus(secret, errors="strict")
    except (UnicodeError, binascii.Error, ValueError):
        raise _malformed() from None
    if not client_id or not secret or not client_id.isprintable():
        raise _malformed()
    return client_id, secret


def authenticate_client_secret_basic(query_client: Any, request: Any) -> Any:
    """Authlib's client-auth hook for ``client_secret_basic``: the client, or ``None``.

    An unknown client and a wrong secret both give ``None``, so the answer
    (Authlib's generic 401) does not tell which client ids exist.
    """
    creds = parse_basic_credentials(request.headers.get("Authorization"))
    if creds is None:
        return None
    client_id, secret = creds
    client = query_client(client_id)
    if client is None or not client.check_client_secret(secret):
        logger.debug("client_secret_basic failed for %r", client_id[:64])
        return None
    return client
