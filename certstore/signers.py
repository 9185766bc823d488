"""The agencies' signers, cached per process until keys.pki replaces or revokes them.

Issuance (the PDF and the QR) and the OpenID4VCI issuer (SD-JWT VCs) sign with
the same agency key; both ask this cache. The cache key is keys.pki's stamp of
the agency's signer files, so a rotated or revoked signer is seen on the next
call, not after a restart.
"""

from __future__ import annotations

import threading
from typing import Any

from keys import pki
from keys.errors import KeyNotFound

from .errors import ServiceUnavailable

__all__ = ["AgencySigners"]


class AgencySigners:
    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring
        self._lock = threading.Lock()
        self._signers: dict[str, tuple[object, Any]] = {}

    def get(self, uscc: str) -> Any:
        """The signer of the agency ``uscc``; ``ServiceUnavailable`` when it has no valid signer certificate."""
        stamp = pki.signer_stamp(self.keyring, uscc)
        with self._lock:
            cached = self._signers.get(uscc)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            signer = self.keyring.agency_signer(uscc)
        except KeyNotFound:
            raise ServiceUnavailable(
                "the issuer has no valid signer certificate (run: certstore issuers add)", field="issuer",
            ) from None
        with self._lock:
            self._signers[uscc] = (stamp, signer)
        return signer
