"""The roots and revocation data a certificate PDF's PAdES signature chains to.

Shared by issuance (a B-LT/B-LTA signature embeds the chain's CRLs and is
checked against these roots), the long-term renewal (:mod:`certstore.ltv`)
and PDF verification.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from pyhanko_certvalidator import ValidationContext

import signing.pades
from keys import pki
from keys.certs import load_pem_certificates
from keys.keyring import Keyring

from .errors import ServiceUnavailable
from .settings import CertstoreSettings

__all__ = ["PdfTrust"]


class PdfTrust:
    """The region root, plus the TSA's root(s) when an external TSA is configured; the current CRLs."""

    def __init__(self, settings: CertstoreSettings, keyring: Keyring) -> None:
        self.settings = settings
        self.keyring = keyring
        self._tsa_roots: list[x509.Certificate] | None = None

    def roots(self) -> list[x509.Certificate]:
        """The roots; ``KeyNotFound`` before ``certstore init``."""
        roots = [pki.region_root(self.keyring)]
        path = self.settings.tsa_root_file
        if path is not None:
            if self._tsa_roots is None:
                try:
                    self._tsa_roots = load_pem_certificates(path.read_bytes())
                except (OSError, ValueError) as e:
                    raise ServiceUnavailable(f"the TSA root file {path} cannot be read: {e}") from None
            roots += self._tsa_roots
        return roots

    def crls(self) -> list[bytes]:
        """The issuing CA's current CRL and the root's (DER), re-signed by ``keys.pki`` when due.

        The root's CRL covers the issuing CA certificate: long-term validation
        wants revocation data for every certificate of the path.
        """
        return [pki.current_crl(self.keyring), pki.current_root_crl(self.keyring)]

    def signing_context(self, chain: Sequence[x509.Certificate] = ()) -> ValidationContext:
        """The validation context B-LT/B-LTA signing and archive timestamps embed data from.

        With the region's own TSA every certificate's revocation data is at
        hand, so it is *required* (a gap fails the signing, not a verifier in
        ten years). An external TSA's CRL or OCSP is not ours to hold: then
        pyHanko may fetch it from the addresses in its certificate, and what
        cannot be fetched is left out (soft-fail; docs/operators.md).
        """
        external = self.settings.tsa_root_file is not None
        return signing.pades.make_validation_context(
            self.roots(),
            crls=self.crls(),
            other_certs=chain,
            revocation_mode="soft-fail" if external else "require",
            allow_fetching=external,
        )
