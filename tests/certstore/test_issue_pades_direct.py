"""Issue 16: after the first certificate of an agency, issuance signs B-B through
signing.pades.embed (no pyHanko document model); those certificates must verify through
the service exactly as the first one (signature intact, chain, record, status)."""

from __future__ import annotations

import copy
import io
from unittest import mock

from pyhanko.pdf_utils.reader import PdfFileReader

import signing.pades.sign as sign_module
from certstore.service import IssueRequest
from certstore.wiring import Services

from .conftest import DEMO_REQUESTS


def _issue(services: Services, code: str) -> bytes:
    body = copy.deepcopy(DEMO_REQUESTS[code]["body"])
    view = services.certificates.issue(IssueRequest.from_json(body), agency_uscc=DEMO_REQUESTS[code]["issuer"]).certificate
    return services.certificates.pdf(view.identifier)


def test_certificates_signed_without_pyhankos_document_model_verify(services: Services) -> None:
    first = _issue(services, "JZZM")  # pyHanko signs (or the adapter already has its template)
    with mock.patch.object(sign_module.signers, "PdfSigner", side_effect=AssertionError("pyHanko signed")):
        second = _issue(services, "JZZM")
    for pdf in (first, second):
        res = services.certificates.verify_pdf(pdf)
        assert res.valid, res.checks
        assert {c.name for c in res.checks} >= {"signature_intact", "chain_trusted", "record", "status"}
    a, b = (PdfFileReader(io.BytesIO(p)) for p in (first, second))
    assert a.root["/Extensions"] == b.root["/Extensions"]
    assert a.embedded_signatures[0].sig_object["/SubFilter"] == b.embedded_signatures[0].sig_object["/SubFilter"]
