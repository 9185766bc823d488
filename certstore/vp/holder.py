"""Our wallet as a holder: what it checks of a verifier's request before asking the citizen (issue 15 §2).

The wallet page (``static/wallet_holder.js``) keeps the holder key and the
credentials in the browser; before it shows the citizen what a verifier asks
for, certstore checks the request object on the wallet's behalf
(:func:`inspect_request`), as OpenID4VP 1.0 §5.10 asks of a wallet:

* ``request_uri`` is one of this deployment's verifier requests (the same-device
  flow at a counter of this region; the browser page may only talk to its own
  origin, CSP ``connect-src 'self'``);
* the request object is a JWT with ``typ: oauth-authz-req+jwt``, signed by the
  key of its ``x5c`` leaf certificate, not expired;
* ``client_id`` is ``x509_hash:`` of that leaf, and the same as in the link the
  wallet was opened with (a request cannot be swapped behind a link);
* the leaf is the signer certificate of an agency registered here: the page
  names that agency to the citizen, never a name the request chose;
* ``response_uri`` is this deployment's.

What comes back is what the page shows and needs to answer: the verifier's
name, the type, the claims asked for, nonce, state, where and how to answer.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
from typing import Any, cast

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

from keys.certs import certificate_der, load_pem_certificate

from ..errors import InvalidInput
from .dcql import CREDENTIAL_ID
from .requests import ENC_VALUES, REQUEST_TYP, x509_hash_client_id

__all__ = ["inspect_request"]

_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class _Registry(JWSRegistry):
    max_header_length = 8192  # x5c: the leaf and the issuing CA


_REGISTRY = _Registry(algorithms=["ES256", "EdDSA"])


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, field="request", code="invalid_request_object")


def _part(text: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise _refuse("the request object cannot be read") from None


def inspect_request(verifier: Any, certificates: Any, *, client_id: str, request_uri: str,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    public = certificates.settings.public_url
    prefix = f"{public}/vp/requests/"
    request_id = request_uri[len(prefix):] if isinstance(request_uri, str) and request_uri.startswith(prefix) else ""
    if not _ID.match(request_id):
        raise _refuse("this wallet answers the verifier requests of this service only")
    jar = verifier.request_object(request_id)
    header = _part(jar.split(".", 1)[0])
    x5c = header.get("x5c") if isinstance(header, dict) else None
    if header.get("typ") != REQUEST_TYP or not isinstance(x5c, list) or not x5c or not isinstance(x5c[0], str):
        raise _refuse("the request object is not a signed OpenID4VP request with x5c")
    try:
        leaf = load_pem_certificate("-----BEGIN CERTIFICATE-----\n" + x5c[0] + "\n-----END CERTIFICATE-----\n")
        claims = json.loads(jws.deserialize_compact(jar, ECKey.import_key(cast(Any, leaf.public_key())), registry=_REGISTRY).payload)
    except (ValueError, JoseError, TypeError):
        raise _refuse("the request object's signature does not verify with its certificate") from None
    expected = x509_hash_client_id(leaf)
    if not (isinstance(client_id, str) and hmac.compare_digest(client_id.encode(), expected.encode())
            and claims.get("client_id") == expected):
        raise _refuse("the client id is not the hash of the certificate that signed the request")
    moment = now or dt.datetime.now(dt.UTC)
    if not isinstance(claims.get("exp"), int) or claims["exp"] < moment.timestamp():
        raise _refuse("the request has expired")
    agency = next((i for i in certificates.registry.issuers()
                   if i.certificate is not None and certificate_der(i.certificate) == certificate_der(leaf)), None)
    if agency is None:
        raise _refuse("the request is signed by no agency registered here")
    if not str(claims.get("response_uri", "")).startswith(f"{public}/vp/responses/"):
        raise _refuse("the answer would go elsewhere than this service")
    query = claims["dcql_query"]["credentials"][0]
    names = [c["path"][0] for c in query["claims"]]
    out: dict[str, Any] = {
        "verifier": {"uscc": agency.uscc, "name": agency.name_zh, "name_en": agency.name_en},
        "client_id": expected,
        "credential_id": query.get("id", CREDENTIAL_ID),
        "vct_values": query["meta"]["vct_values"],
        "type": query["meta"]["vct_values"][0].rsplit("/vct/", 1)[-1],
        "claims": names,
        "nonce": claims["nonce"],
        "state": claims["state"],
        "response_uri": claims["response_uri"],
        "response_mode": claims["response_mode"],
    }
    metadata = claims.get("client_metadata") or {}
    if claims["response_mode"] == "direct_post.jwt":
        keys = (metadata.get("jwks") or {}).get("keys") or []
        offered = metadata.get("encrypted_response_enc_values_supported") or ["A128GCM"]
        out["encryption_jwk"] = keys[0] if keys else None
        out["enc"] = next((e for e in offered if e in ENC_VALUES), None)
        if out["encryption_jwk"] is None or out["enc"] is None:
            raise _refuse("the request asks for an encrypted answer but gives no usable key")
    return out
