"""certstore as an OpenID4VCI 1.0 issuer: metadata, offers, the pre-authorized code flow, the
authorization code flow with an idp token, key proofs, batch issuance, the issuer's log, status."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier

from certstore.models import AuditEvent, Certificate
from certstore.vci.log import IssuedCredentialRow
from certstore.wallet import StaticResolver, WalletService
from signing.statuslist import INVALID, SUSPENDED, VALID
from signing.token_status_list import credential_status, parse_status_claim

from .conftest import AMR, DEMO_REQUESTS, PERSON_ID, PSB

PUBLIC = "http://127.0.0.1:5100"
CFG = "JZZM_sd_jwt"
PRE = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issue(client: Any, mint: Any, code: str = "JZZM") -> str:
    req = DEMO_REQUESTS[code]
    body = copy.deepcopy(req["body"])
    client_id = {"JZZM": "demo-psb", "YYZZ": "demo-amr"}[code]
    resp = client.post("/api/v1/certificates", json=body, headers=_auth(mint(client_id)))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return str(resp.get_json()["identifier"])


def _offer(client: Any, mint: Any, identifier: str, client_id: str = "demo-psb") -> Any:
    return client.post(f"/api/v1/certificates/{identifier}/credential-offer", headers=_auth(mint(client_id)))


def _pre_token(client: Any, mint: Any, identifier: str) -> str:
    created = _offer(client, mint, identifier).get_json()
    offer_id = created["credential_offer_uri"].rsplit("/", 1)[1]
    offer = client.get(f"/vci/offers/{offer_id}").get_json()
    code = offer["grants"][PRE]["pre-authorized_code"]
    resp = client.post("/vci/token", data={"grant_type": PRE, "pre-authorized_code": code,
                                            "tx_code": created["tx_code"]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def _nonce(client: Any) -> str:
    return str(client.post("/vci/nonce").get_json()["c_nonce"])


def _proof(key: Any, nonce: str, *, aud: str = PUBLIC, iat: float | None = None, alg: str = "ES256",
           typ: str = "openid4vci-proof+jwt", jwk: dict[str, Any] | None = None) -> str:
    header = {"alg": alg, "typ": typ, "jwk": jwk if jwk is not None else key.as_dict(private=False)}
    claims = {"aud": aud, "iat": int(iat if iat is not None else time.time()), "nonce": nonce}
    return jwt.encode(header, claims, key, algorithms=[alg])


def _credential(client: Any, token: str, proofs: list[str], cfg: str = CFG) -> Any:
    return client.post("/vci/credential", json={"credential_configuration_id": cfg, "proofs": {"jwt": proofs}},
                       headers=_auth(token))


def _error(resp: Any, status: int, error: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"] == error, resp.get_data(as_text=True)


def _verify(services: Any, credential: str) -> dict[str, Any]:
    signer = services.keyring.agency_signer(PSB)
    key = JWK.from_json(json.dumps(signer.public_jwk()))
    return dict(SDJWTVerifier(credential, lambda iss, header: key).get_verified_payload())


# -- metadata ---------------------------------------------------------------------------------


def test_issuer_metadata_has_a_configuration_per_type_with_vct_display_and_claims(client: Any) -> None:
    meta = client.get("/.well-known/openid-credential-issuer").get_json()
    assert meta["credential_issuer"] == PUBLIC
    assert meta["authorization_servers"] == ["http://idp.test", PUBLIC]
    assert meta["nonce_endpoint"] == f"{PUBLIC}/vci/nonce" and meta["credential_endpoint"] == f"{PUBLIC}/vci/credential"
    configs = meta["credential_configurations_supported"]
    assert set(configs) == {"JZZM_sd_jwt", "YYZZ_sd_jwt", "BYZS_sd_jwt"}
    jz = configs[CFG]
    assert jz["format"] == "dc+sd-jwt" and jz["vct"] == f"{PUBLIC}/vct/JZZM" and jz["scope"] == "certs:read:JZZM"
    assert jz["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert {d["locale"] for d in jz["credential_metadata"]["display"]} == {"zh-CN", "en"}
    paths = [c["path"] for c in jz["credential_metadata"]["claims"]]
    assert ["identifier"] in paths and ["paper_serial"] in paths and ["address"] in paths
    as_meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert as_meta["token_endpoint"] == f"{PUBLIC}/vci/token" and as_meta["grant_types_supported"] == [PRE]
    vct = client.get("/vct/JZZM").get_json()
    assert vct["vct"] == f"{PUBLIC}/vct/JZZM" and vct["display"][0] == {"locale": "zh-CN", "name": "居住证明"}
    assert client.get("/vct/NOPE").status_code == 404


# -- pre-authorized code flow ---------------------------------------------------------------


def test_pre_authorized_flow_issues_a_batch_bound_to_each_key_and_logs_it(client: Any, mint: Any, services: Any) -> None:
    ident = _issue(client, mint)
    created = _offer(client, mint, ident)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["offer_link"].startswith("openid-credential-offer://?credential_offer_uri=http%3A%2F%2F")
    assert len(body["tx_code"]) == 6 and body["tx_code"].isdigit() and body["tx_code"] not in body["offer_link"]
    assert body["qr_svg"].startswith("<svg") and body["expires_in"] == 900
    token = _pre_token(client, mint, ident)
    keys = [ECKey.generate_key("P-256"), OKPKey.generate_key("Ed25519")]
    nonce = _nonce(client)
    resp = _credential(client, token, [_proof(keys[0], nonce), _proof(keys[1], nonce, alg="EdDSA")])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    creds = [c["credential"] for c in resp.get_json()["credentials"]]
    assert len(creds) == 2
    with services.sessions() as s:
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == ident))
        list_id, idx = row.status_list, row.status_index
    digests = []
    for cred, key in zip(creds, keys, strict=True):
        payload = _verify(services, cred)
        assert payload["identifier"] == ident and payload["paper_serial"] == "京朝居 2026 000123"
        assert payload["holder_name"] == "张三丰" and payload["holder_code"] == PERSON_ID
        assert payload["residence_since"] == "2019-03-01"
        assert payload["vct"] == f"{PUBLIC}/vct/JZZM" and payload["iss"] == PUBLIC
        assert payload["cnf"]["jwk"]["x"] == key.as_dict(private=False)["x"]
        assert payload["status"] == {"status_list": {"idx": idx, "uri": f"{PUBLIC}/status-lists/{list_id}"}}
        header = json.loads(__import__("base64").urlsafe_b64decode(cred.split(".")[0] + "=="))
        assert header["typ"] == "dc+sd-jwt" and header["kid"] == services.keyring.agency_signer(PSB).kid
        digests.append(set(json.loads(__import__("base64").urlsafe_b64decode(cred.split(".")[1] + "=="))["_sd"]))
    assert digests[0].isdisjoint(digests[1])  # two presentations cannot be linked by digests
    with services.sessions() as s:
        logged = s.scalars(sa.select(IssuedCredentialRow)).all()
        audit = s.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("certificate.vc_%"))).all()
    assert [(r.flow, r.configuration_id) for r in logged] == [("pre-authorized_code", CFG)] * 2
    assert len({r.holder_jkt for r in logged}) == 2
    assert {a.action for a in audit} == {"certificate.vc_offer", "certificate.vc_issue"}
    listed = client.get(f"/api/v1/certificates/{ident}/credentials", headers=_auth(mint())).get_json()["credentials"]
    assert sorted(c["holder_jkt"] for c in listed) == sorted(r.holder_jkt for r in logged)
    assert {c["flow"] for c in listed} == {"pre-authorized_code"}
    assert client.get(f"/api/v1/certificates/{ident}/credentials", headers=_auth(mint("demo-amr"))).status_code == 404
    assert "张三丰" not in json.dumps([a.detail for a in audit], ensure_ascii=False)


def test_a_pre_authorized_code_works_once(client: Any, mint: Any) -> None:
    ident = _issue(client, mint)
    created = _offer(client, mint, ident).get_json()
    offer = client.get("/vci/offers/" + created["credential_offer_uri"].rsplit("/", 1)[1]).get_json()
    form = {"grant_type": PRE, "pre-authorized_code": offer["grants"][PRE]["pre-authorized_code"],
            "tx_code": created["tx_code"]}
    assert client.post("/vci/token", data=form).status_code == 200
    _error(client.post("/vci/token", data=form), 400, "invalid_grant")


def test_a_wrong_tx_code_is_refused_and_three_withdraw_the_offer(client: Any, mint: Any) -> None:
    ident = _issue(client, mint)
    created = _offer(client, mint, ident).get_json()
    offer = client.get("/vci/offers/" + created["credential_offer_uri"].rsplit("/", 1)[1]).get_json()
    code = offer["grants"][PRE]["pre-authorized_code"]
    wrong = "000000" if created["tx_code"] != "000000" else "111111"
    for _ in range(3):
        _error(client.post("/vci/token", data={"grant_type": PRE, "pre-authorized_code": code, "tx_code": wrong}),
               400, "invalid_grant")
    right = client.post("/vci/token", data={"grant_type": PRE, "pre-authorized_code": code,
                                             "tx_code": created["tx_code"]})
    _error(right, 400, "invalid_grant")
    _error(client.post("/vci/token", data={"grant_type": PRE, "pre-authorized_code": "made-up", "tx_code": "1"}),
           400, "invalid_grant")
    _error(client.post("/vci/token", data={"grant_type": "authorization_code", "code": "x"}),
           400, "unsupported_grant_type")


def test_only_the_issuing_agency_may_offer_its_certificate(client: Any, mint: Any) -> None:
    ident = _issue(client, mint)
    assert _offer(client, mint, ident, client_id="demo-amr").status_code == 404
    citizen = client.post(f"/api/v1/certificates/{ident}/credential-offer",
                          headers=_auth(mint("wallet-app", scope="certs:read", sub="pairwise")))
    assert citizen.status_code == 403
    assert client.post(f"/api/v1/certificates/{ident}/credential-offer").status_code == 401


# -- key proofs -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong_nonce", "wrong_aud", "old_iat", "future_iat", "alg_hs256", "alg_none",
                                  "wrong_typ", "private_jwk", "alg_mismatch"])
def test_bad_key_proofs_are_refused(client: Any, mint: Any, case: str) -> None:
    token = _pre_token(client, mint, _issue(client, mint))
    key = ECKey.generate_key("P-256")
    nonce = _nonce(client)
    if case == "wrong_nonce":
        proof, error = _proof(key, nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")), "invalid_nonce"
    elif case == "wrong_aud":
        proof, error = _proof(key, nonce, aud="https://other-issuer.example"), "invalid_proof"
    elif case == "old_iat":
        proof, error = _proof(key, nonce, iat=time.time() - 3600), "invalid_proof"
    elif case == "future_iat":
        proof, error = _proof(key, nonce, iat=time.time() + 3600), "invalid_proof"
    elif case == "alg_hs256":
        secret = OctKey.generate_key(256)
        proof = jwt.encode({"alg": "HS256", "typ": "openid4vci-proof+jwt", "jwk": key.as_dict(private=False)},
                           {"aud": PUBLIC, "iat": int(time.time()), "nonce": nonce}, secret, algorithms=["HS256"])
        error = "invalid_proof"
    elif case == "alg_none":
        b64 = __import__("base64").urlsafe_b64encode
        head = b64(json.dumps({"alg": "none", "typ": "openid4vci-proof+jwt",
                               "jwk": key.as_dict(private=False)}).encode()).rstrip(b"=").decode()
        body = b64(json.dumps({"aud": PUBLIC, "iat": int(time.time()), "nonce": nonce}).encode()).rstrip(b"=").decode()
        proof, error = f"{head}.{body}.", "invalid_proof"
    elif case == "wrong_typ":
        proof, error = _proof(key, nonce, typ="JWT"), "invalid_proof"
    elif case == "private_jwk":
        proof, error = _proof(key, nonce, jwk=key.as_dict(private=True)), "invalid_proof"
    else:
        ed = OKPKey.generate_key("Ed25519")
        proof = jwt.encode({"alg": "EdDSA", "typ": "openid4vci-proof+jwt", "jwk": key.as_dict(private=False)},
                           {"aud": PUBLIC, "iat": int(time.time()), "nonce": nonce}, ed, algorithms=["EdDSA"])
        error = "invalid_proof"
    _error(_credential(client, token, [proof]), 400, error)


def test_a_nonce_works_for_one_request_and_a_batch_needs_distinct_keys(client: Any, mint: Any) -> None:
    token = _pre_token(client, mint, _issue(client, mint))
    key = ECKey.generate_key("P-256")
    nonce = _nonce(client)
    assert _credential(client, token, [_proof(key, nonce)]).status_code == 200
    _error(_credential(client, token, [_proof(key, nonce)]), 400, "invalid_nonce")
    fresh = _nonce(client)
    _error(_credential(client, token, [_proof(key, fresh), _proof(key, fresh)]), 400, "invalid_proof")
    many = [_proof(ECKey.generate_key("P-256"), fresh) for _ in range(11)]
    _error(_credential(client, token, many), 400, "invalid_credential_request")
    _error(_credential(client, token, [_proof(key, fresh)], cfg="YYZZ_sd_jwt"), 400,
           "unknown_credential_configuration")
    _error(_credential(client, "ywvci_made-up", [_proof(key, fresh)]), 401, "invalid_token")
    dpop = client.post("/vci/credential", json={"credential_configuration_id": CFG, "proofs": {"jwt": [_proof(key, fresh)]}},
                       headers={"Authorization": f"DPoP {token}"})
    _error(dpop, 401, "invalid_token")
    assert client.post("/vci/credential", json={}).status_code == 401


# -- authorization code flow (the idp's token) -------------------------------------------------


@pytest.fixture
def citizen_app(app: Any, services: Any) -> Any:
    import dataclasses

    services.settings = dataclasses.replace(services.settings, vci_wallet_clients=frozenset({"demo-wallet"}))
    app.extensions["certstore.wallet"] = WalletService(
        services.certificates, StaticResolver({"T-JZZM": PERSON_ID, "T-YYZZ": PERSON_ID, "T-NOBODY": "110101199003070011"}))
    return app


def test_the_idp_token_gets_the_citizens_own_certificate_of_the_scoped_type(citizen_app: Any, mint: Any,
                                                                            services: Any, monkeypatch: Any) -> None:
    client = citizen_app.test_client()
    ident = _issue(client, mint)
    resolver = citizen_app.extensions["certstore.wallet"].resolver
    token = mint("demo-wallet", scope="openid certs:read:JZZM", sub="pairwise-sub", sid="s1")
    resolver.table[token] = PERSON_ID
    key = ECKey.generate_key("P-256")
    resp = _credential(client, token, [_proof(key, _nonce(client))])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    payload = _verify(services, resp.get_json()["credentials"][0]["credential"])
    assert payload["identifier"] == ident
    with services.sessions() as s:
        row = s.scalars(sa.select(IssuedCredentialRow).order_by(IssuedCredentialRow.id.desc())).first()
    assert (row.flow, row.client_id) == ("authorization_code", "demo-wallet")
    # a type the scope does not cover; a citizen without such a certificate; an agency token
    _error(_credential(client, token, [_proof(key, _nonce(client))], cfg="YYZZ_sd_jwt"), 403, "insufficient_scope")
    nobody = mint("demo-wallet", scope="certs:read", sub="other")
    resolver.table[nobody] = "110101199003070011"
    _error(_credential(client, nobody, [_proof(key, _nonce(client))]), 400, "credential_request_denied")
    _error(_credential(client, mint("demo-psb"), [_proof(key, _nonce(client))]), 403, "insufficient_scope")
    # a portal the citizen let read their certificates is not a wallet: no credential bound to its key
    portal = mint("portal-b", scope="openid certs:read", sub="pairwise-portal")
    resolver.table[portal] = PERSON_ID
    _error(_credential(client, portal, [_proof(key, _nonce(client))]), 403, "access_denied")


# -- status -----------------------------------------------------------------------------------


def test_revoking_or_suspending_changes_the_credentials_status_and_nothing_else(client: Any, mint: Any,
                                                                               services: Any) -> None:
    ident = _issue(client, mint)
    token = _pre_token(client, mint, ident)
    cred = _credential(client, token, [_proof(ECKey.generate_key("P-256"), _nonce(client))]).get_json()
    credential = cred["credentials"][0]["credential"]
    ref = parse_status_claim(_verify(services, credential)["status"])
    keys = [services.keyring.agency_signer(PSB).public_key()]

    def status() -> int:
        listed = client.get(ref.uri.removeprefix(PUBLIC))
        assert listed.mimetype == "application/statuslist+jwt"
        return credential_status(listed.get_data(as_text=True), ref, keys, now=dt.datetime.now(dt.UTC),
                                 max_age=dt.timedelta(hours=1))

    assert status() == VALID
    early = _pre_token(client, mint, ident)  # redeemed while the certificate was valid
    change = f"/api/v1/certificates/{ident}/status"
    assert client.post(change, json={"action": "suspend", "reason": "test"}, headers=_auth(mint())).status_code == 200
    assert status() == SUSPENDED
    # a suspended certificate gets no new credential, and no new offer
    _error(_credential(client, early, [_proof(ECKey.generate_key("P-256"), _nonce(client))]),
           400, "credential_request_denied")
    assert _offer(client, mint, ident).status_code == 403
    assert client.post(change, json={"action": "revoke", "reason": "test"}, headers=_auth(mint())).status_code == 200
    assert status() == INVALID
    assert _verify(services, credential)["identifier"] == ident  # the credential itself is unchanged


def test_another_agencys_type_cannot_be_offered(client: Any, mint: Any) -> None:
    ident = _issue(client, mint, "YYZZ")
    assert _offer(client, mint, ident, client_id="demo-amr").status_code == 201
    assert _offer(client, mint, ident, client_id="demo-psb").status_code == 404
    assert AMR


def test_the_status_claim_is_checked_for_shape() -> None:
    from signing.statuslist import StatusListError
    from signing.token_status_list import status_claim, status_name

    assert parse_status_claim(status_claim("https://c.example/status-lists/1", 7)).idx == 7
    for bad in (None, {}, {"status_list": {"idx": -1, "uri": "https://c.example/s"}},
                {"status_list": {"idx": True, "uri": "https://c.example/s"}},
                {"status_list": {"idx": 1, "uri": "ftp://c.example/s"}},
                {"status_list": {"idx": 1, "uri": "https://c.example/s#frag"}}):
        with pytest.raises(StatusListError):
            parse_status_claim(bad)
    assert [status_name(v) for v in (VALID, INVALID, SUSPENDED, 3)] == ["valid", "invalid", "suspended", "status 0x03"]


def test_a_dpop_bound_pre_authorized_token_needs_a_proof_of_its_key(client: Any, mint: Any) -> None:
    from tests.keys.dpop_client import DPoPKey

    ident = _issue(client, mint)
    created = _offer(client, mint, ident).get_json()
    offer = client.get("/vci/offers/" + created["credential_offer_uri"].rsplit("/", 1)[1]).get_json()
    key = DPoPKey()
    form = {"grant_type": PRE, "pre-authorized_code": offer["grants"][PRE]["pre-authorized_code"],
            "tx_code": created["tx_code"]}
    bad = client.post("/vci/token", data=form, headers={"DPoP": key.proof("POST", f"{PUBLIC}/other")})
    _error(bad, 400, "invalid_dpop_proof")
    resp = client.post("/vci/token", data=form, headers={"DPoP": key.proof("POST", f"{PUBLIC}/vci/token")})
    assert (resp.status_code, resp.get_json()["token_type"]) == (200, "DPoP"), resp.get_data(as_text=True)
    token = resp.get_json()["access_token"]
    url = f"{PUBLIC}/vci/credential"
    body = lambda: {"credential_configuration_id": CFG,  # noqa: E731
                    "proofs": {"jwt": [_proof(ECKey.generate_key("P-256"), _nonce(client))]}}
    _error(client.post("/vci/credential", json=body(), headers=_auth(token)), 401, "invalid_token")
    other = DPoPKey().proof("POST", url, access_token=token)
    _error(client.post("/vci/credential", json=body(), headers={"Authorization": f"DPoP {token}", "DPoP": other}),
           401, "invalid_dpop_proof")
    good = key.proof("POST", url, access_token=token)
    ok = client.post("/vci/credential", json=body(), headers={"Authorization": f"DPoP {token}", "DPoP": good})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert client.get("/.well-known/oauth-authorization-server").get_json()["dpop_signing_alg_values_supported"]

