"""certstore as an OpenID4VCI 1.0 issuer: offers, the pre-authorized token endpoint, nonces, credentials.

The web layer (``certstore/web/vci.py``) authenticates callers and hands
plain values here:

* :meth:`VciService.create_offer`: the issuing agency (its client-credentials
  token, the certificate its own, its type among the agency's allowed types)
  gets an offer link for the wallet and the tx_code to send the citizen
  separately (§4.1, §3.5);
* :meth:`VciService.token`: the token endpoint of the pre-authorized code
  flow (§6.1): single use, tx_code checked, limited attempts;
* :meth:`VciService.nonce`: the nonce endpoint (§7);
* :meth:`VciService.credential`: the credential endpoint (§8) for a
  :class:`~certstore.vci.grants.Grant` — certstore's own token (one
  certificate) or the idp's access token (the citizen's own certificates of
  the scoped types) — with one ``jwt`` key proof per credential (batch
  issuance, §8.2 ``proofs``; each credential is bound to its own key and has
  its own salts, so presentations of two of them cannot be linked by
  digests or keys).

A certificate that is not valid now (suspended, revoked, expired …) gets no
new credential; one already issued follows the certificate's status through
the status list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from ..errors import Forbidden, NotFound
from ..lifecycle import is_expired
from ..models import STATUS_VALID, AuditEvent, Certificate
from ..reading import CertificateReader
from ..registry import IssuerInfo
from ..service import CertificateService
from .credentials import CredentialFactory, jwk_thumbprint
from .errors import (
    CredentialRequestDenied,
    InsufficientScope,
    InvalidCredentialRequest,
    InvalidProof,
    InvalidRequest,
    UnknownCredentialConfiguration,
    UnsupportedGrantType,
)
from .grants import (
    AUTHORIZATION_CODE,
    OFFER_SECONDS,
    TOKEN_SECONDS,
    TX_CODE_LENGTH,
    Grant,
    GrantStore,
)
from .log import IssueRecord, issued_for, record_issued
from .metadata import (
    BATCH_SIZE,
    PRE_AUTHORIZED_GRANT,
    authorization_server_metadata,
    config_id,
    issuer_metadata,
    type_metadata,
    type_of_config,
)
from .proofs import NONCE_SECONDS, Nonces, verify_proof

__all__ = ["VciService", "OfferCreated", "OFFER_SCHEME"]

logger = logging.getLogger(__name__)

OFFER_SCHEME = "openid-credential-offer://"


@dataclass(frozen=True)
class OfferCreated:
    offer_uri: str
    """``credential_offer_uri``: where the wallet fetches the offer."""
    link: str
    """``openid-credential-offer://?credential_offer_uri=…``: the QR code's or deep link's text."""
    tx_code: str
    """Six digits for the citizen, sent separately (never in the link)."""
    expires_in: int

    def to_dict(self) -> dict[str, Any]:
        return {"credential_offer_uri": self.offer_uri, "offer_link": self.link, "tx_code": self.tx_code,
                "expires_in": self.expires_in}


class VciService:
    def __init__(
        self,
        certificates: CertificateService,
        *,
        idp_issuer: str,
        redis: Callable[[], Any],
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.certificates = certificates
        self.public_url = certificates.settings.public_url
        self.idp_issuer = idp_issuer
        keyring = certificates.keyring
        self.clock = clock
        self.grants = GrantStore(keyring.secret("vci-grants"), redis=redis, prefix=prefix)
        self.nonces = Nonces(keyring.secret("vci-nonce"), redis=redis, prefix=prefix, clock=clock)
        self.factory = CredentialFactory(self.public_url, keyring, certificates.status_lists)

    # -- metadata --------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return issuer_metadata(self.public_url, self.idp_issuer, self.certificates.registry.types())

    def authorization_server(self) -> dict[str, Any]:
        return authorization_server_metadata(self.public_url)

    def type_metadata(self, type_code: str) -> dict[str, Any]:
        return type_metadata(self.public_url, self.certificates.registry.get_type(type_code))

    # -- the issuer's log, for the issuing agency ---------------------------------

    def issued(self, identifier: str, issuer: IssuerInfo) -> list[dict[str, Any]]:
        """What was issued for one of the agency's certificates (no claim values: there are none)."""
        view = self.certificates.get(identifier, agency_uscc=issuer.uscc)  # another agency's: 404
        with self.certificates.sessions() as s:
            cert_id = s.scalar(sa.select(Certificate.id).where(Certificate.identifier == view.identifier))
        return [
            {"issued_at": r.issued_at.isoformat(), "configuration": r.configuration_id, "flow": r.flow,
             "holder_jkt": r.holder_jkt, "client_id": r.client_id}
            for r in issued_for(self.certificates.sessions, [cert_id] if cert_id is not None else [])
        ]

    # -- offers ----------------------------------------------------------------

    def create_offer(self, identifier: str, issuer: IssuerInfo, *, actor: str) -> OfferCreated:
        """An offer of ``identifier``'s credential, for the agency that issued it."""
        view = self.certificates.get(identifier, agency_uscc=issuer.uscc)  # another agency's: 404
        if view.type_code not in issuer.allowed_types:
            raise Forbidden("this agency may not issue certificates of this type", code="type_not_allowed")
        if view.status != STATUS_VALID:
            raise Forbidden(f"the certificate is {view.status_en}; no credential is offered for it",
                            code="certificate_not_valid")
        offer = self.grants.create_offer(view.identifier, config_id(view.type_code))
        with self.certificates.sessions() as s, s.begin():
            s.add(AuditEvent(at=dt.datetime.now(dt.UTC), actor=actor, action="certificate.vc_offer",
                             subject=view.identifier, detail={"configuration": offer.configuration_id}))
        uri = f"{self.public_url}/vci/offers/{offer.offer_id}"
        return OfferCreated(uri, f"{OFFER_SCHEME}?credential_offer_uri={quote(uri, safe='')}", offer.tx_code,
                            OFFER_SECONDS)

    def offer(self, offer_id: str) -> dict[str, Any] | None:
        """The Credential Offer object behind a ``credential_offer_uri`` (§4.1.1)."""
        found = self.grants.offer(offer_id)
        if found is None:
            return None
        return {
            "credential_issuer": self.public_url,
            "credential_configuration_ids": [found["configuration"]],
            "grants": {
                PRE_AUTHORIZED_GRANT: {
                    "pre-authorized_code": found["code"],
                    "tx_code": {"input_mode": "numeric", "length": TX_CODE_LENGTH,
                                "description": "短信中的 6 位数字 / the 6 digits sent to you by SMS"},
                    "authorization_server": self.public_url,
                },
            },
        }

    def signin_offer(self, type_code: str) -> dict[str, Any]:
        """An offer the citizen starts from the wallet: sign in at the idp (authorization code flow)."""
        spec = self.certificates.registry.get_type(type_code)
        return {
            "credential_issuer": self.public_url,
            "credential_configuration_ids": [config_id(spec.code)],
            "grants": {AUTHORIZATION_CODE: {"authorization_server": self.idp_issuer}},
        }

    # -- token endpoint (pre-authorized code) ------------------------------------

    def token(self, form: Mapping[str, str], *, jkt: str | None = None) -> dict[str, Any]:
        """Redeem a pre-authorized code; with ``jkt`` (a DPoP proof's key, RFC 9449 §5) the token is bound to it."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required")
        if grant_type != PRE_AUTHORIZED_GRANT:
            raise UnsupportedGrantType("this token endpoint serves the pre-authorized code grant only")
        grant = self.grants.redeem(form.get("pre-authorized_code"), form.get("tx_code"))
        token = self.grants.issue_token(dataclasses.replace(grant, jkt=jkt))
        return {
            "access_token": token, "token_type": "DPoP" if jkt else "Bearer", "expires_in": TOKEN_SECONDS,
            # §6.2: the configurations this token can fetch
            "authorization_details": [
                {"type": "openid_credential", "credential_configuration_id": c, "credential_identifiers": [c]}
                for c in grant.configuration_ids
            ],
        }

    # -- nonce endpoint -------------------------------------------------------------

    def nonce(self) -> dict[str, Any]:
        return {"c_nonce": self.nonces.issue(), "c_nonce_expires_in": NONCE_SECONDS}

    # -- credential endpoint ------------------------------------------------------------

    def _configuration(self, body: Mapping[str, Any], grant: Grant) -> str:
        wanted = body.get("credential_configuration_id")
        if wanted is None:
            wanted = body.get("credential_identifier")  # §8.2: from the token's authorization_details
        if not isinstance(wanted, str) or not wanted:
            raise InvalidCredentialRequest("credential_configuration_id is required")
        type_code = type_of_config(wanted)
        if type_code is None:
            raise UnknownCredentialConfiguration("no such credential configuration")
        if grant.flow == AUTHORIZATION_CODE:
            if grant.types is not None and type_code not in grant.types:
                raise InsufficientScope(f"the access token's scope does not cover {wanted}")
        elif wanted not in grant.configuration_ids:
            raise UnknownCredentialConfiguration("the access token was not issued for this credential configuration")
        return wanted

    def _proofs(self, body: Mapping[str, Any]) -> list[str]:
        proofs = body.get("proofs")
        if proofs is None and isinstance(body.get("proof"), Mapping):  # Draft 13-15 single proof
            single = body["proof"]
            if single.get("proof_type") != "jwt":
                raise InvalidProof("only proofs of type jwt are supported")
            proofs = {"jwt": [single.get("jwt")]}
        if not isinstance(proofs, Mapping) or not proofs:
            raise InvalidProof("the request carries no key proof (proofs.jwt)")
        if set(proofs) != {"jwt"}:
            raise InvalidProof("only proofs of type jwt are supported")
        items = proofs["jwt"]
        if not isinstance(items, list) or not items:
            raise InvalidProof("proofs.jwt must be a non-empty array")
        if len(items) > BATCH_SIZE:
            raise InvalidCredentialRequest(f"at most {BATCH_SIZE} proofs per request (batch_size)")
        return items

    def _certificate(self, grant: Grant, type_code: str) -> Certificate:
        now = self.certificates.clock()
        with self.certificates.sessions() as s:
            if grant.identifier is not None:
                try:
                    row = CertificateReader.find(s, grant.identifier)
                except NotFound:
                    raise CredentialRequestDenied("the offered certificate is gone") from None
                rows = [row] if row.type_code == type_code else []
            else:
                rows = list(s.scalars(
                    sa.select(Certificate).where(Certificate.holder_code_index == grant.holder_index,
                                                 Certificate.type_code == type_code)
                    .order_by(Certificate.issued_at.desc()).limit(50)
                ))
            live = [r for r in rows if r.status == STATUS_VALID and not is_expired(r.valid_until, now)]
            if not live:
                raise CredentialRequestDenied("there is no valid certificate of this type to issue a credential for")
            s.expunge(live[0])
            return live[0]

    def credential(self, grant: Grant, body: Any) -> dict[str, Any]:
        """Check the request and its proofs, issue one credential per proof, log them."""
        if not isinstance(body, Mapping):
            raise InvalidCredentialRequest("the credential request is a JSON object")
        configuration = self._configuration(body, grant)
        type_code = type_of_config(configuration)
        assert type_code is not None
        now = self.clock()
        checked = [verify_proof(p, audience=self.public_url, now=now, nonces=self.nonces,
                                client_id=grant.client_id) for p in self._proofs(body)]
        if len({p.nonce for p in checked}) != 1:
            raise InvalidProof("all proofs of one request carry the same c_nonce")
        thumbprints = [jwk_thumbprint(p.jwk) for p in checked]
        if len(set(thumbprints)) != len(thumbprints):
            raise InvalidProof("each proof of a batch must be made with its own key (one credential per key)")
        row = self._certificate(grant, type_code)
        self.nonces.consume(checked[0].nonce)
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        credentials = self.factory.issue(row, [p.jwk for p in checked], at)
        record_issued(self.certificates.sessions, IssueRecord(
            certificate_id=row.id, identifier=row.identifier, configuration_id=configuration,
            holder_jkts=tuple(thumbprints), flow=grant.flow, client_id=grant.client_id, at=at,
        ))
        logger.info("issued %d credential(s) of %s through %s (client %s)", len(credentials), configuration,
                    grant.flow, grant.client_id or "-")
        return {"credentials": [{"credential": c} for c in credentials]}
