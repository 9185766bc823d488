"""Issuing and verifying through the service layer, on the per-test database."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import threading
from typing import Any

import pytest
import sqlalchemy as sa

import signing.pades
from certstore.errors import Conflict, Forbidden, InvalidInput, ServiceUnavailable
from certstore.models import AuditEvent, Certificate, IdempotencyRecord
from certstore.service import PII_PURPOSE, IssueRequest
from certstore.wiring import Services

from .conftest import AMR, DEMO_REQUESTS, PERSON_ID, PSB, UNI


def _req(code: str, **changes: Any) -> IssueRequest:
    body = copy.deepcopy(DEMO_REQUESTS[code]["body"])
    body.update(changes)
    return IssueRequest.from_json(body)


def _count(svc: Services, model: Any) -> int:
    with svc.sessions() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(model)))


@pytest.mark.parametrize("code", ["JZZM", "YYZZ", "BYZS"])
def test_issue_stores_record_and_pdf_and_both_verify(services: Services, code: str) -> None:
    issuer = DEMO_REQUESTS[code]["issuer"]
    view = services.certificates.issue(_req(code), agency_uscc=issuer).certificate
    assert view.identifier.startswith(f"1.2.156.3005.2.{code}.{issuer}.000001.1.")
    assert view.status == "01"
    pdf = services.certificates.pdf(view.identifier)
    assert pdf.startswith(b"%PDF-") and hashlib.sha256(pdf).hexdigest() == view.pdf_sha256
    qr = services.certificates.verify_qr(view.qr_text)
    assert qr.valid, qr.checks
    assert {c.name for c in qr.checks} >= {"signature", "issuer_trusted", "type_allowed", "validity", "status"}
    assert qr.certificate is not None and qr.certificate.identifier == view.identifier
    res = services.certificates.verify_pdf(pdf)
    assert res.valid, res.checks
    assert {c.name for c in res.checks} >= {"signature_intact", "chain_trusted", "record", "status"}


def test_serials_and_status_positions_are_unique_even_when_a_draw_collides(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certstore.issue_store as issue_store

    # Every draw of the combined PostgreSQL allocation lands on the same position:
    # from the second certificate on, the position is taken and drawn again.
    monkeypatch.setattr(issue_store.secrets, "randbits", lambda bits: 12345)
    views = [services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate for _ in range(3)]
    assert [v.serial for v in views] == ["000001", "000002", "000003"]
    with services.sessions() as s:
        rows = s.execute(sa.select(Certificate.status_list, Certificate.status_index)).all()
    assert len(set(rows)) == 3 and all(lst is not None and idx is not None for lst, idx in rows)
    for v in views:
        assert services.certificates.verify_qr(v.qr_text).valid


def test_holder_code_is_stored_encrypted_and_found_by_blind_index(services: Services) -> None:
    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    assert view.holder_code_masked == "110105********002X"
    with services.sessions() as s:
        row = s.scalar(sa.select(Certificate))
        assert PERSON_ID.encode() not in row.holder_code_enc
        assert PERSON_ID not in row.holder_code_index
        assert row.holder_code_index == services.keyring.pii().blind_index(PERSON_ID, purpose=PII_PURPOSE)
    assert services.certificates.holder_code(view.identifier, agency_uscc=PSB) == PERSON_ID
    found = services.certificates.list(holder_code=PERSON_ID.lower())
    assert [v.identifier for v in found] == [view.identifier]


def test_serials_count_up_per_issuer_and_type(services: Services) -> None:
    a = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    b = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    c = services.certificates.issue(_req("BYZS"), agency_uscc=UNI).certificate
    assert (a.serial, b.serial, c.serial) == ("000001", "000002", "000001")


def test_concurrent_issues_get_distinct_serials(services: Services) -> None:
    out: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            out.append(services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate.serial)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(out) == ["000001", "000002", "000003", "000004"]


def test_issuer_may_not_issue_a_type_it_is_not_allowed(services: Services) -> None:
    with pytest.raises(Forbidden) as e:
        services.certificates.issue(_req("BYZS"), agency_uscc=PSB)
    assert e.value.field == "type"
    assert _count(services, Certificate) == 0


def test_caller_may_only_issue_as_itself(services: Services) -> None:
    with pytest.raises(Forbidden) as e:
        services.certificates.issue(_req("JZZM", issuer=AMR), agency_uscc=PSB)
    assert e.value.field == "issuer"


def test_unregistered_agency_is_refused(services: Services) -> None:
    with pytest.raises(Forbidden):
        services.certificates.issue(_req("JZZM"), agency_uscc="91110108MA0000002G")


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"holder_code": PERSON_ID[:-1] + "1"}, "holder_code"),
        ({"holder_code": "91110105MA00000012"}, "holder_code"),
        ({"holder_name": "张" * 21}, "holder_name"),
        ({"fields": {"address": "北京"}}, "fields.residence_since"),
        ({"type": "NOPE"}, "type"),
        ({"paper_serial": "x" * 65}, "paper_serial"),
        ({"valid_until": "2030-01-01"}, "valid_until"),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(services: Services, changes: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        services.certificates.issue(_req("JZZM", **changes), agency_uscc=PSB)
    assert e.value.field == field
    assert _count(services, Certificate) == 0


def test_a_payload_too_large_for_qr_version_11_is_refused(services: Services) -> None:
    long_name = "北京一网通达数字政务科技服务有限责任公司朝阳区第一分公司第二营业部第三门店"
    with pytest.raises(InvalidInput) as e:
        services.certificates.issue(_req("YYZZ", holder_name=long_name), agency_uscc=AMR)
    assert e.value.extra["code"] == "payload_too_large"
    assert "version 11" in str(e.value)
    assert _count(services, Certificate) == 0


def test_a_failure_while_signing_stores_nothing(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **k: Any) -> bytes:
        raise signing.pades.SigningError("HSM went away")

    monkeypatch.setattr(signing.pades, "sign_pdf", broken)
    with pytest.raises(ServiceUnavailable):
        services.certificates.issue(IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "k1"}), agency_uscc=PSB)
    assert _count(services, Certificate) == 0
    assert _count(services, IdempotencyRecord) == 0
    with services.sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "certificate.issue")) == 0


@pytest.mark.parametrize("idempotency_key", [None, "k2"])
def test_a_failure_while_storing_stores_nothing(services: Services, idempotency_key: str | None) -> None:
    # The audit row is written with the certificate; make the database refuse it.
    with services.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE cert_audit ADD CONSTRAINT audit_refused CHECK (action <> 'certificate.issue') NOT VALID"))
        else:
            conn.execute(sa.text(
                "CREATE TRIGGER audit_refused BEFORE INSERT ON cert_audit WHEN NEW.action = 'certificate.issue' "
                "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
            ))
    request = IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": idempotency_key})
    with pytest.raises(sa.exc.DBAPIError):
        services.certificates.issue(request, agency_uscc=PSB)
    assert _count(services, Certificate) == 0
    assert _count(services, IdempotencyRecord) == 0


def test_idempotency_key_same_body_same_certificate(services: Services) -> None:
    first = services.certificates.issue(IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "abc"}), agency_uscc=PSB)
    again = services.certificates.issue(IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "abc"}), agency_uscc=PSB)
    assert not first.replayed and again.replayed
    assert again.certificate.identifier == first.certificate.identifier
    assert _count(services, Certificate) == 1


def test_idempotency_key_different_body_conflicts(services: Services) -> None:
    services.certificates.issue(IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "abc"}), agency_uscc=PSB)
    other = IssueRequest(**{**_req("JZZM", holder_name="王五").__dict__, "idempotency_key": "abc"})
    with pytest.raises(Conflict):
        services.certificates.issue(other, agency_uscc=PSB)
    assert _count(services, Certificate) == 1


def test_idempotency_keys_are_per_issuer(services: Services) -> None:
    a = services.certificates.issue(IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "k"}), agency_uscc=PSB)
    b = services.certificates.issue(IssueRequest(**{**_req("BYZS").__dict__, "idempotency_key": "k"}), agency_uscc=UNI)
    assert a.certificate.identifier != b.certificate.identifier


def test_tampered_qr_and_foreign_signer_are_caught(services: Services, tmp_path: Any) -> None:
    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    text = view.qr_text
    i = len(text) // 2
    tampered = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    res = services.certificates.verify_qr(tampered)
    assert not res.valid
    assert any(not c.ok for c in res.checks if c.name in ("format", "signature"))

    # Signed by a key of another region: unknown kid.
    import signing.qr
    from keys import pki
    from keys.config import KeySettings
    from keys.keyring import open_keyring

    other = open_keyring(KeySettings(home=tmp_path / "x", kek_file=tmp_path / "x" / "kek"))
    pki.init_region(other, region="310000", name="Other")
    signer = pki.issue_signer(other, uscc=PSB, name="impostor")
    claims = signing.qr.decode_qr_payload(text).claims
    forged = signing.qr.encode_qr_payload(claims, signer)
    res = services.certificates.verify_qr(forged)
    assert not res.valid
    sig = next(c for c in res.checks if c.name == "signature")
    assert not sig.ok and "not in the trust list" in sig.reason


def test_qr_of_another_format_is_named(services: Services) -> None:
    res = services.certificates.verify_qr("HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH")
    assert not res.valid
    assert res.checks[0].name == "format" and not res.checks[0].ok


def test_pdf_that_is_not_a_pdf(services: Services) -> None:
    with pytest.raises(InvalidInput) as e:
        services.certificates.verify_pdf(b"hello, I am a text file")
    assert e.value.field == "file"


def test_a_pdf_changed_after_issue_does_not_match_the_record(services: Services) -> None:
    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    pdf = services.certificates.pdf(view.identifier)
    res = services.certificates.verify_pdf(pdf + b"\n% appended\n")
    assert not res.valid
    assert not next(c for c in res.checks if c.name == "record").ok


def test_status_other_than_valid_fails_verification(services: Services) -> None:
    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    with services.sessions() as s, s.begin():
        s.execute(sa.update(Certificate).values(status="03"))
    res = services.certificates.verify_qr(view.qr_text)
    assert not res.valid
    status = next(c for c in res.checks if c.name == "status")
    assert "revoked" in status.reason


def test_expired_certificate_fails_validity(services: Services) -> None:
    view = services.certificates.issue(_req("JZZM", valid_from="2020-01-01"), agency_uscc=PSB).certificate
    assert view.valid_until == dt.date(2020, 6, 30)
    res = services.certificates.verify_qr(view.qr_text)
    assert not res.valid
    assert not next(c for c in res.checks if c.name == "validity").ok


def test_concurrent_requests_with_one_idempotency_key_make_one_certificate(services: Services) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            req = IssueRequest(**{**_req("JZZM").__dict__, "idempotency_key": "race"})
            results.append(services.certificates.issue(req, agency_uscc=PSB))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r.certificate.identifier for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert _count(services, Certificate) == 1


def test_an_incremental_update_changing_the_holder_name_is_caught(services: Services) -> None:
    from tests.signing.test_pades import _overwrite_holder_name

    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    pdf = services.certificates.pdf(view.identifier)
    res = services.certificates.verify_pdf(_overwrite_holder_name(pdf, "Li Si"))
    assert not res.valid
    failed = {c.name for c in res.checks if not c.ok}
    assert failed == {"no_changes_after_signing", "record"}


def test_verify_qr_never_raises_on_any_text(services: Services) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.text(max_size=300), st.builds(lambda t: "YW1:" + t, st.text(alphabet, max_size=300))))
    def check(text: str) -> None:
        res = services.certificates.verify_qr(text)
        assert not res.valid
        assert res.checks and not all(c.ok for c in res.checks)

    check()


def test_dates_are_china_standard_time(services: Services) -> None:
    # 20:00 UTC on 27 November is already 28 November in Beijing.
    services.certificates.clock = lambda: dt.datetime(2026, 11, 27, 20, 0, tzinfo=dt.UTC)
    view = services.certificates.issue(_req("JZZM"), agency_uscc=PSB).certificate
    assert view.valid_from == dt.date(2026, 11, 28)
    assert view.valid_until == dt.date(2027, 5, 27)
    assert "110105194912310" not in repr(services.certificates.issuance.prepare(_req("JZZM"), PSB))
