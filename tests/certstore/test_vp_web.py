"""The OpenID4VP verifier over HTTP (issue 15 §2): request object, direct_post / direct_post.jwt, status,
read log, and the attacks of the issue's "Must show" (replay, old nonce, another verifier, revoked, suspended)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc import jwe, jws
from joserfc.jwk import ECKey

from certstore.models import AccessLog, Certificate
from certstore.service import IssueRequest
from keys import pki
from keys.certs import load_pem_certificate
from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc

from .conftest import DEMO_REQUESTS, PSB
from .vp_holder import Holder

ASKED = ["address", "residence_since"]


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.fixture
def world(services: Any, client: Any, mint: Any) -> dict[str, Any]:
    svc = services.certificates
    req = DEMO_REQUESTS["JZZM"]
    view = svc.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate
    with svc.sessions() as s:
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == view.identifier))
        list_id, idx = row.status_list, row.status_index
    holder = Holder()
    public = services.settings.public_url
    fields = req["body"]["fields"]
    cred = issue_sd_jwt_vc(
        CredentialClaims(
            issuer=public, vct=f"{public}/vct/JZZM", holder_jwk=holder.jwk, status_uri=svc.status_lists.uri(list_id),
            status_index=idx, issued_at=int(time.time()),
            disclosable={"identifier": view.identifier, "holder_name": req["body"]["holder_name"],
                         "holder_code": "110105********002X", **fields},
        ),
        pki.agency_signer(services.keyring, PSB),
    ).credential
    return {"holder": holder, "credential": cred, "identifier": view.identifier, "mint": mint}


def _request(client: Any, mint: Any, *, agency: str = "demo-psb", mode: str = "direct_post",
             claims: list[str] = ASKED) -> dict[str, Any]:
    resp = client.post("/api/v1/vp/requests", json={"type": "JZZM", "claims": claims, "response_mode": mode,
                                                     "purpose": "租房核验"},
                       headers={"Authorization": f"Bearer {mint(agency)}"})
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    got = client.get(created["request_uri"].split("127.0.0.1:5100", 1)[-1])
    assert got.status_code == 200 and got.mimetype == "application/oauth-authz-req+jwt"
    jar = got.get_data(as_text=True)
    header = _b64json(jar.split(".")[0])
    assert header["typ"] == "oauth-authz-req+jwt"
    leaf = load_pem_certificate(b"-----BEGIN CERTIFICATE-----\n" + header["x5c"][0].encode() + b"\n-----END CERTIFICATE-----\n")
    registry = jws.JWSRegistry(algorithms=["ES256"])
    registry.max_header_length = 8192  # x5c: the leaf and the issuing CA
    obj = jws.deserialize_compact(jar, ECKey.import_key(leaf.public_key()), algorithms=["ES256"], registry=registry)
    created["jar"] = json.loads(obj.payload)
    return created


def _post(client: Any, created: dict[str, Any], presentation: str, state: str | None = None) -> Any:
    jar = created["jar"]
    path = jar["response_uri"].split("127.0.0.1:5100", 1)[-1]
    return client.post(path, data={"vp_token": json.dumps({"certificate": [presentation]}), "state": state or jar["state"]})


def _result(client: Any, created: dict[str, Any]) -> dict[str, Any]:
    resp = client.get(f"/vp/results/{created['request_id']}", headers={"X-VP-View": created["view_key"]})
    assert resp.status_code == 200
    return resp.get_json()


def _present(world: dict[str, Any], created: dict[str, Any], names: list[str] = ASKED, **kw: Any) -> str:
    jar = created["jar"]
    return world["holder"].present(world["credential"], names, aud=kw.pop("aud", jar["client_id"]),
                                   nonce=kw.pop("nonce", jar["nonce"]), **kw)


def test_request_object_asks_for_one_type_and_only_the_named_claims(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    jar = created["jar"]
    assert jar["client_id"].startswith("x509_hash:") and jar["client_id"] == created["client_id"]
    assert jar["response_type"] == "vp_token" and jar["response_mode"] == "direct_post"
    query = jar["dcql_query"]["credentials"][0]
    assert query["format"] == "dc+sd-jwt" and query["meta"]["vct_values"] == ["http://127.0.0.1:5100/vct/JZZM"]
    assert sorted(c["path"][0] for c in query["claims"]) == ASKED
    assert created["wallet_url"].startswith("openid4vp://?client_id=x509_hash%3A")


def test_a_presentation_shows_only_what_was_asked_and_lands_in_the_read_log(
    client: Any, services: Any, world: dict[str, Any]
) -> None:
    created = _request(client, world["mint"])
    resp = _post(client, created, _present(world, created))
    assert resp.status_code == 200, resp.get_json()
    result = _result(client, created)
    assert result["outcome"] == "verified" and result["status"] == "valid"
    assert set(result["claims"]) == set(ASKED) and result["issuer"]["uscc"] == PSB
    assert "holder_name" not in json.dumps(result, ensure_ascii=False)
    with services.certificates.sessions() as s:
        log = s.scalars(sa.select(AccessLog).where(AccessLog.via == "presentation")).all()
    assert [(r.purpose, r.identifiers) for r in log] == [("租房核验", [world["identifier"]])]


def test_an_encrypted_answer_direct_post_jwt(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"], mode="direct_post.jwt")
    jar = created["jar"]
    key = ECKey.import_key(jar["client_metadata"]["jwks"]["keys"][0])
    payload = json.dumps({"vp_token": {"certificate": [_present(world, created)]}, "state": jar["state"]})
    token = jwe.encrypt_compact({"alg": "ECDH-ES", "enc": "A128GCM", "kid": key.kid}, payload, key)
    path = jar["response_uri"].split("127.0.0.1:5100", 1)[-1]
    assert client.post(path, data={"response": token}).status_code == 200
    assert _result(client, created)["status"] == "valid"


def test_the_plain_form_is_refused_when_encryption_was_asked(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"], mode="direct_post.jwt")
    assert _post(client, created, _present(world, created)).status_code == 400
    # noise does not burn the request: the right answer still counts
    assert _result(client, created)["outcome"] == "pending"
    assert _post(client, created, _present(world, created), state="not-the-state").status_code == 400
    assert _result(client, created)["outcome"] == "pending"


def test_a_replayed_presentation_is_refused(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    good = _present(world, created)
    assert _post(client, created, good).status_code == 200
    again = _post(client, created, good)
    assert again.status_code == 400 and "already answered" in again.get_json()["error_description"]
    # the same presentation to a new request of the same verifier: its nonce is old
    fresh = _request(client, world["mint"])
    assert _post(client, fresh, good).status_code == 400
    assert _result(client, fresh)["reason"] == "nonce"


def test_a_presentation_meant_for_another_verifier_is_refused(client: Any, world: dict[str, Any]) -> None:
    theirs = _request(client, world["mint"], agency="demo-amr")
    ours = _request(client, world["mint"])
    assert theirs["client_id"] != ours["client_id"]
    # made for the other agency's request (its client id), posted to ours with our nonce
    stolen = _present(world, ours, aud=theirs["client_id"])
    assert _post(client, ours, stolen).status_code == 400
    assert _result(client, ours)["reason"] == "audience"


def test_disclosing_more_than_asked_is_refused(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    assert _post(client, created, _present(world, created, [*ASKED, "holder_code"])).status_code == 400
    assert _result(client, created)["reason"] == "over_disclosed"


@pytest.mark.parametrize(("action", "status"), [("revoke", "revoked"), ("suspend", "suspended")])
def test_a_revoked_or_suspended_certificate_shows_so(client: Any, world: dict[str, Any], action: str, status: str) -> None:
    auth = {"Authorization": f"Bearer {world['mint']('demo-psb')}"}
    changed = client.post(f"/api/v1/certificates/{world['identifier']}/status", json={"action": action, "reason": "测试"},
                          headers=auth)
    assert changed.status_code == 200, changed.get_json()
    created = _request(client, world["mint"])
    assert _post(client, created, _present(world, created)).status_code == 200
    assert _result(client, created)["status"] == status


def test_the_result_is_only_for_the_page_that_made_the_request(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    assert client.get(f"/vp/results/{created['request_id']}", headers={"X-VP-View": "guess"}).status_code == 404
    assert _result(client, created) == {"outcome": "pending", "fetched": True}


def test_an_answer_with_another_state_is_refused_and_burns_nothing(client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    good = _present(world, created)
    wrong = _post(client, created, good, state="someone-elses-state")
    assert wrong.status_code == 400 and "state" in wrong.get_json()["error_description"]
    assert _result(client, created)["outcome"] == "pending"
    assert _post(client, created, good).status_code == 200
    assert _result(client, created)["status"] == "valid"


def test_nothing_else_of_the_credential_is_kept(app: Any, client: Any, world: dict[str, Any]) -> None:
    created = _request(client, world["mint"])
    assert _post(client, created, _present(world, created, [*ASKED])).status_code == 200
    store = app.extensions["certstore.vp"].store
    kept = " ".join(v.decode() for v in (store.client.get(k) for k in store.client.keys("*vp:*")) if v)
    assert DEMO_REQUESTS["JZZM"]["body"]["fields"]["address"] in kept  # the result the counter reads
    for secret in (DEMO_REQUESTS["JZZM"]["body"]["holder_name"], world["identifier"], world["credential"][:40], "~"):
        assert secret not in kept
