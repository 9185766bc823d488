"""The issue-5 benchmark runs and reports every figure (no timing assertions)."""

from __future__ import annotations

import pytest

from benchmarks.certstore import run

pytestmark = pytest.mark.slow


def test_benchmark_reports_every_figure(database_url: str) -> None:
    r = run(seconds=0.01, database_url=database_url)
    for key in (
        "api_issue_per_s",
        "bare_pyhanko_bb_per_s",
        "issue_ratio",
        "qr_verify_offline_per_s",
        "qr_verify_service_per_s",
        "raw_p256_verify_per_s",
        "verify_ratio",
    ):
        assert r[key] > 0, key
