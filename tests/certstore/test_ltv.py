"""Issue 15 §3: `certstore ltv status|renew`, the archive-timestamp renewal of stored PDFs.

A certificate issued while the TSA certificate had 30 days left is due; after
`certstore tsa issue` (a new TSA certificate) `ltv renew --due-only` adds a
document timestamp by the new one: the stored PDF is B-LTA-valid, and once the
first TSA certificate has expired its newer timestamp still validates.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_timestamp

import signing.pades
from certstore.models import AuditEvent, Certificate
from certstore.settings import CertstoreSettings
from certstore.wiring import build_services
from keys import pki
from keys.keyring import open_keyring
from signing.pades.context import make_validation_context

from .conftest import Cli, issue_args

pytestmark = pytest.mark.slow


@pytest.fixture
def lta_cli(cli: Cli, local_tsa: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, Any]:
    code, _, err = cli("init", "--demo")
    assert code == 0, err
    keyring = open_keyring(CertstoreSettings.from_env(os.environ).common.keys)
    monkeypatch.setenv("YIWANG_CERTSTORE_PADES_LEVEL", "B-LTA")
    monkeypatch.setenv("YIWANG_CERTSTORE_TSA_URL", local_tsa.url_for(keyring))
    return cli, keyring


def _stored_pdf(identifier: str) -> bytes:
    svc = build_services(CertstoreSettings.from_env(os.environ))
    try:
        return svc.certificates.pdf(identifier)
    finally:
        svc.close()


def test_a_pdf_whose_tsa_certificate_nears_expiry_is_listed_renewed_and_validates_later(
    lta_cli: tuple[Cli, Any], tmp_path: Path
) -> None:
    cli, keyring = lta_cli
    short = pki.issue_tsa(keyring, validity=dt.timedelta(days=30))
    code, out, err = cli(*issue_args("JZZM", tmp_path / "a.pdf"))
    assert code == 0, err
    first = (tmp_path / "a.pdf").read_bytes()
    identifier = _identifier(first)
    assert signing.pades.last_timestamp(first).tsa_certificate == short.certificate  # type: ignore[union-attr]

    code, out, err = cli("ltv", "status", "--due-only")
    assert code == 0, err
    assert identifier in out and out.startswith("DUE") and "B-LTA" in out
    code, out, _ = cli("ltv", "status", "--due-only", "--margin-days", "10")
    assert identifier not in out  # 30 days left, a 10-day margin: not yet

    # A new TSA certificate; the running TSA picks it up without a restart.
    code, out, err = cli("tsa", "issue")
    assert code == 0, err
    code, out, err = cli("ltv", "renew", "--due-only")
    assert code == 0, err
    assert f"renewed {identifier}" in out

    renewed = _stored_pdf(identifier)
    assert renewed.startswith(first)  # an incremental update: every earlier byte is kept
    last = signing.pades.last_timestamp(renewed)
    assert last is not None and last.document_timestamps == 2
    assert last.tsa_certificate == pki.tsa_signer(keyring).certificate != short.certificate
    code, out, _ = cli("ltv", "status", "--due-only")
    assert identifier not in out  # renewed: the new TSA certificate lasts years

    # Today the renewed PDF is PAdES B-LTA-valid for pyHanko's ETSI validation.
    root = pki.region_root(keyring)
    ok = signing.pades.validate_long_term(renewed, trust_roots=[root], crls=[pki.current_crl(keyring)])
    assert ok.valid, ok.summary
    # The registry still recognises the copy the holder downloaded before, and audited the renewal.
    code, out, err = cli("verify", str(tmp_path / "a.pdf"))
    assert code == 0, out + err
    svc = build_services(CertstoreSettings.from_env(os.environ))
    try:
        with svc.sessions() as s:
            events = s.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == "certificate.ltv_renew")
            ).all()
            row = s.scalar(sa.select(Certificate).where(Certificate.identifier == identifier))
        assert [e.subject for e in events] == [identifier]
        assert row is not None and events[0].detail["sha256"] == row.pdf_sha256
    finally:
        svc.close()

    # (Last: under the frozen clock the issuing CA re-signs its stored CRL for that day.)
    # 60 days on the first TSA certificate has expired: the newer document timestamp, which covers
    # the signature, the first timestamp and their validation data, still validates; the first not.
    later = short.certificate.not_valid_after_utc + dt.timedelta(days=30)
    with freeze_time(later):
        crls_then = [pki.current_crl(keyring), pki.current_root_crl(keyring)]
    vc = make_validation_context([root], crls=crls_then, moment=later, revocation_mode="require")
    first_ts, second_ts = PdfFileReader(io.BytesIO(renewed)).embedded_timestamp_signatures
    newer = validate_pdf_timestamp(second_ts, validation_context=vc)
    assert newer.intact and newer.valid and newer.trusted
    vc = make_validation_context([root], crls=crls_then, moment=later, revocation_mode="require")
    assert not validate_pdf_timestamp(first_ts, validation_context=vc).trusted
    # The un-renewed copy has only that first, now expired, timestamp at its head.
    assert signing.pades.last_timestamp(first).tsa_not_after < later  # type: ignore[union-attr]



def test_renewing_again_right_away_renews_nothing_due(lta_cli: tuple[Cli, Any], tmp_path: Path) -> None:
    cli, _ = lta_cli
    code, _, err = cli(*issue_args("JZZM", tmp_path / "a.pdf"))
    assert code == 0, err
    code, out, err = cli("ltv", "renew", "--due-only")
    assert code == 0, err
    assert "renewed" not in out and "0 renewed" in err


@pytest.mark.parametrize(
    "args",
    [
        ("ltv", "status", "JZZM-NO-SUCH-CERTIFICATE"),
        ("ltv", "renew", "--margin-days", "99999"),
        ("ltv", "status", "--margin-days", "-1"),
    ],
)
def test_bad_input_is_one_line_and_status_2(lta_cli: tuple[Cli, Any], args: tuple[str, ...]) -> None:
    cli, _ = lta_cli
    code, out, err = cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("certstore: "), err
    assert "Traceback" not in out + err


def _identifier(pdf: bytes) -> str:
    with_ids = build_services(CertstoreSettings.from_env(os.environ))
    try:
        import hashlib

        with with_ids.sessions() as s:
            row = s.scalar(sa.select(Certificate).where(Certificate.pdf_sha256 == hashlib.sha256(pdf).hexdigest()))
        assert row is not None
        return row.identifier
    finally:
        with_ids.close()


@pytest.mark.skipif(not os.environ.get("YIWANG_TEST_REDIS_URL"), reason="the job queue needs Redis")
def test_renewals_go_through_the_job_queue_too(lta_cli: tuple[Cli, Any], tmp_path: Path) -> None:
    cli, keyring = lta_cli
    pki.issue_tsa(keyring, validity=dt.timedelta(days=30))
    code, _, err = cli(*issue_args("JZZM", tmp_path / "a.pdf"))
    assert code == 0, err
    identifier = _identifier((tmp_path / "a.pdf").read_bytes())
    assert cli("tsa", "issue")[0] == 0
    code, _, err = cli("ltv", "renew", "--due-only", "--enqueue")
    assert code == 0 and "1 due PDFs handed to the job queue" in err, err
    code, _, err = cli("ltv", "worker", "--until-empty")
    assert code == 0, err
    last = signing.pades.last_timestamp(_stored_pdf(identifier))
    assert last is not None and last.document_timestamps == 2
    assert identifier not in cli("ltv", "status", "--due-only")[1]
