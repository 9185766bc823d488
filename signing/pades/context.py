"""The pyHanko validation context: trust roots, CRLs, and the network only when asked.

Shared by B-LT signing (:func:`signing.pades.sign.sign_pdf` embeds the
validation data it finds) and by verification (:mod:`signing.pades.verify`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import ValidationContext

__all__ = ["asn1_cert", "make_validation_context"]


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    """``cert`` as the asn1crypto object pyHanko works with."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def make_validation_context(
    trust_roots: Iterable[x509.Certificate],
    *,
    crls: Iterable[bytes] = (),
    other_certs: Iterable[x509.Certificate] = (),
    moment: _dt.datetime | None = None,
    revocation_mode: str = "soft-fail",
    allow_fetching: bool = False,
) -> ValidationContext:
    """A pyHanko validation context; offline unless ``allow_fetching``.

    ``revocation_mode="hard-fail"`` requires revocation data for every
    certificate that points to some; ``"require"`` for every certificate but
    the root (B-LTA signing with the region's own TSA wants that).
    ``allow_fetching`` lets pyHanko fetch CRLs and OCSP responses from the
    addresses in certificates (an external TSA's).
    """
    return ValidationContext(
        trust_roots=[asn1_cert(c) for c in trust_roots],
        other_certs=[asn1_cert(c) for c in other_certs],
        crls=[asn1_crl.CertificateList.load(c) for c in crls],
        allow_fetching=allow_fetching,
        revocation_mode=revocation_mode,
        moment=moment,
        weak_hash_algos=set(),
    )
