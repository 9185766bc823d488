"""What certstore publishes about its keys for offline verifiers: the trust list and trust.json.

Both are built through ``keys.certs`` recipes (PEM text, WebCrypto JWK), not by hand.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import ECKey

from keys import pki
from keys.certs import load_pem_certificate

from .conftest import PSB


def _spki(key: Any) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_trust_list_carries_the_region_root_as_pem(services: Any, client: Any) -> None:
    body = client.get("/trust-list").get_json()
    root = load_pem_certificate(body["root_certificate"])
    assert root == pki.region_root(services.keyring)
    issuer = next(i for i in body["issuers"] if i["uscc"] == PSB)
    assert load_pem_certificate(issuer["signer_certificate"]) == services.registry.get_issuer(PSB).certificate


def test_offline_trust_json_gives_each_issuer_its_own_key_as_a_webcrypto_jwk(services: Any, client: Any) -> None:
    body = client.get("/verify/offline/trust.json").get_json()
    issuers = {i["uscc"]: i for i in body["issuers"]}
    assert PSB in issuers
    for uscc, entry in issuers.items():
        jwk = entry["jwk"]
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["ext"] is True
        assert not {"d", "kid", "alg", "use"} & set(jwk)
        imported = ECKey.import_key({k: v for k, v in jwk.items() if k != "ext"}).get_op_key("verify")
        signer_cert = services.registry.get_issuer(uscc).certificate
        assert _spki(imported) == _spki(signer_cert.public_key())
