"""The roots and CRLs a certificate PDF's PAdES signature chains to.

Shared by issuance (a B-LT signature embeds the chain's CRL and is checked
against these roots when a TSA is configured) and PDF verification.
"""

from __future__ import annotations

from cryptography import x509

from keys import pki
from keys.certs import load_pem_certificates
from keys.keyring import Keyring

from .errors import ServiceUnavailable
from .settings import CertstoreSettings

__all__ = ["PdfTrust"]


class PdfTrust:
    """The region root, plus the TSA's root(s) when timestamps are configured; the current CRL."""

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
        """The issuing CA's current CRL (DER), re-signed by ``keys.pki`` when due."""
        return [pki.current_crl(self.keyring)]
