"""A software WebAuthn authenticator (P-256, ``none`` attestation) for the passkey bench and unit tests.

It makes what a browser would send: ``clientDataJSON``, authenticator data
(WebAuthn Level 3 §6.1: rpIdHash, flags UP/UV/BE/BS/AT, the sign counter,
attested credential data) and an ES256 signature over
``authenticatorData || SHA-256(clientDataJSON)``. Nothing here is used by the
services themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["SoftAuthenticator", "b64u"]

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str
    user_verifying: bool = True
    backup_eligible: bool = False
    aaguid: bytes = b"\x00" * 16
    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes | None = None

    def _flags(self, *, attested: bool = False) -> int:
        f = UP | (UV if self.user_verifying else 0)
        if self.backup_eligible:
            f |= BE | BS
        return f | (AT if attested else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def _cose_key(self) -> bytes:
        nums = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")})

    def create(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """The ``PublicKeyCredential.toJSON()`` of a registration for ``options`` (creation options JSON)."""
        self.user_handle = _unb64u(options["user"]["id"])
        rp_id = options.get("rp", {}).get("id", self.rp_id)
        cred = self.aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key()
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([self._flags(attested=True)]) + \
            struct.pack(">I", self.sign_count) + cred
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        att = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64u(client_data), "attestationObject": b64u(att),
                             "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict[str, Any], *, origin: str | None = None, count: int | None = None,
            user_handle: bool = True) -> dict[str, Any]:
        """An assertion for ``options`` (request options JSON); ``count``: the counter to claim (else +1)."""
        self.sign_count = self.sign_count + 1 if count is None else count
        rp_id = options.get("rpId", self.rp_id)
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([self._flags()]) + \
            struct.pack(">I", self.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        response = {"clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                    "signature": b64u(signature)}
        if user_handle and self.user_handle is not None:
            response["userHandle"] = b64u(self.user_handle)
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "response": response, "clientExtensionResults": {}, "authenticatorAttachment": "platform"}
