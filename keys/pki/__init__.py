"""The agency PKI: region root CA → issuing CA → one signer certificate per agency.

A region (a province or city, by its administrative division code) runs one
root CA and one issuing CA; each agency that issues electronic certificates
gets a signer certificate whose subject carries its unified social credit
code (GB 32100-2015), in ``organizationIdentifier`` (2.5.4.97) and
``serialNumber``. The signer profile follows docs/design.md: keyUsage
digitalSignature + nonRepudiation, extended key usage emailProtection and
documentSigning (poppler's ``pdfsig`` trusts a signer only with
emailProtection and a CRL distribution point), AKI/SKI, no CA.

Every private key (both CAs' and the agencies') lives in a key backend, so the
CAs can sit in an HSM: certificates and CRLs are built with
``cryptography``'s builders, and their to-be-signed part is signed through
our :class:`~keys.backend.Signer` (see :func:`keys.pki.tbs.sign_tbs`).

The parts:

- :mod:`keys.pki.ca`: the CA hierarchy (``init_region``, ``region_ca``, ``root_signer``)
- :mod:`keys.pki.profiles`: what each kind of certificate carries
- :mod:`keys.pki.leaves`: agency signers, the region TSA, agency TLS clients
- :mod:`keys.pki.crl`: revocation and both CRLs
- :mod:`keys.pki.storage`: the files under ``key_dir/pki`` and key references
- :mod:`keys.pki.tbs`: signing certificates and CRLs through a key backend
"""

from __future__ import annotations

from .ca import DEFAULT_CRL_URL, RegionCA, init_region, region_ca, region_root, root_signer
from .crl import current_crl, current_root_crl, revoke_signer
from .leaves import (
    AgencySigner,
    SignerInfo,
    TsaSigner,
    agency_signer,
    issue_signer,
    issue_tls_client,
    issue_tsa,
    list_signers,
    signer_stamp,
    tsa_signer,
    tsa_stamp,
    uscc_of,
)
from .profiles import DOCUMENT_SIGNING, TLS_CLIENT_PROFILE

# The old module's private helpers that tests still reach for (tests/certstore/test_trust_boundaries.py).
from .storage import key_signer as _key_signer  # noqa: F401
from .storage import region_state as _region_state  # noqa: F401
from .tbs import sign_tbs as _sign_tbs  # noqa: F401

__all__ = [
    "AgencySigner",
    "RegionCA",
    "SignerInfo",
    "TsaSigner",
    "DOCUMENT_SIGNING",
    "DEFAULT_CRL_URL",
    "init_region",
    "issue_signer",
    "revoke_signer",
    "agency_signer",
    "region_root",
    "region_ca",
    "root_signer",
    "list_signers",
    "signer_stamp",
    "current_crl",
    "current_root_crl",
    "uscc_of",
    "TLS_CLIENT_PROFILE",
    "issue_tls_client",
    "issue_tsa",
    "tsa_signer",
    "tsa_stamp",
]
