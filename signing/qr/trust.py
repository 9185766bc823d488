"""The issuer keys a verifier accepts offline: ``kid -> TrustedIssuer``.

certstore fills a :class:`TrustList` from its own issuers and from imported
regional trust lists (:mod:`signing.trustlist`, issue 6); this module only
holds the issuers and looks their keys up by the QR key id
(:func:`signing.qr.codec.qr_kid`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .codec import qr_kid

__all__ = ["TrustedIssuer", "TrustList"]


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose QR payloads this verifier accepts (one signer certificate)."""

    uscc: str
    name: str
    region: str
    public_key: PublicKeyTypes
    certificate: x509.Certificate
    allowed_types: frozenset[str]
    not_after: _dt.datetime
    """End of the signer certificate's validity (UTC)."""
    not_before: _dt.datetime = field(init=False, repr=False, compare=False)
    """Start of the signer certificate's validity (UTC); read once, every scan compares it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "not_before", self.certificate.not_valid_before_utc)

    @property
    def kid(self) -> bytes:
        return qr_kid(self.certificate)

    @classmethod
    def from_certificate(
        cls,
        certificate: x509.Certificate,
        *,
        uscc: str,
        name: str,
        region: str,
        allowed_types: Iterable[str],
    ) -> TrustedIssuer:
        return cls(
            uscc=uscc,
            name=name,
            region=region,
            public_key=_public_key(certificate),
            certificate=certificate,
            allowed_types=frozenset(allowed_types),
            not_after=certificate.not_valid_after_utc,
        )


_KEYS: dict[x509.Certificate, PublicKeyTypes] = {}


def _public_key(certificate: x509.Certificate) -> PublicKeyTypes:
    """The certificate's public key, parsed once per certificate: trust lists are
    rebuilt from the same certificates (certstore merges them per verification)."""
    key = _KEYS.get(certificate)
    if key is None:
        key = certificate.public_key()
        if len(_KEYS) >= 1024:
            _KEYS.clear()
        _KEYS[certificate] = key
    return key


class TrustList:
    """``kid -> TrustedIssuer``: the issuer keys a verifier accepts offline.

    certstore fills it from its issuers and from imported regional trust
    lists (issue 6); this class only looks keys up.
    """

    def __init__(self, issuers: Iterable[TrustedIssuer] = ()) -> None:
        self._by_kid: dict[bytes, TrustedIssuer] = {}
        for issuer in issuers:
            self.add(issuer)

    def add(self, issuer: TrustedIssuer) -> None:
        self._by_kid[issuer.kid] = issuer

    def get(self, kid: bytes) -> TrustedIssuer | None:
        return self._by_kid.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __iter__(self) -> Iterator[TrustedIssuer]:
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)
