"""With a timestamp authority configured, certificates are signed PAdES B-LT.

The TSA is a real RFC 3161 responder (certomancer) started by the test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import signing.pades
from certstore.service import IssueRequest
from certstore.tokens import StaticJwksSource
from certstore.wiring import build_services
from keys import pki
from tests.signing.tsa import running_tsa

from .conftest import DEMO_REQUESTS, PSB, make_settings, populate

pytestmark = pytest.mark.slow


def test_issue_with_a_tsa_gives_b_lt(tmp_path: Path, database_url: str) -> None:
    with running_tsa(tmp_path / "tsa") as tsa:
        root_file = tmp_path / "tsa-root.pem"
        root_file.write_bytes(tsa.root.public_bytes(Encoding.PEM))
        settings = make_settings(tmp_path, database_url, tsa_url=tsa.url, tsa_root_file=root_file)
        svc = build_services(settings, jwks_source=StaticJwksSource({"keys": []}))
        try:
            populate(svc)
            body: Any = copy.deepcopy(DEMO_REQUESTS["JZZM"]["body"])
            view = svc.certificates.issue(IssueRequest.from_json(body), agency_uscc=PSB).certificate
            pdf = svc.certificates.pdf(view.identifier)
            result = svc.certificates.verify_pdf(pdf)
            assert result.valid, result.checks
            raw = signing.pades.verify_pdf(
                pdf, trust_roots=[pki.region_root(svc.keyring), tsa.root]
            )
            assert raw.timestamp is not None and raw.timestamp_valid is True
            assert raw.has_validation_data  # B-LT: the CRL and chain are in the file
        finally:
            svc.close()
