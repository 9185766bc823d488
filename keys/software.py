"""The software key backend: PKCS#8 private keys in files sealed under the KEK.

The embedded default and the development backend (Warehouse's "a real
implementation and a development one side by side"): each key is one file
``<key_dir>/private/<handle>.key`` holding the DER PKCS#8 key AES-256-GCM
encrypted under the KEK (see :mod:`keys.sealed`). Decrypted key objects are
cached in memory, because parsing a key costs more than the signature
itself (docs/design.md, pyhanko speed).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from .backend import check_algorithm, der_to_raw_ecdsa, public_jwk
from .errors import KeyNotFound, KeysError, KeyStoreCorrupt
from .sealed import Sealer

__all__ = ["SoftwareBackend", "SoftwareSigner"]

logger = logging.getLogger(__name__)

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _generate(algorithm: str) -> _SigningKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _matches(key: PrivateKeyTypes, algorithm: str) -> bool:
    if algorithm == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    if algorithm == "RS256":
        return isinstance(key, rsa.RSAPrivateKey)
    return isinstance(key, ed25519.Ed25519PrivateKey)


class SoftwareSigner:
    """A :class:`~keys.backend.Signer` over a key held in this process's memory."""

    def __init__(self, key: _SigningKey, *, algorithm: str, kid: str) -> None:
        self._key = key
        self.algorithm = algorithm
        self.kid = kid
        self._public = key.public_key()
        self._jwk: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"SoftwareSigner(kid={self.kid!r}, algorithm={self.algorithm!r})"

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
            return signature if der else der_to_raw_ecdsa(signature)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def public_jwk(self) -> dict[str, str]:
        if self._jwk is None:
            self._jwk = public_jwk(self._public, kid=self.kid, algorithm=self.algorithm)
        return dict(self._jwk)


class SoftwareBackend:
    """Keys as sealed PKCS#8 files under ``key_dir/private``."""

    name = "software"

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        self._dir = sealer.directory / "private"
        self._cache: dict[str, _SigningKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SoftwareBackend(directory={str(self._dir)!r})"

    def _path(self, handle: str) -> Path:
        if not _HANDLE.match(handle):
            raise KeyNotFound("malformed key handle")
        return self._dir / f"{handle}.key"

    @staticmethod
    def _context(handle: str) -> str:
        return f"private key {handle}"

    def generate(self, algorithm: str, label: str) -> str:
        check_algorithm(algorithm)
        slug = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:40] or "key"
        handle = f"{slug}-{secrets.token_hex(8)}"
        key = _generate(algorithm)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._sealer.write(self._path(handle), der, context=self._context(handle))
        with self._lock:
            self._cache[handle] = key
        logger.info("generated %s software key %s", algorithm, handle)
        return handle

    def _load(self, handle: str) -> _SigningKey:
        key = self._cache.get(handle)
        if key is not None:
            return key
        path = self._path(handle)
        try:
            der = self._sealer.read(path, context=self._context(handle))
        except FileNotFoundError:
            raise KeyNotFound(f"no software key {handle}") from None
        try:
            loaded = serialization.load_der_private_key(der, password=None)
        except ValueError:
            raise KeyStoreCorrupt(f"private key {handle} is not a PKCS#8 key") from None
        if not isinstance(
            loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise KeyStoreCorrupt(f"private key {handle} has an unsupported type")
        with self._lock:
            self._cache[handle] = loaded
        return loaded

    def signer(self, handle: str, algorithm: str, kid: str) -> SoftwareSigner:
        check_algorithm(algorithm)
        key = self._load(handle)
        if not _matches(key, algorithm):
            raise KeysError(f"key {handle} cannot sign {algorithm}")
        return SoftwareSigner(key, algorithm=algorithm, kid=kid)

    def public_key(self, handle: str) -> PublicKeyTypes:
        return self._load(handle).public_key()

    def delete(self, handle: str) -> None:
        with self._lock:
            self._cache.pop(handle, None)
        path = self._path(handle)
        with contextlib.suppress(FileNotFoundError):
            # Overwrite before unlinking: cheap, and it keeps a sealed copy
            # from lingering in the same blocks on simple filesystems.
            size = path.stat().st_size
            with path.open("r+b") as f:
                f.write(b"\0" * size)
            path.unlink()
        logger.info("deleted software key %s", handle)
