"""Cross-region presentations (issue 15 §2 with issue 6's trust rules): region B's verifier and region A's
credentials. B agreed with A on JZZM only: an A agency's JZZM credential verifies (status fetched whole from
A's status list over HTTP, then revoked there), the same agency's key on a type B never agreed with A is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from certstore.models import Certificate
from certstore.service import IssueRequest
from keys import pki
from signing.sdjwt_issue import CredentialClaims, issue_sd_jwt_vc
from signing.trustlist import export_trust_list

from .conftest import DEMO_REQUESTS, PSB
from .test_regions import B_ISSUER, Clock, Recorder, region_a, region_b, second_database_url  # noqa: F401, F811 — fixtures
from .vp_holder import Holder


def _import_jzzm_only(a: Any, b: Any) -> None:
    doc = a.certificates.trust_store.local_document()
    doc = dataclasses.replace(doc, issuers=tuple(i for i in doc.issuers if i.uscc == PSB),
                              types=tuple(t for t in doc.types if t.code == "JZZM"))
    text = export_trust_list(doc, pki.root_signer(a.keyring))
    b.certificates.trust_store.import_(text, pki.region_root(a.keyring).public_bytes(Encoding.PEM), types=["JZZM"])


def _credential(a: Any, holder: Holder, type_code: str, status: tuple[str, int]) -> str:
    url = a.settings.public_url
    return issue_sd_jwt_vc(
        CredentialClaims(issuer=url, vct=f"{url}/vct/{type_code}", holder_jwk=holder.jwk, status_uri=status[0],
                         status_index=status[1], issued_at=int(time.time()),
                         disclosable={"holder_name": "张三丰", "address": "北京市朝阳区", "residence_since": "2019-03-01"}),
        pki.agency_signer(a.keyring, PSB),
    ).credential


def _present(b_app: Any, holder: Holder, credential: str, type_code: str, clock: Clock) -> tuple[int, dict[str, Any]]:
    verifier = b_app.extensions["certstore.vp"]
    created = verifier.create(agency_uscc=B_ISSUER, type_code=type_code, claims=["address"], response_mode="direct_post")
    http = b_app.test_client()
    jar = http.get(f"/vp/requests/{created.request_id}").get_data(as_text=True)
    import base64

    part = jar.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    now = int((dt.datetime.now(dt.UTC) + clock.offset).timestamp())
    text = holder.present(credential, ["address"], aud=claims["client_id"], nonce=claims["nonce"], iat=now)
    resp = http.post(f"/vp/responses/{created.request_id}",
                     data={"vp_token": json.dumps({"certificate": [text]}), "state": claims["state"]})
    return resp.status_code, verifier.result(created.request_id, created.view_key)


def test_a_foreign_credential_verifies_in_its_agreed_type_and_is_refused_in_another(
    region_a: tuple[Any, Recorder], region_b: tuple[Any, Clock]  # noqa: F811
) -> None:
    from certstore.web import create_app

    (a, recorder), (b, clock) = region_a, region_b
    _import_jzzm_only(a, b)
    certs = a.certificates
    view = certs.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
    with certs.sessions() as s:
        row = s.scalar(sa.select(Certificate).where(Certificate.identifier == view.identifier))
        status = (certs.status_lists.uri(row.status_list), row.status_index)
    b_app = create_app(services=b)
    holder = Holder()

    # the agreed type: verified by B, status from A's list (fetched whole: the request names only the list)
    code, result = _present(b_app, holder, _credential(a, holder, "JZZM", status), "JZZM", clock)
    assert code == 200, result
    assert result["status"] == "valid" and result["issuer"] == {"uscc": PSB, "name": "北京市公安局朝阳分局",
                                                                "region": "110000"}
    assert not any(view.identifier in r or f"{status[1]}" in r.split("?", 1)[0] for r in recorder.requests)

    # a type B never agreed with A, under the same trusted key: refused
    code, result = _present(b_app, holder, _credential(a, holder, "YYZZ", status), "YYZZ", clock)
    assert code == 400 and result["reason"] == "type_not_allowed"

    # A revokes (the operator's path, as `certstore revoke`); once B's cached list is older than its ttl, B says so
    a.certificates.lifecycle.change(view.identifier, "revoke", reason="测试", actor="test", agency_uscc=None)
    clock.offset = dt.timedelta(minutes=10)
    code, result = _present(b_app, holder, _credential(a, holder, "JZZM", status), "JZZM", clock)
    assert code == 200 and result["status"] == "revoked", result

