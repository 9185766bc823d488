"""Status lists on the certstore side: positions, the endpoint, status changes through API and CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from certstore.service import IssueRequest
from keys import pki
from signing.qr import decode_qr_payload
from signing.statuslist import INVALID, SUSPENDED, VALID, verify_status_list_token

from .conftest import AMR, DEMO_REQUESTS, PSB, issue_args

HOUR = dt.timedelta(hours=1)


def _issue(services: Any, code: str = "JZZM") -> Any:
    req = DEMO_REQUESTS[code]
    return services.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate


def _list_token(client: Any, qr_text: str) -> tuple[Any, Any]:
    claims = decode_qr_payload(qr_text).claims
    resp = client.get(f"/status-lists/{claims.status_list}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return claims, resp


def test_qr_carries_a_random_unique_position(services: Any) -> None:
    svc = services.certificates
    slots = {svc.status_lists.allocate(PSB) for _ in range(40)}
    assert len(slots) == 40  # never reused
    assert len({s.list_id for s in slots}) == 1
    indexes = [s.index for s in slots]
    assert max(indexes) > 131_072 // 2  # spread over the whole list, not sequential
    assert sorted(indexes) != list(range(min(indexes), min(indexes) + 40))
    cert = _issue(services)
    claims = decode_qr_payload(cert.qr_text).claims
    assert claims.status_list == "1" and 0 <= claims.status_index < 131_072
    assert (claims.status_list, claims.status_index) not in {(s.list_id, s.index) for s in slots}


def test_a_full_list_opens_a_new_one(services: Any) -> None:
    svc = services.certificates
    svc.status_lists.settings = svc.settings.with_(status_list_size=8)
    got = [svc.status_lists.allocate(AMR) for _ in range(10)]
    by_list: dict[str, set[int]] = {}
    for s in got:
        by_list.setdefault(s.list_id, set()).add(s.index)
    assert all(len(v) <= 4 for v in by_list.values())  # at most half of 8
    assert len(by_list) == 3


def test_endpoint_serves_signed_list_with_cache_headers(services: Any, client: Any) -> None:
    cert = _issue(services)
    claims, resp = _list_token(client, cert.qr_text)
    assert resp.mimetype == "application/statuslist+jwt"
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    etag = resp.headers["ETag"]
    assert client.get(f"/status-lists/{claims.status_list}", headers={"If-None-Match": etag}).status_code == 304
    signer = pki.agency_signer(services.keyring, PSB)
    uri = f"{services.settings.public_url}/status-lists/{claims.status_list}"
    tok = verify_status_list_token(
        resp.get_data(as_text=True), [signer.public_key()], uri=uri, now=dt.datetime.now(dt.UTC), max_age=HOUR
    )
    assert tok.status_list.size >= 131_072 and tok.status(claims.status_index) == VALID
    assert client.get("/status-lists/999").status_code == 404
    assert client.get("/status-lists/abc").status_code == 404


def test_revoke_through_api_changes_the_list(services: Any, client: Any, mint: Any) -> None:
    cert = _issue(services)
    claims, first = _list_token(client, cert.qr_text)
    url = f"/api/v1/certificates/{cert.identifier}/status"
    # another agency may not touch it
    other = client.post(url, json={"action": "revoke", "reason": "x"}, headers={"Authorization": f"Bearer {mint('demo-amr')}"})
    assert other.status_code == 403 and other.mimetype == "application/problem+json"
    assert services.certificates.get(cert.identifier).status == "01"
    auth = {"Authorization": f"Bearer {mint('demo-psb')}"}
    resp = client.post(url, json={"action": "suspend", "reason": "under investigation"}, headers=auth)
    assert resp.status_code == 200 and resp.get_json()["status"] == "02"
    _, second = _list_token(client, cert.qr_text)
    assert second.headers["ETag"] != first.headers["ETag"]
    signer = pki.agency_signer(services.keyring, PSB)
    uri = f"{services.settings.public_url}/status-lists/{claims.status_list}"
    now = dt.datetime.now(dt.UTC)

    def status() -> int:
        text = client.get(f"/status-lists/{claims.status_list}").get_data(as_text=True)
        return verify_status_list_token(text, [signer.public_key()], uri=uri, now=now, max_age=HOUR).status(claims.status_index)

    assert status() == SUSPENDED
    assert client.post(url, json={"action": "revoke", "reason": "issued in error"}, headers=auth).status_code == 200
    assert status() == INVALID
    bad = client.post(url, json={"action": "reinstate", "reason": "oops"}, headers=auth)
    assert bad.status_code == 409
    assert "a revoked certificate cannot be reinstated" in bad.get_json()["detail"]
    assert client.post(url, json={"action": "revoke"}, headers=auth).status_code == 422
    assert client.post(url, json={"action": "revoke", "reason": "x"}).status_code == 401
    # verification now fails on status, with the reason
    result = services.certificates.verify_qr(cert.qr_text)
    assert not result.valid
    assert any(c.name == "status" and not c.ok and "revoked" in c.reason for c in result.checks)
    actions = [e.action for e in services.certificates.lifecycle.history(cert.identifier)]
    assert actions == ["certificate.issue", "certificate.suspend", "certificate.revoke"]


def test_expiry_on_read_and_expire_due(services: Any) -> None:
    cert = _issue(services)
    svc = services.certificates
    later = dt.datetime.combine(cert.valid_until or dt.date(2100, 1, 1), dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=2)
    svc.clock = svc.lifecycle.clock = lambda: later
    assert svc.get(cert.identifier).status == "05"  # applied on read, before the sweep
    import sqlalchemy as sa

    from certstore.models import Certificate

    with svc.sessions() as s:  # ... but not yet written: the sweep records it, audited
        assert s.scalar(sa.select(Certificate.status).where(Certificate.identifier == cert.identifier)) == "01"
    events = svc.lifecycle.expire_due()
    assert [e.identifier for e in events] == [cert.identifier]
    assert svc.get(cert.identifier).status == "05"
    assert svc.lifecycle.expire_due() == []


def test_cli_revoke_suspend_reinstate(demo: Any, tmp_path: Path) -> None:
    code, out, err = demo(*issue_args("JZZM", tmp_path / "c.pdf"))
    assert code == 0, err
    ident = next(w for w in out.split() if w.startswith("1.2.156.3005.2."))
    code, out, err = demo("suspend", ident, "--reason", "checking")
    assert code == 0 and "-> 02 suspended" in out, err
    code, out, err = demo("reinstate", ident, "--reason", "checked")
    assert code == 0 and "-> 01 valid" in out
    code, out, err = demo("revoke", ident, "--reason", "wrong address")
    assert code == 0 and "03 revoked" in out
    code, out, err = demo("reinstate", ident, "--reason", "please")
    assert code == 2 and err.strip() == "certstore: a revoked certificate cannot be reinstated (status 03 撤销 is final)"
    code, out, err = demo("revoke", ident)
    assert code == 2 and "--reason" in err
    code, out, err = demo("status", "show", ident)
    assert "03 撤销 / revoked; next: nothing (final)" in out
    code, out, err = demo("status", "history", ident)
    assert "certificate.revoke" in out and "wrong address" in out
    code, out, err = demo("revoke", "1.2.156.3005.2.JZZM.111101050000000017.999999.1.0", "--reason", "x")
    assert code == 2 and "no certificate" in err
    code, out, err = demo("expire-due")
    assert code == 0 and "0 certificate(s) expired" in out


@pytest.mark.parametrize("status", ["01"])
def test_verify_local_certificate_still_valid(services: Any, status: str) -> None:
    cert = _issue(services, "YYZZ")
    result = services.certificates.verify_qr(cert.qr_text)
    assert result.valid, [c for c in result.checks if not c.ok]
    assert len(cert.qr_text) <= 366
