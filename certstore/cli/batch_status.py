"""``certstore batch-status [JOB_ID] [--json] [--results FILE]``: where batch jobs stand (issue 20 §4).

Everything is read from SQL, so it shows the truth whichever process issued
the rows (the ``issue-batch`` that queued them may be long gone). With
``--results`` it writes the job's results file from SQL, the same CSV that
``issue-batch`` writes when the job finishes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from ._common import get_services

if TYPE_CHECKING:
    from ..batch import JobProgress

__all__ = ["register", "describe"]


def _when(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    ago = max(0, int((now - t).total_seconds()))
    return f"{t.isoformat(timespec='seconds')} ({ago} s ago)"


def describe(p: JobProgress, now: dt.datetime) -> list[str]:
    """The lines ``batch-status JOB`` prints for one job."""
    share = 100 * p.done // p.total if p.total else 100
    state = "finished" if p.finished_at is not None else "running" if p.pending else "finishing"
    return [
        f"job {p.job_id}: {p.total} rows of type {p.type_code} for {p.issuer} ({state})",
        f"  done:     {p.done} of {p.total} ({share}%): {p.issued} issued, {p.existing} existing, "
        f"{p.failed} failed; {p.pending} pending",
        f"  created:  {_when(p.created_at, now)}",
        f"  finished: {_when(p.finished_at, now)}",
        f"  last certificate issued: {_when(p.last_progress_at, now)}",
        f"  rate:     {p.rate(now):.2f} rows/s",
    ]


def register(group: click.Group) -> None:
    @group.command("batch-status")
    @click.argument("job_id", type=int, required=False)
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    @click.option("--results", type=click.Path(path_type=Path, dir_okay=False), default=None,
                  help="write JOB_ID's results CSV (each row's outcome) from the database")
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
                  help="jobs listed without JOB_ID")
    @click.pass_context
    def batch_status(ctx: click.Context, job_id: int | None, as_json: bool, results: Path | None,
                     limit: int) -> None:
        """Progress of a batch job (total, issued, failed, pending, times, rate), or of the newest jobs."""
        from ..batch import BatchService

        batch = BatchService(get_services(ctx).certificates)
        now = dt.datetime.now(dt.UTC)
        if job_id is None:
            if results is not None:
                raise InvalidInput("--results needs the JOB_ID whose results to write", field="results")
            jobs = batch.recent(limit)
            if as_json:
                click.echo(json.dumps([p.as_json(now) for p in jobs], ensure_ascii=False, indent=2))
                return
            if not jobs:
                click.echo("no batch jobs")
                return
            click.echo(f"{'job':>6}  {'type':<6} {'issuer':<18} {'total':>7} {'done':>7} {'failed':>7} "
                       f"{'pending':>7}  {'state':<9} created")
            for p in jobs:
                state = "finished" if p.finished_at is not None else "running"
                click.echo(f"{p.job_id:>6}  {p.type_code:<6} {p.issuer:<18} {p.total:>7} {p.done:>7} "
                           f"{p.failed:>7} {p.pending:>7}  {state:<9} {p.created_at.isoformat(timespec='seconds')}")
            return
        progress = batch.progress(job_id)
        if results is not None:
            batch.write_results(job_id, results)
            note = "" if progress.finished_at is not None else f" (job not finished: {progress.pending} rows pending)"
            click.echo(f"results of job {job_id} in {results}{note}", err=True)
        if as_json:
            click.echo(json.dumps(progress.as_json(now), ensure_ascii=False, indent=2))
        else:
            click.echo("\n".join(describe(progress, now)))
