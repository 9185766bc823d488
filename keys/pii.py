"""Protection of personal identifiers at rest: a keyed blind index and AEAD.

docs/design.md, identity rules: the resident ID number is never stored in clear.
A keyed HMAC-SHA256 (the *blind index*) finds the row; the number itself is
kept AES-256-GCM encrypted. Both keys are derived with HKDF from one secret
held by the key backend, so the database alone reveals nothing, not even which
rows share a number with a list an attacker holds.

Ciphertexts carry a key version so that the secret can be rotated the way
``MultiFernet.rotate`` does it: decrypt with any known version, encrypt with
the newest.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import DecryptionFailed

__all__ = ["PiiProtector"]

_FORMAT = b"\x01"


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"yiwang/" + label).derive(
        secret
    )


@dataclass(frozen=True)
class PiiProtector:
    """Blind index and authenticated encryption for identifiers.

    ``secrets`` maps a one-byte version to a master secret; the highest version
    encrypts. The blind index always uses the *first* (lowest) version so that
    lookups keep working across an encryption-key rotation.
    """

    secrets: dict[int, bytes]
    _index_key: bytes = field(init=False, repr=False)
    _aead: dict[int, AESGCM] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("at least one secret is needed")
        for v, s in self.secrets.items():
            if not 0 <= v <= 255 or len(s) < 32:
                raise ValueError("versions are 0..255 and secrets at least 32 bytes")
        first = self.secrets[min(self.secrets)]
        object.__setattr__(self, "_index_key", _derive(first, b"blind-index"))
        object.__setattr__(
            self,
            "_aead",
            {v: AESGCM(_derive(s, b"pii-aead")) for v, s in self.secrets.items()},
        )

    @classmethod
    def from_secret(cls, secret: bytes) -> PiiProtector:
        return cls({1: secret})

    def __repr__(self) -> str:
        return f"PiiProtector(versions={sorted(self.secrets)})"

    def blind_index(self, value: str, *, purpose: str) -> str:
        """A stable, keyed, hex digest of ``value`` for equality lookups."""
        mac = hmac.new(self._index_key, purpose.encode() + b"\x00" + value.encode(), sha256)
        return mac.hexdigest()

    def encrypt(self, value: str, *, purpose: str) -> bytes:
        version = max(self.secrets)
        nonce = os.urandom(12)
        ct = self._aead[version].encrypt(nonce, value.encode(), purpose.encode())
        return _FORMAT + bytes([version]) + nonce + ct

    def decrypt(self, blob: bytes, *, purpose: str) -> str:
        if len(blob) < 2 + 12 + 16 or blob[:1] != _FORMAT:
            raise DecryptionFailed("not a Yiwang PII ciphertext")
        aead = self._aead.get(blob[1])
        if aead is None:
            raise DecryptionFailed(f"no key of version {blob[1]} is loaded")
        try:
            return aead.decrypt(blob[2:14], blob[14:], purpose.encode()).decode()
        except InvalidTag:
            raise DecryptionFailed("ciphertext failed authentication") from None

    def rotate(self, blob: bytes, *, purpose: str) -> bytes:
        """Re-encrypt ``blob`` under the newest version."""
        return self.encrypt(self.decrypt(blob, purpose=purpose), purpose=purpose)
