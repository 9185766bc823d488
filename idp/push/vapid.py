"""VAPID (RFC 8292): the idp's application server key for Web Push, kept with its other keys.

The key is an ES256 key set of the keyring (purpose ``idp-vapid``, created by
``idp init`` like the token keys, so it lives in whichever backend holds
those: encrypted files or an HSM). The private key never leaves keys/: the
VAPID JWT is signed through the key set's signer (:func:`keys.jws.encode_jws`).

A browser subscribes with the *public* key as ``applicationServerKey``
(:meth:`Vapid.application_server_key`); push services accept only messages
signed by that key, so this key set is not rotated like the token keys: a
rotation makes the citizens' pages subscribe again (the page compares the
key it subscribed with to the current one).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from keys.jws import encode_jws

__all__ = ["Vapid", "VAPID_KEYSET", "JWT_SECONDS"]

VAPID_KEYSET = "idp-vapid"
JWT_SECONDS = 12 * 3600
"""RFC 8292 §2: ``exp`` no more than 24 hours ahead."""


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class Vapid:
    """Signs VAPID ``Authorization`` headers with the keyring's ``idp-vapid`` key."""

    def __init__(self, keyring: Any, subject: str) -> None:
        """``subject``: the contact for push services (RFC 8292 §2.1: a ``mailto:`` or ``https:`` URI)."""
        self._keyset = keyring.keyset(VAPID_KEYSET, algorithm="ES256")
        self.subject = subject

    def application_server_key(self) -> str:
        """The active public key as an uncompressed P-256 point, base64url (the Push API's format)."""
        jwk = self._keyset.active().public_jwk()
        point = b"\x04" + _b64url_decode(jwk["x"]) + _b64url_decode(jwk["y"])
        return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")

    def authorization(self, endpoint: str, now: int) -> str:
        """RFC 8292 §3: ``vapid t=<JWT>, k=<public key>`` for a push to ``endpoint``."""
        parts = urlsplit(endpoint)
        claims = {"aud": f"{parts.scheme}://{parts.netloc}", "exp": now + JWT_SECONDS, "sub": self.subject}
        token = encode_jws(self._keyset.active(), claims, typ="JWT")
        return f"vapid t={token}, k={self.application_server_key()}"
