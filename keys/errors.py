"""Errors raised by the ``keys`` package.

One flat hierarchy, in the manner of ``cryptography.exceptions``: callers catch
:class:`KeysError` at a boundary (CLI, web error handler) and show its message;
the message never carries key material, a PIN or an ID number.
"""

from __future__ import annotations

__all__ = [
    "KeysError",
    "ConfigurationError",
    "InvalidIdentifier",
    "KeyNotFound",
    "KeyStoreCorrupt",
    "WrongKeyEncryptionKey",
    "BackendUnavailable",
    "DecryptionFailed",
]


class KeysError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(KeysError):
    """A setting is missing, malformed or unknown. The message names it."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class InvalidIdentifier(KeysError, ValueError):
    """A resident ID number or a unified social credit code is not valid.

    ``reason`` is a stable machine-readable code (``length``, ``charset``,
    ``birth_date``, ``check_character``) and the message says in words what is
    wrong, without repeating the whole input.
    """

    def __init__(self, message: str, *, kind: str, reason: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason


class KeyNotFound(KeysError, LookupError):
    """No key with that id, or no key in the state asked for."""


class KeyStoreCorrupt(KeysError):
    """A key file or key-set index cannot be read or fails its integrity check."""


class WrongKeyEncryptionKey(KeysError):
    """The key-encryption key does not open the stored keys."""


class BackendUnavailable(KeysError):
    """A key backend cannot be reached: missing PKCS#11 library, token or PIN."""


class DecryptionFailed(KeysError):
    """Encrypted data failed authentication (wrong key or tampered)."""
