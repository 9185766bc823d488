"""A batch job's end state and report are true whoever stores its last row (issue 20 §4).

``finish`` only ends a job with no pending row; the row that empties it ends
it; the first stored outcome of a row stands; ``certstore batch-status``
shows any job from SQL and writes its results; ``issue-batch`` gives up
waiting only after ``--wait`` seconds without progress, and then says so
without writing a report of an unfinished job.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certstore.batch import BatchFile, BatchService, JobProgress
from certstore.cli.batch_status import describe

from .conftest import DEMO_REQUESTS, PSB, Cli

FIELDS = DEMO_REQUESTS["JZZM"]["body"]["fields"]


def _holder(n: int) -> str:
    from keys.identifiers import resident_id_check_character

    first17 = f"11010119900101{n:03d}"
    return first17 + resident_id_check_character(first17)


def _cells(i: int, *, holder: str | None = None) -> dict[str, str]:
    return {"external_ref": f"S-{i}", "holder_code": holder or _holder(i), "holder_name": "王小明", **FIELDS}


def _batch_file(rows: list[dict[str, str]]) -> BatchFile:
    return BatchFile(columns=tuple(rows[0]), rows=[(i + 2, cells) for i, cells in enumerate(rows)])


def _finished_at(services: Any, job: int) -> dt.datetime | None:
    with services.engine.connect() as c:
        return c.execute(sa.text("SELECT finished_at FROM cert_batch_jobs WHERE id = :j"), {"j": job}).scalar()


@pytest.mark.slow
def test_a_job_finishes_only_when_its_last_row_is_stored_whoever_stores_it(services: Any) -> None:
    batch = BatchService(services.certificates)
    rows = [_cells(0), _cells(1, holder="110101199001010010"), _cells(2)]  # row 3: a wrong check character
    job = batch.create_job(_batch_file(rows), issuer=PSB, type_code="JZZM", source="s.csv")

    assert batch.finish(job) is False and _finished_at(services, job) is None
    # Out of order, as several workers would: the last row first, then the first, then the middle.
    assert batch.run_row(job, 4) == "issued"
    assert _finished_at(services, job) is None
    assert batch.run_row(job, 2) == "issued"
    assert batch.finish(job) is False and _finished_at(services, job) is None
    assert batch.progress(job).pending == 1
    assert BatchService(services.certificates).run_row(job, 3) == "failed"  # another process's service
    ended = _finished_at(services, job)
    assert ended is not None  # the row that emptied the job ended it, with no finish() call

    assert batch.finish(job) is True and _finished_at(services, job) == ended  # once, not moved
    p = batch.progress(job)
    assert (p.total, p.issued, p.existing, p.failed, p.pending) == (3, 2, 0, 1, 0)
    assert p.finished_at is not None and p.last_progress_at is not None
    assert p.created_at.replace(microsecond=0) <= p.last_progress_at <= p.finished_at  # issued_at: to the second


@pytest.mark.slow
def test_the_first_stored_outcome_of_a_row_stands(services: Any) -> None:
    """A requeued message runs a row a second time while the first run is still going."""
    first, second = BatchService(services.certificates), BatchService(services.certificates)
    job = first.create_job(_batch_file([_cells(0)]), issuer=PSB, type_code="JZZM", source="r.csv")
    real_issue = second._issue

    def racing(*args: Any) -> Any:
        first.run_row(job, 2)  # the other worker issues and stores the row in the meantime
        return real_issue(*args)

    second._issue = racing  # type: ignore[method-assign]
    assert second.run_row(job, 2) == "issued"  # the stored state, not this run's "existing"
    (row,) = first.results(job)
    with services.engine.connect() as c:
        issued = c.execute(sa.text("SELECT identifier FROM certificates WHERE external_ref = 'S-0'")).scalars().all()
    assert row[2] == "issued" and [row[3]] == issued  # one certificate, the row names it
    assert first.progress(job).finished_at is not None


def test_describe_and_json_of_a_running_job() -> None:
    created = dt.datetime(2026, 5, 1, 8, 0, 0, tzinfo=dt.UTC)
    now = created + dt.timedelta(seconds=100)
    p = JobProgress(job_id=7, issuer=PSB, type_code="JZZM", source="a.csv", total=2000, issued=590, existing=10,
                    failed=4, pending=1396, created_at=created, finished_at=None,
                    last_progress_at=created + dt.timedelta(seconds=90))
    assert p.done == 604 and p.rate(now) == pytest.approx(6.04)
    lines = describe(p, now)
    assert lines[0] == f"job 7: 2000 rows of type JZZM for {PSB} (running)"
    assert "604 of 2000 (30%): 590 issued, 10 existing, 4 failed; 1396 pending" in lines[1]
    assert "finished: -" in lines[3] and "(10 s ago)" in lines[4] and "6.04 rows/s" in lines[5]
    shown = p.as_json(now)
    assert shown["finished"] is False and shown["finished_at"] is None and shown["pending"] == 1396
    assert shown["last_progress_at"] == "2026-05-01T08:01:30+00:00" and shown["rows_per_second"] == 6.04

    done = JobProgress(**{**p.__dict__, "issued": 1986, "pending": 0, "finished_at": now})
    assert describe(done, now + dt.timedelta(seconds=50))[0].endswith("(finished)")
    assert done.rate(now + dt.timedelta(seconds=50)) == pytest.approx(20.0)  # to the end, not to now


def _write_csv(path: Path, n: int) -> Path:
    rows = [_cells(i) for i in range(n)]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.slow
def test_batch_status_shows_jobs_and_writes_their_results(demo: Cli, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YIWANG_REDIS_URL", raising=False)  # issue inline
    source = _write_csv(tmp_path / "b.csv", 2)
    code, out, err = demo("issue-batch", str(source), "--type", "JZZM", "--issuer", PSB,
                          "--results", str(tmp_path / "b.results.csv"))
    assert code == 0, err
    job = int(err.split("batch job ", 1)[1].split(":", 1)[0])

    code, out, err = demo("batch-status", str(job), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["job"], shown["total"], shown["issued"], shown["pending"], shown["finished"]) == (job, 2, 2, 0, True)
    assert shown["source"] == str(source) and shown["last_progress_at"] is not None

    code, out, err = demo("batch-status", str(job))
    assert code == 0 and out.startswith(f"job {job}: 2 rows of type JZZM for {PSB} (finished)")

    code, out, err = demo("batch-status")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["job", "type", "issuer"]
    assert out.splitlines()[1].split()[:5] == [str(job), "JZZM", PSB, "2", "2"]
    code, out, err = demo("batch-status", "--json")
    assert [j["job"] for j in json.loads(out)] == [job]

    again = tmp_path / "again.csv"
    code, out, err = demo("batch-status", str(job), "--results", str(again))
    assert code == 0 and f"results of job {job} in {again}" in err and "not finished" not in err
    assert again.read_text(encoding="utf-8") == (tmp_path / "b.results.csv").read_text(encoding="utf-8")

    code, out, err = demo("batch-status", "999")
    assert code == 2 and "there is no batch job 999" in err
    code, out, err = demo("batch-status", "--results", str(again))
    assert code == 2 and "needs the JOB_ID" in err


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("YIWANG_TEST_REDIS_URL"), reason="needs Redis for the job queue")
def test_issue_batch_gives_up_only_without_progress_and_a_later_worker_ends_the_job(
    demo: Cli, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "w.csv", 3)
    results = tmp_path / "w.results.csv"
    # No worker runs: nothing progresses for --wait seconds.
    code, out, err = demo("issue-batch", str(source), "--type", "JZZM", "--issuer", PSB, "--workers", "0",
                          "--wait", "1", "--results", str(results))
    assert code == 2
    job = int(err.split("batch job ", 1)[1].split(":", 1)[0])
    assert f"batch job {job}: 3 of 3 rows still pending after 1 s without progress" in err
    assert f"certstore batch-status {job} --results {results}" in err
    assert not results.exists()  # no report of an unfinished job

    code, out, err = demo("batch-status", str(job), "--json")
    assert json.loads(out)["finished"] is False and json.loads(out)["pending"] == 3

    # A worker started later issues the queued rows; the row it stores last ends the job.
    code, out, err = demo("batch-worker", "--job", str(job))
    assert code == 0, err
    code, out, err = demo("batch-status", str(job), "--json", "--results", str(results))
    shown = json.loads(out)
    assert (shown["finished"], shown["issued"], shown["pending"]) == (True, 3, 0)
    with results.open(encoding="utf-8") as f:
        assert [r["state"] for r in csv.DictReader(f)] == ["issued"] * 3
