"""certstore as an OpenID for Verifiable Credential Issuance 1.0 issuer of SD-JWT VCs (issue 15 §1).

No Flask here (the views are ``certstore/web/vci.py``):

* :mod:`.metadata` — issuer metadata, certstore's own authorization-server
  metadata (pre-authorized code), SD-JWT VC type metadata, configuration ids
  and scopes;
* :mod:`.grants` — offers, pre-authorized codes and tx_codes, certstore's
  access tokens (Redis);
* :mod:`.proofs` — c_nonces and ``jwt`` key proofs;
* :mod:`.credentials` — a certificate row → its SD-JWT VCs
  (:mod:`signing.sdjwt_issue`);
* :mod:`.log` — the issuer's log (``cert_vc_issued``, migration 0004);
* :mod:`.service` — :class:`VciService`, what the endpoints call;
* :mod:`.errors` — one class per OAuth / OpenID4VCI error code.
"""

from __future__ import annotations

from .errors import VciError
from .grants import Grant
from .service import OfferCreated, VciService

__all__ = ["VciService", "OfferCreated", "Grant", "VciError"]
