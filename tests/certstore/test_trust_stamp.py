"""A verifier's cached imported trust lists follow the table, whoever changed it.

``TrustStore.imported`` keeps the verified documents and re-reads only the
table's (region, imported_at) stamp per verification; a list imported or
removed by another process (``certstore trust import`` on the CLI) must count
(or stop counting) at the very next verification.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from certstore.service import IssueRequest
from certstore.trust import TrustStore
from keys import pki

from .conftest import DEMO_REQUESTS, PSB
from .test_regions import A_TYPES, region_a, region_b, second_database_url  # noqa: F401 - fixtures


def _signature_ok(result: Any) -> bool:
    return next(c for c in result.checks if c.name == "signature").ok


def test_import_and_removal_by_another_process_count_at_the_next_verification(
    region_a: tuple[Any, Any],  # noqa: F811
    region_b: tuple[Any, Any],  # noqa: F811
) -> None:
    a, _ = region_a
    b, _ = region_b
    cert = a.certificates.issue(IssueRequest.from_json(DEMO_REQUESTS["JZZM"]["body"]), agency_uscc=PSB).certificate
    # B's service has verified (and cached an empty import list) before anything was imported.
    assert not _signature_ok(b.certificates.verify_qr(cert.qr_text))

    # "Another process": a second TrustStore on B's database imports A's list.
    mine = b.certificates.trust_store
    other = TrustStore(mine.settings, mine.sessions, mine.keyring, mine.registry, status_base_url=mine.status_base_url)
    other.import_(a.certificates.trust_store.export(), pki.region_root(a.keyring).public_bytes(Encoding.PEM), types=A_TYPES)
    assert _signature_ok(b.certificates.verify_qr(cert.qr_text))
    assert [d.region for d in mine.imported()] == ["110000"]

    assert other.remove("110000")
    assert not _signature_ok(b.certificates.verify_qr(cert.qr_text))
    assert mine.imported() == []
