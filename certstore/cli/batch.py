"""``certstore issue-batch FILE.csv --type CODE --issuer USCC [--workers N] [--results FILE]``
and ``certstore batch-worker`` (issue 6, "Build" 7; see :mod:`certstore.batch`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import CertstoreError, InvalidInput
from ._common import get_services, settings_of

if TYPE_CHECKING:
    from ..batch import BatchService

__all__ = ["register"]

_CHUNK = 20


def register(group: click.Group) -> None:
    @group.command("issue-batch")
    @click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--type", "type_code", required=True, help="certificate type code")
    @click.option("--issuer", required=True, help="issuing agency's credit code (USCC)")
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="worker processes (needs YIWANG_REDIS_URL)")
    @click.option("--results", type=click.Path(path_type=Path, dir_okay=False), default=None, help="CSV of each row's outcome (default: FILE.results.csv)")
    @click.pass_context
    def issue_batch(ctx: click.Context, file: Path, type_code: str, issuer: str, workers: int, results: Path | None) -> None:
        """Issue one certificate per CSV row; rerunning the same file issues nothing twice."""
        from ..batch import BatchService, read_batch_csv

        settings = settings_of(ctx)
        svc = get_services(ctx)
        issuer = issuer.strip().upper()
        try:
            spec = svc.registry.get_type(type_code.strip())
        except CertstoreError as e:
            raise InvalidInput(str(e), field="type") from None
        batch_file = read_batch_csv(file, spec)  # the whole file is checked before anything is issued
        batch = BatchService(svc.certificates)
        job_id = batch.create_job(batch_file, issuer=issuer, type_code=spec.code, source=str(file))
        results = results or file.with_name(file.stem + ".results.csv")
        total = len(batch_file.rows)
        click.echo(f"batch job {job_id}: {total} rows of type {spec.code} for {issuer}", err=True)
        if settings.common.redis_url:
            _run_on_queue(ctx, batch, job_id, total, workers)
        else:
            if workers > 1:
                click.echo("no YIWANG_REDIS_URL: issuing in this process, one row at a time", err=True)
            with click.progressbar(length=total, label="issuing", file=sys.stderr) as bar:
                batch.run_inline(job_id, progress=bar.update)
        batch.finish(job_id)
        batch.write_results(job_id, results)
        counts = batch.counts(job_id)
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        click.echo(f"{summary}; results in {results}")
        if counts.get("pending"):
            raise InvalidInput(f"{counts['pending']} rows are still pending: run the same command again")

    @group.command("batch-worker")
    @click.option("--job", "job_id", type=int, default=None, help="stop once this job has no pending row")
    @click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 16))
    @click.pass_context
    def batch_worker(ctx: click.Context, job_id: int | None, threads: int) -> None:
        """Consume batch-issuance jobs from the Redis queue."""
        from ..batch import BatchService
        from ..batch_queue import BatchQueue

        settings = settings_of(ctx)
        if not settings.common.redis_url:
            raise InvalidInput("batch-worker needs YIWANG_REDIS_URL")
        batch = BatchService(get_services(ctx).certificates)
        queue = BatchQueue(settings, batch.run_row)
        worker = queue.worker(threads=threads)
        worker.start()
        try:
            while True:
                time.sleep(0.2)
                if job_id is not None and not batch.pending(job_id):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop(timeout=10_000)
            queue.close()


def _run_on_queue(ctx: click.Context, batch: BatchService, job_id: int, total: int, workers: int) -> None:
    """Queue the rows in chunks, start ``workers`` worker processes, show progress from SQL."""
    from ..batch import chunks
    from ..batch_queue import BatchQueue

    settings = settings_of(ctx)
    queue = BatchQueue(settings)
    try:
        pending = batch.pending(job_id)
        # Small enough that every worker gets a share, large enough to keep the queue short.
        size = max(1, min(_CHUNK, len(pending) // (workers * 4) or 1))
        for part in chunks(pending, size):
            queue.enqueue(job_id, part)
    finally:
        queue.close()
    cmd = [sys.executable, "-c", "from certstore.cli import main; main()", "batch-worker", "--job", str(job_id)]
    # Our own interpreter and module, fixed arguments: no untrusted input reaches the command line.
    procs = [subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL) for _ in range(workers)]  # noqa: S603
    done = 0
    try:
        with click.progressbar(length=total, label=f"issuing ({workers} workers)", file=sys.stderr) as bar:
            while True:
                counts = batch.counts(job_id)
                now_done = total - counts.get("pending", 0)
                bar.update(now_done - done)
                done = now_done
                if done >= total or all(p.poll() is not None for p in procs):
                    break
                time.sleep(0.2)
    finally:
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.terminate()
