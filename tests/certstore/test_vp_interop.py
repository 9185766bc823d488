"""Interop (issue 15 "Must show"): an OpenID4VP wallet library no one here wrote presents to our verifier.

``tests/interop/vp/wallet.mjs``: ``@openid4vc/openid4vp`` 0.4 resolves our request by reference (the JAR
checked with its x5c leaf, client id prefix ``x509_hash``), ``@sd-jwt/sd-jwt-vc`` presents only the claims
the DCQL query names, with a key-binding JWT, and the answer is posted as ``direct_post`` or encrypted
(``direct_post.jwt``). A credential *built* by ``@sd-jwt/sd-jwt-vc`` for an issuer in the trust list is
accepted; one from a key in no trust list is refused.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from joserfc.jwk import ECKey

from certstore.models import Certificate
from certstore.service import IssueRequest
from keys import pki
from keys.backend import jwk_thumbprint
from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc

from .conftest import DEMO_REQUESTS, PSB, make_settings, populate
from .vp_holder import Holder

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parents[1] / "interop" / "vp"
ASKED = ["address", "residence_since"]


def _npm_install() -> None:
    if (HERE / "node_modules" / "@openid4vc" / "openid4vp" / "package.json").exists():
        return
    command = ["npm", "ci" if (HERE / "package-lock.json").exists() else "install", "--no-audit", "--no-fund", "--silent"]
    out = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=300)  # noqa: S603
    assert out.returncode == 0, out.stderr[-2000:]


def _node(mode: str, data: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(["node", "wallet.mjs", mode], cwd=HERE, input=json.dumps(data),  # noqa: S603, S607
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout))


@contextlib.contextmanager
def _serving(tmp_path: Path, database_url: str, jwks_source: Any) -> Iterator[tuple[str, Any]]:
    from werkzeug.serving import make_server

    from certstore.web import create_app
    from certstore.wiring import build_services

    server = make_server("127.0.0.1", 0, lambda e, s: app(e, s), threaded=True)
    public_url = f"http://127.0.0.1:{server.server_port}"
    svc = build_services(make_settings(tmp_path, database_url, public_url=public_url), jwks_source=jwks_source)
    populate(svc)
    app = create_app(services=svc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield public_url, svc
    finally:
        server.shutdown()
        svc.close()


@pytest.fixture
def live(tmp_path: Path, database_url: str, jwks_source: Any, mint: Any) -> Iterator[dict[str, Any]]:
    _npm_install()
    with _serving(tmp_path, database_url, jwks_source) as (url, svc):
        certs = svc.certificates
        req = DEMO_REQUESTS["JZZM"]
        view = certs.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate
        with certs.sessions() as s:
            row = s.scalar(sa.select(Certificate).where(Certificate.identifier == view.identifier))
            status = {"status_list": {"idx": row.status_index, "uri": certs.status_lists.uri(row.status_list)}}
        yield {"url": url, "svc": svc, "mint": mint, "status": status, "fields": req["body"]["fields"]}


def _create(live: dict[str, Any], mode: str) -> dict[str, Any]:
    resp = requests.post(f"{live['url']}/api/v1/vp/requests", timeout=10,
                         json={"type": "JZZM", "claims": ASKED, "response_mode": mode},
                         headers={"Authorization": f"Bearer {live['mint']('demo-psb')}"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _result(live: dict[str, Any], created: dict[str, Any]) -> dict[str, Any]:
    resp = requests.get(f"{live['url']}/vp/results/{created['request_id']}", timeout=10,
                        headers={"X-VP-View": created["view_key"]})
    return dict(resp.json())


def _holder_private(holder: Holder) -> dict[str, Any]:
    return {k: v for k, v in holder.key.as_dict(private=True).items() if k in ("kty", "crv", "x", "y", "d")}


@pytest.mark.parametrize("mode", ["direct_post", "direct_post.jwt"])
def test_an_openid4vp_wallet_library_presents_only_the_asked_claims(live: dict[str, Any], mode: str) -> None:
    holder = Holder()
    url = live["url"]
    st = live["status"]["status_list"]
    credential = issue_sd_jwt_vc(
        CredentialClaims(issuer=url, vct=f"{url}/vct/JZZM", holder_jwk=holder.jwk, status_uri=st["uri"],
                         status_index=st["idx"], issued_at=int(time.time()),
                         disclosable={"holder_name": "张三丰", "holder_code": "110105********002X", **live["fields"]}),
        pki.agency_signer(live["svc"].keyring, PSB),
    ).credential
    created = _create(live, mode)
    answer = _node("present", {"url": created["wallet_url"], "credential": credential,
                               "holder_jwk": _holder_private(holder)})
    assert answer["status"] == 200, answer
    assert answer["response_mode"] == mode and answer["client_id"] == created["client_id"]
    assert answer["version"] == 100  # the library reads our request as OpenID4VP 1.0 final
    assert sorted(answer["asked"]) == ASKED
    result = _result(live, created)
    assert result["outcome"] == "verified" and result["status"] == "valid", result
    assert sorted(result["claims"]) == ASKED


def _library_credential(live: dict[str, Any], issuer_key: Any, holder: Holder) -> str:
    url = live["url"]
    private = ECKey.import_key(issuer_key)
    jwk = {k: v for k, v in private.as_dict(private=True).items() if k in ("kty", "crv", "x", "y", "d")}
    payload = {"iss": url, "vct": f"{url}/vct/JZZM", "iat": int(time.time()), "cnf": {"jwk": holder.jwk},
               "status": live["status"], "address": live["fields"]["address"],
               "residence_since": live["fields"]["residence_since"], "holder_name": "张三丰"}
    got = _node("issue", {"issuer_jwk": jwk, "kid": jwk_thumbprint(issuer_key.public_key()), "payload": payload,
                          "disclosable": ["address", "residence_since", "holder_name"]})
    return str(got["credential"])


def test_a_credential_built_by_sd_jwt_vc_for_a_trusted_issuer_is_accepted(live: dict[str, Any]) -> None:
    holder = Holder()
    agency = pki.agency_signer(live["svc"].keyring, PSB)
    credential = _library_credential(live, agency._signer._key, holder)  # the test's own key store, software backend
    created = _create(live, "direct_post")
    answer = _node("present", {"url": created["wallet_url"], "credential": credential,
                               "holder_jwk": _holder_private(holder)})
    assert answer["status"] == 200, answer
    assert _result(live, created)["status"] == "valid"


def test_a_credential_from_an_issuer_in_no_trust_list_is_refused(live: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    holder = Holder()
    credential = _library_credential(live, ec.generate_private_key(ec.SECP256R1()), holder)
    created = _create(live, "direct_post")
    answer = _node("present", {"url": created["wallet_url"], "credential": credential,
                               "holder_jwk": _holder_private(holder)})
    assert answer["status"] == 400, answer
    assert _result(live, created)["reason"] == "unknown_issuer"
