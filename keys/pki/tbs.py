"""Signing certificates and CRLs with a key that stays in its backend (an HSM, say).

``cryptography`` signs only with private key objects it holds, which an HSM
never hands out; :func:`sign_tbs` lets it build the to-be-signed part and
signs those bytes through our :class:`~keys.backend.Signer`.
"""

from __future__ import annotations

import threading
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)

from ..backend import Signer
from ..errors import KeysError

_throwaway: dict[str, CertificateIssuerPrivateKeyTypes] = {}
_throwaway_lock = threading.Lock()


def _placeholder_key(algorithm: str) -> CertificateIssuerPrivateKeyTypes:
    """A key of the issuer's type, used only to let cryptography emit the TBS bytes."""
    with _throwaway_lock:
        key = _throwaway.get(algorithm)
        if key is None:
            if algorithm == "ES256":
                key = ec.generate_private_key(ec.SECP256R1())
            else:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _throwaway[algorithm] = key
        return key


def sign_tbs(kind: str, builder: Any, issuer: Signer) -> bytes:
    """Sign a certificate or CRL builder with a backend key; returns DER.

    The to-be-signed part does not depend on the key that signs it (the
    issuer's AKI and name are set explicitly, and the signature algorithm is
    fixed by the key type), so we let cryptography build it with a placeholder
    key of the same type, sign those TBS bytes through ``issuer`` and assemble
    the final structure (RFC 5280 §4.1, §5.1).
    """
    draft = builder.sign(_placeholder_key(issuer.algorithm), hashes.SHA256())
    signature = issuer.sign(
        draft.tbs_certificate_bytes if kind == "cert" else draft.tbs_certlist_bytes, der=True
    )
    algorithm = {"algorithm": "sha256_ecdsa" if issuer.algorithm == "ES256" else "sha256_rsa"}
    if kind == "cert":
        cert = asn1_x509.Certificate(
            {
                "tbs_certificate": asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes),
                "signature_algorithm": algorithm,
                "signature_value": signature,
            }
        )
        der: bytes = cert.dump()
    else:
        crl = asn1_crl.CertificateList(
            {
                "tbs_cert_list": asn1_crl.TbsCertList.load(draft.tbs_certlist_bytes),
                "signature_algorithm": algorithm,
                "signature": signature,
            }
        )
        der = crl.dump()
    return der


def certificate_public_key(key: PublicKeyTypes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeysError("PKI keys are ES256 (P-256) or RS256")
    return key
