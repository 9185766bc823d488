"""Issue 15 §3: issued PDFs are PAdES B-LTA and still verify after the agency's certificate expired.

The TSA is the local one (``certstore.tsa``, the session's ``local_tsa`` HTTP
server) with a certificate from the test region's issuing CA.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from freezegun import freeze_time
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_timestamp

import signing.pades
from certstore.service import IssueRequest
from certstore.tokens import StaticJwksSource
from certstore.wiring import Services, build_services
from keys import pki
from signing.pades.context import make_validation_context

from .conftest import DEMO_REQUESTS, PSB, make_settings, populate

pytestmark = pytest.mark.slow


def _issue(svc: Services) -> bytes:
    body: Any = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
    view = svc.certificates.issue(IssueRequest.from_json(body), agency_uscc=PSB).certificate
    return svc.certificates.pdf(view.identifier)


@pytest.fixture
def world(tmp_path: Path, database_url: str, local_tsa: Any) -> Iterator[tuple[Services, Services]]:
    """certstore signing B-LTA with the local TSA, and the same registry signing B-B."""
    base = make_settings(tmp_path, database_url, pades_level="B-B")
    bb = build_services(base, jwks_source=StaticJwksSource({"keys": []}))
    populate(bb)
    lta = build_services(
        base.with_(pades_level="B-LTA", tsa_url=local_tsa.url_for(bb.keyring)),
        jwks_source=StaticJwksSource({"keys": []}),
    )
    try:
        yield lta, bb
    finally:
        lta.close()
        bb.close()


def test_issued_pdf_is_b_lta_for_pyhanko(world: tuple[Services, Services]) -> None:
    svc, _ = world
    pdf = _issue(svc)
    root = pki.region_root(svc.keyring)

    assert svc.certificates.verify_pdf(pdf).valid
    raw = signing.pades.verify_pdf(pdf, trust_roots=[root])
    assert raw.valid, raw.checks
    assert raw.timestamp_valid is True and raw.has_validation_data
    reader = PdfFileReader(io.BytesIO(pdf))
    dss = reader.root["/DSS"]
    assert len(dss["/CRLs"]) >= 2 and len(dss["/Certs"]) >= 3  # issuing CA's CRL and the root's
    # The document timestamp: present, intact and trusted (the TSA chains to the region root).
    (doc_ts,) = reader.embedded_timestamp_signatures
    vc = make_validation_context([root], crls=[pki.current_crl(svc.keyring), pki.current_root_crl(svc.keyring)])
    ts_status = validate_pdf_timestamp(doc_ts, validation_context=vc)
    assert ts_status.intact and ts_status.valid and ts_status.trusted
    last = signing.pades.last_timestamp(pdf)
    assert last is not None and last.kind == "document" and last.document_timestamps == 1
    tsa_cert = pki.tsa_signer(svc.keyring).certificate
    assert last.tsa_certificate == tsa_cert
    # ETSI EN 319 102-1 LTA validation (pyHanko's ades_lta_validation), today.
    lta = signing.pades.validate_long_term(pdf, trust_roots=[root], crls=[pki.current_crl(svc.keyring)])
    assert lta.valid, lta.summary
    assert lta.oldest_archive_timestamp is not None


def test_b_lta_still_validates_after_the_signer_certificate_expired_and_b_b_does_not(
    world: tuple[Services, Services],
) -> None:
    lta_svc, bb_svc = world
    lta_pdf, bb_pdf = _issue(lta_svc), _issue(bb_svc)
    assert signing.pades.last_timestamp(bb_pdf) is None  # the control really is B-B
    root = pki.region_root(lta_svc.keyring)
    signer = lta_svc.keyring.agency_signer(PSB).certificate
    later = signer.not_valid_after_utc + dt.timedelta(days=365)
    tsa_until = pki.tsa_signer(lta_svc.keyring).certificate.not_valid_after_utc
    assert signer.not_valid_after_utc < later < tsa_until
    # The verifier of that day holds that day's CRL (the issuing CA re-signs it weekly).
    with freeze_time(later):
        crl_then = pki.current_crl(lta_svc.keyring)

    lta = signing.pades.validate_long_term(lta_pdf, trust_roots=[root], crls=[crl_then], at=later)
    assert lta.valid, lta.summary
    assert lta.signature_time is not None and lta.signature_time < signer.not_valid_after_utc
    bb = signing.pades.validate_long_term(bb_pdf, trust_roots=[root], crls=[crl_then], at=later)
    assert not bb.valid and bb.indication != "PASSED"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603


@pytest.mark.external
def test_pdfsig_validates_the_b_lta_pdf_and_reports_its_timestamp(
    world: tuple[Services, Services], tmp_path: Path
) -> None:
    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip("needs poppler-utils (pdfsig) and libnss3-tools (certutil)")
    svc, _ = world
    pdf = tmp_path / "blta.pdf"
    pdf.write_bytes(_issue(svc))
    nssdb = tmp_path / "nssdb"
    nssdb.mkdir()
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(pki.region_root(svc.keyring).public_bytes(Encoding.PEM))
    assert _run("certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}").returncode == 0
    added = _run("certutil", "-A", "-n", "region-root", "-t", "CT,C,C", "-i", str(root_pem), "-d", f"sql:{nssdb}")
    assert added.returncode == 0, added.stderr
    result = _run("pdfsig", "-nssdir", f"sql:{nssdb}", "-no-ocsp", str(pdf))
    out = result.stdout + result.stderr
    assert "Signature is Valid." in result.stdout, out
    assert "Certificate is Trusted." in result.stdout, out
    first, _, second = result.stdout.partition("Signature #2:")
    assert "Signature Type: ETSI.CAdES.detached" in first, out  # the PAdES signature
    # pdfsig lists the document timestamp, signed by the region's TSA, after the signature; poppler
    # (22.x) does not validate RFC 3161 document timestamps itself ("Signature has not yet been
    # verified"): pyHanko does, above.
    assert "Time Stamping Authority" in second, out
