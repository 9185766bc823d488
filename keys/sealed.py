"""Files sealed under the key-encryption key (KEK), and atomic file writes.

Everything secret that ``keys/`` keeps on disk (software private keys, named
secrets such as the PII master secret) is AES-256-GCM encrypted under one
32-byte KEK, with the file's role and name as associated data so that a file
cannot be swapped for another one.

AES-GCM cannot tell a wrong key from a damaged file: both fail the tag. So
the key directory holds a *check file* sealed under the KEK when the store is
created. If the KEK opens the check file but not a key file, the key file is
corrupt (:class:`~keys.errors.KeyStoreCorrupt`); if it does not open the
check file either, the KEK is wrong (:class:`~keys.errors.WrongKeyEncryptionKey`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeysError, KeyStoreCorrupt, WrongKeyEncryptionKey

__all__ = ["KEK_SIZE", "load_or_create_kek", "Sealer", "atomic_write", "file_lock"]

logger = logging.getLogger(__name__)

KEK_SIZE = 32
_MAGIC = b"YWS1"  # Yiwang sealed, format 1
_NONCE = 12
_CHECK_NAME = "kek-check"
_CHECK_PLAINTEXT = b"yiwang key-encryption key check v1"


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    Temp file in the same directory, fsync, ``os.replace``, fsync the directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock across processes (``flock`` on ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _parse_kek(data: bytes, path: Path) -> bytes:
    if len(data) == KEK_SIZE:
        return data
    text = data.strip()
    with contextlib.suppress(ValueError, binascii.Error):
        if len(text) == 2 * KEK_SIZE:
            return bytes.fromhex(text.decode("ascii"))
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == KEK_SIZE:
            return decoded
    raise WrongKeyEncryptionKey(
        f"the key-encryption key file {path} must hold 32 bytes (raw, hex or base64)"
    )


def load_or_create_kek(path: Path, *, create: bool = True) -> bytes:
    """Read the KEK; on first use (and ``create``) make 32 random bytes, mode 0600."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise WrongKeyEncryptionKey(
                f"the key-encryption key file {path} does not exist"
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kek = secrets.token_bytes(KEK_SIZE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return _parse_kek(path.read_bytes(), path)
        with os.fdopen(fd, "wb") as f:
            f.write(kek)
            f.flush()
            os.fsync(f.fileno())
        logger.info("generated a new key-encryption key at %s", path)
        return kek
    except OSError as e:
        raise WrongKeyEncryptionKey(
            f"the key-encryption key file {path} cannot be read ({e.strerror})"
        ) from None
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o077:
            logger.warning(
                "the key-encryption key file %s is readable by others; chmod 600 it", path
            )
    return _parse_kek(data, path)


class Sealer:
    """AES-256-GCM sealing of small files under the KEK, bound to their role and name."""

    def __init__(self, kek: bytes, directory: Path) -> None:
        if len(kek) != KEK_SIZE:
            raise WrongKeyEncryptionKey("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(kek)
        self.directory = directory
        self._checked = False

    def __repr__(self) -> str:
        return f"Sealer(directory={str(self.directory)!r})"

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def _open(self, blob: bytes, *, context: str) -> bytes:
        if len(blob) < len(_MAGIC) + _NONCE + 16 or not blob.startswith(_MAGIC):
            raise KeyStoreCorrupt(f"{context} is not a Yiwang sealed file")
        nonce = blob[len(_MAGIC) : len(_MAGIC) + _NONCE]
        return self._aead.decrypt(nonce, blob[len(_MAGIC) + _NONCE :], context.encode())

    def check(self) -> None:
        """Make sure the KEK is the one this store was created with (creating the check file)."""
        if self._checked:
            return
        path = self.directory / _CHECK_NAME
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            atomic_write(path, self.seal(_CHECK_PLAINTEXT, context=_CHECK_NAME))
            self._checked = True
            return
        try:
            ok = self._open(blob, context=_CHECK_NAME) == _CHECK_PLAINTEXT
        except InvalidTag:
            ok = False
        except KeyStoreCorrupt:
            raise KeyStoreCorrupt(f"the KEK check file {path} is damaged") from None
        if not ok:
            raise WrongKeyEncryptionKey(
                f"the key-encryption key does not open the key store in {self.directory} "
                "(check YIWANG_KEK_FILE)"
            )
        self._checked = True

    def open(self, blob: bytes, *, context: str) -> bytes:
        """Decrypt; a failure is a wrong KEK or a corrupt file, and the check file tells which."""
        self.check()
        try:
            return self._open(blob, context=context)
        except InvalidTag:
            raise KeyStoreCorrupt(
                f"{context} fails its integrity check (corrupt or tampered)"
            ) from None

    def write(self, path: Path, plaintext: bytes, *, context: str) -> None:
        self.check()
        atomic_write(path, self.seal(plaintext, context=context))

    def read(self, path: Path, *, context: str) -> bytes:
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as e:
            raise KeysError(f"{context} cannot be read ({e.strerror})") from None
        return self.open(blob, context=context)
