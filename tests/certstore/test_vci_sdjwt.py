"""signing.sdjwt_issue: SD-JWT VCs signed through a keys/ signer, checked by the sd-jwt reference library."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier

from keys.backend import public_jwk_members
from keys.config import CommonSettings
from keys.keyring import open_keyring
from signing.sdjwt_issue import (
    TYP,
    CredentialClaims,
    SdJwtIssueError,
    check_holder_jwk,
    decode_disclosure,
    issue_sd_jwt_vc,
)

ISS = "https://certs.example"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    common = CommonSettings.from_values({"HOME": tmp_path_factory.mktemp("vc")}, default_issuer="http://x")
    return open_keyring(common.keys).keyset("vc-test", algorithm="ES256").active()


def _holder() -> dict[str, str]:
    return public_jwk_members(ec.generate_private_key(ec.SECP256R1()).public_key())


def _claims(**kw: Any) -> CredentialClaims:
    base: dict[str, Any] = dict(
        issuer=ISS, vct=f"{ISS}/vct/JZZM", holder_jwk=_holder(), status_uri=f"{ISS}/status-lists/3",
        status_index=91_234, issued_at=1_800_000_000, not_before=1_799_000_000, expires_at=1_900_000_000,
        disclosable={"identifier": "JZZM-1", "paper_serial": "P-77", "holder_name": "张三",
                     "address": "北京市朝阳区", "since": "2020-01-01", "empty": None},
    )
    base.update(kw)
    return CredentialClaims(**base)


def _header(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_the_reference_library_verifies_it_and_recovers_every_claim(signer: Any) -> None:
    issued = issue_sd_jwt_vc(_claims(), signer)
    jwt = issued.credential.split("~")[0]
    assert _header(jwt) == {"alg": "ES256", "kid": signer.kid, "typ": TYP}
    key = JWK.from_json(json.dumps(signer.public_jwk()))
    payload = SDJWTVerifier(issued.credential, lambda iss, header: key).get_verified_payload()
    assert payload["holder_name"] == "张三" and payload["identifier"] == "JZZM-1"
    assert payload["paper_serial"] == "P-77" and payload["since"] == "2020-01-01"
    assert "empty" not in payload
    assert payload["status"] == {"status_list": {"idx": 91_234, "uri": f"{ISS}/status-lists/3"}}
    assert payload["cnf"]["jwk"]["kty"] == "EC" and "_sd" not in payload["cnf"]["jwk"]


def test_personal_claims_are_only_digests_in_the_signed_part(signer: Any) -> None:
    issued = issue_sd_jwt_vc(_claims(), signer)
    signed = json.dumps(issued.payload, ensure_ascii=False)
    for value in ("张三", "JZZM-1", "P-77", "北京市朝阳区", "2020-01-01"):
        assert value not in signed
    assert issued.payload["_sd_alg"] == "sha-256"
    # five disclosures plus 2-5 decoys, sorted
    assert 7 <= len(issued.payload["_sd"]) <= 10 and issued.payload["_sd"] == sorted(issued.payload["_sd"])
    names = sorted(decode_disclosure(d)[1] for d in issued.disclosures)
    assert names == ["address", "holder_name", "identifier", "paper_serial", "since"]
    assert {"iss", "vct", "iat", "nbf", "exp", "cnf", "status"} <= set(issued.payload)


def test_a_tampered_credential_fails_the_reference_verifier(signer: Any) -> None:
    issued = issue_sd_jwt_vc(_claims(), signer)
    jwt, *rest = issued.credential.split("~")
    head, body, sig = jwt.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["status"]["status_list"]["idx"] = 1
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    key = JWK.from_json(json.dumps(signer.public_jwk()))
    with pytest.raises(Exception):  # noqa: B017, PT011 - jwcrypto's InvalidJWSSignature
        SDJWTVerifier("~".join([f"{head}.{forged}.{sig}", *rest]), lambda iss, header: key)


def test_reserved_claims_and_bad_holder_keys_are_refused(signer: Any) -> None:
    with pytest.raises(SdJwtIssueError, match="sets itself"):
        issue_sd_jwt_vc(_claims(disclosable={"status": "x"}), signer)
    with pytest.raises(SdJwtIssueError, match="private"):
        check_holder_jwk({**_holder(), "d": "AAAA"})
    with pytest.raises(SdJwtIssueError, match="P-256"):
        check_holder_jwk({"kty": "EC", "crv": "P-384", "x": "a", "y": "b"})
    with pytest.raises(SdJwtIssueError, match="length"):
        check_holder_jwk({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})
    assert set(check_holder_jwk({**_holder(), "kid": "k", "use": "sig"})) == {"kty", "crv", "x", "y"}


def test_each_issue_has_fresh_salts(signer: Any, tmp_path: Path) -> None:  # noqa: ARG001
    claims = _claims()
    a, b = issue_sd_jwt_vc(claims, signer), issue_sd_jwt_vc(claims, signer)
    assert set(a.payload["_sd"]).isdisjoint(b.payload["_sd"])
