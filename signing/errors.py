"""Errors raised by the ``signing`` package.

One flat hierarchy, like :mod:`keys.errors`: callers (certstore's CLI and web
layer) catch :class:`SigningError` at their boundary and show its message.
Messages never carry key material, and never repeat a whole payload (it holds
a masked ID number, but also the holder's name).

Verification *results* are not errors: :func:`signing.qr.verify_qr_payload`
and :func:`signing.pades.verify_pdf` return a result naming each check. Errors
are for input that cannot be processed at all.
"""

from __future__ import annotations

__all__ = ["SigningError", "PayloadError", "PayloadTooLarge", "VerificationError", "PdfError"]


class SigningError(Exception):
    """Base class of every error this package raises on purpose."""


class PayloadError(SigningError, ValueError):
    """A QR payload text cannot be decoded: wrong prefix, bad characters,
    malformed CBOR or COSE, missing or ill-typed claims.

    Decoding raises only this, whatever the input (property-tested).
    ``reason`` is a short stable code (``prefix``, ``encoding``, ``cbor``,
    ``cose``, ``claims``, ``size``) for programs; the message is for people.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PayloadTooLarge(SigningError):
    """The payload would need a QR code above the largest allowed version.

    Issuing refuses such a certificate (issue 5: it must fit version 11 at
    level M). ``length`` and ``limit`` are in text characters.
    """

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class VerificationError(SigningError):
    """Verification could not be attempted (e.g. an unusable trust anchor).

    A signature that does not verify is *not* this error: it is a failed
    check in the returned result.
    """


class PdfError(SigningError):
    """A PDF cannot be read, rendered or signed (not a PDF, encrypted, …)."""
