"""Creating OpenID4VP 1.0 requests: the signed request object a wallet fetches by reference.

A counter or portal asks for one certificate type and a few claims
(:meth:`RequestMaker.create`). certstore answers with the URL to show as a
QR code (cross-device) or link (same device)::

    openid4vp://?client_id=x509_hash%3A…&request_uri=https%3A%2F%2Fcerts…%2Fvp%2Frequests%2F<id>

and the wallet fetches the request object there (RFC 9101 JAR, §5.7 of
OpenID4VP 1.0; ``request_uri_method`` absent: GET). The object is a JWT with
``typ: oauth-authz-req+jwt``, signed by the embedding agency's signer key —
the key the region's PKI certified for that agency — with ``x5c`` = its
certificate chain. The client identifier prefix is ``x509_hash`` (OpenID4VP
1.0 §5.9.3): ``x509_hash:<base64url SHA-256 of the DER leaf certificate>``,
which needs no DNS name in the certificate and names the agency exactly; a
wallet checks the signature with the ``x5c`` leaf, that its hash is the
client id, and — if it trusts the region's root — who the verifier is.

The object carries ``response_type=vp_token``, ``response_mode``
(``direct_post`` or ``direct_post.jwt``), ``response_uri``, ``nonce``,
``state``, the DCQL query (:mod:`certstore.vp.dcql`) and, for
``direct_post.jwt``, ``client_metadata.jwks`` with a P-256 key made for
this one request (``ECDH-ES``; its private half lives in Redis with the
request, :mod:`certstore.vp.store`, and nowhere else), and
``encrypted_response_enc_values_supported`` (§8.3).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey

from keys import pki
from keys.backend import Signer
from keys.certs import certificate_der
from keys.errors import KeyNotFound
from keys.jws import encode_jws

from ..errors import InvalidInput, NotFound
from .dcql import build_query
from .store import REQUEST_SECONDS, RequestStore

__all__ = ["RESPONSE_MODES", "ENC_VALUES", "Created", "RequestMaker", "x509_hash_client_id", "wallet_url"]

logger = logging.getLogger(__name__)

RESPONSE_MODES = ("direct_post", "direct_post.jwt")
ENC_VALUES = ("A128GCM", "A256GCM")
REQUEST_TYP = "oauth-authz-req+jwt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def x509_hash_client_id(leaf: Any) -> str:
    """OpenID4VP 1.0 §5.9.3 ``x509_hash``: base64url SHA-256 of the DER leaf certificate."""
    return "x509_hash:" + _b64(hashlib.sha256(certificate_der(leaf)).digest())


def wallet_url(client_id: str, request_uri: str, *, base: str = "openid4vp://") -> str:
    """The authorization request by reference (§5.7): what the QR code or the same-device link holds."""
    query = urllib.parse.urlencode({"client_id": client_id, "request_uri": request_uri})
    return f"{base}?{query}"


@dataclass(frozen=True)
class Created:
    request_id: str
    client_id: str
    request_uri: str
    wallet_url: str
    """``openid4vp://?client_id=…&request_uri=…``"""
    view_key: str
    """Secret of the page that made the request: only it reads the result."""
    expires_at: int


class RequestMaker:
    """Builds and signs verifier requests for the agencies of this deployment."""

    def __init__(
        self,
        store: RequestStore,
        *,
        public_url: str,
        signer_of: Callable[[str], Any],
        vct_values: Callable[[str], list[str]],
        agency_name: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.signer_of = signer_of
        self.vct_values = vct_values
        self.agency_name = agency_name
        self.clock = clock

    @classmethod
    def for_keyring(cls, store: RequestStore, *, public_url: str, keyring: Any, registry: Any,
                    vct_values: Callable[[str], list[str]], clock: Callable[[], float] = time.time) -> RequestMaker:
        signers: dict[str, tuple[object, Any]] = {}

        def signer_of(uscc: str) -> Any:
            """The agency's signer, cached until ``keys.pki`` replaces or revokes it (as issuance does)."""
            try:
                stamp = pki.signer_stamp(keyring, uscc)
                cached = signers.get(uscc)
                if cached is not None and cached[0] == stamp:
                    return cached[1]
                signer = pki.agency_signer(keyring, uscc)
            except (KeyNotFound, ValueError):
                raise NotFound("that agency has no signer certificate to sign verifier requests with",
                               field="agency") from None
            signers[uscc] = (stamp, signer)
            return signer

        def agency_name(uscc: str) -> str:
            return str(registry.get_issuer(uscc).name_zh)

        return cls(store, public_url=public_url, signer_of=signer_of, vct_values=vct_values,
                   agency_name=agency_name, clock=clock)

    def response_uri(self, request_id: str) -> str:
        return f"{self.public_url}/vp/responses/{request_id}"

    def request_uri(self, request_id: str) -> str:
        return f"{self.public_url}/vp/requests/{request_id}"

    def create(
        self,
        *,
        agency_uscc: str,
        type_code: str,
        claims: Iterable[str],
        response_mode: str = "direct_post.jwt",
        purpose: str | None = None,
    ) -> Created:
        if response_mode not in RESPONSE_MODES:
            raise InvalidInput(f"response_mode is one of {', '.join(RESPONSE_MODES)}", field="response_mode")
        if purpose is not None and (len(purpose) > 200 or not purpose.isprintable()):
            raise InvalidInput("purpose is printable text of at most 200 characters", field="purpose")
        try:
            vcts = self.vct_values(type_code)
        except NotFound:
            raise InvalidInput(f"there is no certificate type {str(type_code)[:24]!r}", field="type") from None
        try:
            query = build_query(vcts, claims)
        except ValueError as e:
            raise InvalidInput(str(e), field="claims") from None
        signer = self.signer_of(agency_uscc)
        client_id = x509_hash_client_id(signer.certificate)
        request_id = secrets.token_urlsafe(18)
        view_key = secrets.token_urlsafe(24)
        now = int(self.clock())
        data: dict[str, Any] = {
            "agency": agency_uscc,
            "client_id": client_id,
            "nonce": secrets.token_urlsafe(24),
            "state": secrets.token_urlsafe(24),
            "response_mode": response_mode,
            "dcql": query,
            "type": type_code,
            "purpose": purpose or "",
            "view": hashlib.sha256(view_key.encode()).hexdigest(),
            "created": now,
        }
        if response_mode == "direct_post.jwt":
            key = ECKey.generate_key("P-256", parameters={"use": "enc", "alg": "ECDH-ES"}, private=True)
            data["enc_key"] = key.as_dict(private=True)
        self.store.put(request_id, data)
        logger.info("verifier request %s created for agency %s (type %s, %d claims, %s)",
                    request_id[:8], agency_uscc, type_code, len(query["credentials"][0]["claims"]), response_mode)
        request_uri = self.request_uri(request_id)
        return Created(request_id, client_id, request_uri, wallet_url(client_id, request_uri), view_key,
                       now + REQUEST_SECONDS)

    def request_object(self, request_id: str) -> str:
        """The signed request object (JAR) for a wallet fetching ``request_uri``."""
        data = self.store.get(request_id)
        if data is None:
            raise NotFound("this request has expired or never existed", field="request")
        signer = self.signer_of(data["agency"])
        now = int(self.clock())
        metadata: dict[str, Any] = {
            "client_name": self.agency_name(data["agency"]),
            "vp_formats_supported": {
                "dc+sd-jwt": {"sd-jwt_alg_values": ["ES256", "EdDSA"], "kb-jwt_alg_values": ["ES256", "EdDSA"]}
            },
        }
        if "enc_key" in data:
            public = {k: v for k, v in data["enc_key"].items() if k != "d"}
            public["kid"] = ECKey.import_key(public).thumbprint()
            metadata["jwks"] = {"keys": [public]}
            metadata["encrypted_response_enc_values_supported"] = list(ENC_VALUES)
        claims = {
            "iss": data["client_id"],
            "aud": "https://self-issued.me/v2",  # OpenID4VP 1.0 §5.8 (static discovery metadata)
            "iat": now,
            "exp": data["created"] + REQUEST_SECONDS,
            "response_type": "vp_token",
            "client_id": data["client_id"],
            "response_mode": data["response_mode"],
            "response_uri": self.response_uri(request_id),
            "nonce": data["nonce"],
            "state": data["state"],
            "dcql_query": data["dcql"],
            "client_metadata": metadata,
        }
        self.store.mark_fetched(request_id)
        return sign_request(signer, claims)


def sign_request(signer: Signer, claims: dict[str, Any]) -> str:
    chain = [signer.certificate, *getattr(signer, "chain", [])[:1]]  # type: ignore[attr-defined]
    x5c = [base64.b64encode(certificate_der(c)).decode("ascii") for c in chain]
    return encode_jws(signer, claims, typ=REQUEST_TYP, extra_headers={"x5c": x5c})
