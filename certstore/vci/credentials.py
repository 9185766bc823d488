"""From a certificate row to its SD-JWT VCs (one per holder key).

Which claims (agreed with the verifier side, docs/agency-credentials.md):

* visible: ``iss`` (certstore's public URL), ``vct`` (``<public url>/vct/<type>``),
  ``iat``, ``nbf`` (the first valid day, 00:00 China Standard Time), ``exp``
  (the end of the last valid day; none for an open-ended certificate),
  ``cnf.jwk``, ``status.status_list {idx, uri}`` — the certificate's own
  private random position in its issuer's list, the one its QR code names;
* disclosable, each on its own: ``identifier``, ``paper_serial``,
  ``holder_name``, ``holder_code`` (the ID number or credit code),
  ``holder_code_type``, and every field of the certificate's type.

Signed by the issuing agency's signer (``keyring.agency_signer``: the key and
``kid`` of its QR payloads and of its status lists, listed in the trust list),
cached until keys.pki replaces or revokes it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from keys.keyring import Keyring
from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc

from ..dates import CHINA_STANDARD_TIME
from ..models import Certificate
from ..reading import PII_PURPOSE
from ..signers import AgencySigners
from ..statuslists import StatusListService
from .errors import CredentialRequestDenied
from .metadata import vct_of

__all__ = ["CredentialFactory", "jwk_thumbprint"]


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK's required members."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _day_start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=CHINA_STANDARD_TIME).timestamp())


class CredentialFactory:
    def __init__(self, public_url: str, keyring: Keyring, status_lists: StatusListService) -> None:
        self.public_url = public_url
        self.keyring = keyring
        self.status_lists = status_lists
        self._signers = AgencySigners(keyring)

    def signer(self, uscc: str) -> Any:
        """The agency's signer (the one issuance uses), cached until keys.pki replaces or revokes it."""
        return self._signers.get(uscc)

    def claims(self, row: Certificate, holder_jwk: dict[str, str], now: dt.datetime) -> CredentialClaims:
        if row.status_list is None or row.status_index is None:
            raise CredentialRequestDenied("this certificate has no status-list position; it cannot be a credential")
        disclosable: dict[str, Any] = {
            "identifier": row.identifier,
            "paper_serial": row.paper_serial,
            "holder_name": row.holder_name,
            "holder_code": self.keyring.pii().decrypt(row.holder_code_enc, purpose=PII_PURPOSE),
            "holder_code_type": row.holder_code_type,
        }
        for name, value in (row.fields or {}).items():
            if name not in disclosable:
                disclosable[name] = value
        until = row.valid_until
        return CredentialClaims(
            issuer=self.public_url,
            vct=vct_of(self.public_url, row.type_code),
            holder_jwk=holder_jwk,
            status_uri=self.status_lists.uri(row.status_list),
            status_index=row.status_index,
            issued_at=int(now.timestamp()),
            not_before=_day_start(row.valid_from),
            expires_at=_day_start(until + dt.timedelta(days=1)) if until is not None else None,
            disclosable=disclosable,
        )

    def issue(self, row: Certificate, holder_jwks: Sequence[dict[str, str]], now: dt.datetime) -> list[str]:
        """One credential per holder key, each with fresh salts (no two share a digest)."""
        signer = self.signer(row.issuer_uscc)
        return [issue_sd_jwt_vc(self.claims(row, jwk, now), signer).credential for jwk in holder_jwks]
