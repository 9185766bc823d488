"""Certificate profiles: what the CA, signer, TSA and TLS client certificates carry.

Every leaf (end-entity) certificate the issuing CA signs has the same shape:
basicConstraints CA=false (critical), keyUsage (critical), one extended key
usage, the issuing CA's CRL distribution point, SKI and AKI, and a validity
that never outlasts the issuing CA. Only the key usage bits and the extended
key usage differ; :class:`LeafProfile` names them and :func:`leaf_builder`
builds the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from .tbs import certificate_public_key

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
"""id-kp-documentSigning (RFC 9336)."""

TLS_CLIENT_PROFILE = "tls-client"
"""An agency's TLS client certificate: EKU clientAuth only, never documentSigning."""


@dataclass(frozen=True)
class LeafProfile:
    """What distinguishes one kind of leaf certificate from another."""

    non_repudiation: bool
    """keyUsage nonRepudiation (contentCommitment) beside digitalSignature."""
    extended_key_usage: tuple[ObjectIdentifier, ...]
    eku_critical: bool
    """RFC 3161 §2.3 asks a TSA's extended key usage to be critical."""


SIGNER = LeafProfile(
    non_repudiation=True,
    extended_key_usage=(ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING),
    eku_critical=False,
)
"""docs/design.md: poppler's ``pdfsig`` trusts a signer only with emailProtection and a CRL DP."""

TSA = LeafProfile(
    non_repudiation=True,
    extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
    eku_critical=True,
)
"""RFC 3161 §2.3: id-kp-timeStamping only, critical."""

TLS_CLIENT = LeafProfile(
    non_repudiation=False,
    extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    eku_critical=False,
)
"""RFC 5280 §4.2.1.12 clientAuth, for RFC 8705 mutual TLS (:data:`TLS_CLIENT_PROFILE`)."""


def _key_usage(
    *, digital_signature: bool, non_repudiation: bool, ca: bool
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def region_name(region: str, organization: str, common_name: str) -> x509.Name:
    """The subject of a certificate the region itself holds (its CAs, its TSA)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, region),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def agency_name(uscc: str, name: str) -> x509.Name:
    """An agency's subject: its USCC in ``organizationIdentifier`` (2.5.4.97) and ``serialNumber``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, uscc),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, uscc),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def ca_extensions(
    builder: x509.CertificateBuilder, *, path_length: int
) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        _key_usage(digital_signature=False, non_repudiation=False, ca=True), critical=True
    )


def leaf_builder(
    profile: LeafProfile,
    *,
    subject: x509.Name,
    subject_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer: x509.Certificate,
    not_before: dt.datetime,
    not_after: dt.datetime,
    crl_url: str,
) -> x509.CertificateBuilder:
    """A leaf certificate of ``profile`` for the issuing CA ``issuer`` to sign.

    ``not_after`` is cut to the issuer's own end: a certificate never
    outlives the CA that vouches for it.
    """
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, non_repudiation=profile.non_repudiation, ca=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(list(profile.extended_key_usage)),
            critical=profile.eku_critical,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                certificate_public_key(issuer.public_key())
            ),
            critical=False,
        )
    )
