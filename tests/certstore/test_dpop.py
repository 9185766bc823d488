"""certstore as a DPoP resource server (RFC 9449 §7): bound tokens need a proof of their key."""

from __future__ import annotations

from typing import Any

from tests.keys.dpop_client import DPoPKey

CS = "http://127.0.0.1:5100"  # CertstoreSettings.public_url: what htu is computed from
LIST = "/api/v1/certificates"


def call(client: Any, token: str, *, scheme: str = "DPoP", proof: str | None = None, key: DPoPKey | None = None,
         path: str = LIST, host: str | None = None) -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is None and key is not None:
        proof = key.proof("GET", CS + path, access_token=token)
    if proof is not None:
        headers["DPoP"] = proof
    if host:
        headers["Host"] = host
    return client.get(path, headers=headers)


def challenge(resp: Any) -> str:
    return resp.headers.get("WWW-Authenticate", "")


def test_a_bound_token_with_its_proof_is_served(client: Any, mint: Any) -> None:
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read", cnf={"jkt": key.jkt})
    resp = call(client, token, key=key)
    assert resp.status_code == 200, resp.data


def test_bearer_tokens_work_as_before(client: Any, mint: Any) -> None:
    token = mint(scope="certs:issue certs:read")
    assert call(client, token, scheme="Bearer").status_code == 200
    missing = client.get(LIST)
    assert missing.status_code == 401 and challenge(missing).startswith("Bearer ")


def test_a_bound_token_as_bearer_is_refused(client: Any, mint: Any) -> None:
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read", cnf={"jkt": key.jkt})
    resp = call(client, token, scheme="Bearer", key=key)
    assert resp.status_code == 401
    assert challenge(resp).startswith('DPoP algs="ES256 EdDSA PS256"') and 'error="invalid_token"' in challenge(resp)


def test_a_proof_of_another_key_is_refused(client: Any, mint: Any) -> None:
    token = mint(scope="certs:issue certs:read", cnf={"jkt": DPoPKey().jkt})
    resp = call(client, token, key=DPoPKey())
    assert resp.status_code == 401 and 'error="invalid_dpop_proof"' in challenge(resp)
    assert resp.get_json()["code"] == "invalid_dpop_proof"


def test_a_replayed_proof_wrong_url_method_ath_and_no_proof_are_refused(client: Any, mint: Any) -> None:
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read", cnf={"jkt": key.jkt})
    proof = key.proof("GET", CS + LIST, access_token=token)
    assert call(client, token, proof=proof).status_code == 200
    for bad in (proof,  # replayed
                key.proof("GET", CS + "/api/v1/verify", access_token=token),
                key.proof("POST", CS + LIST, access_token=token),
                key.proof("GET", CS + LIST),  # no ath
                key.proof("GET", CS + LIST, access_token=token[::-1])):
        resp = call(client, token, proof=bad)
        assert resp.status_code == 401 and 'error="invalid_dpop_proof"' in challenge(resp), bad[:16]
    assert 'error="invalid_dpop_proof"' in challenge(call(client, token))


def test_htu_comes_from_the_public_url_not_the_host_header(client: Any, mint: Any) -> None:
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read", cnf={"jkt": key.jkt})
    forged = key.proof("GET", "http://evil.example" + LIST, access_token=token)
    resp = call(client, token, proof=forged, host="evil.example")
    assert resp.status_code == 401 and 'error="invalid_dpop_proof"' in challenge(resp)


def test_an_unbound_token_with_the_dpop_scheme_is_refused(client: Any, mint: Any) -> None:
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read")
    resp = call(client, token, key=key)
    assert resp.status_code == 401 and 'error="invalid_token"' in challenge(resp)


def test_nonces_when_required(app: Any, client: Any, mint: Any) -> None:
    from certstore.binding import ResourceDPoP

    svc = app.extensions["certstore"]
    dpop = ResourceDPoP.from_settings(svc.settings, svc.keyring)
    dpop.require_nonce = True
    app.extensions["certstore.dpop"] = dpop
    key = DPoPKey()
    token = mint(scope="certs:issue certs:read", cnf={"jkt": key.jkt})
    first = call(client, token, key=key)
    assert first.status_code == 401 and 'error="use_dpop_nonce"' in challenge(first)
    nonce = first.headers["DPoP-Nonce"]
    ok = call(client, token, proof=key.proof("GET", CS + LIST, access_token=token, nonce=nonce))
    assert ok.status_code == 200
