"""``certstore issue-batch FILE.csv --type CODE --issuer USCC [--workers N] [--wait S] [--results FILE]``
and ``certstore batch-worker`` (issue 6, "Build" 7; see :mod:`certstore.batch`).

``issue-batch`` waits on the job's progress in SQL, not on its worker
processes (issue 20 §4): a worker it started that dies is started again, and
whatever the dead one held comes back on the queue within the requeue bound
(:mod:`keys.jobqueue`). It gives up only after ``--wait`` seconds in which no
row was done; the job then goes on in whatever workers run, and
``certstore batch-status JOB --results FILE`` reports it. The results file is
written only for a finished job, so it never shows a row as pending that a
worker later issued.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
_POLL = 0.2
_RESPAWNS_PER_WORKER = 3
"""A worker that keeps dying (bad settings, no database) is not restarted forever."""


def register(group: click.Group) -> None:
    @group.command("issue-batch")
    @click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--type", "type_code", required=True, help="certificate type code")
    @click.option("--issuer", required=True, help="issuing agency's credit code (USCC)")
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 64),
                  help="worker processes to start (needs YIWANG_REDIS_URL); 0: the running `certstore batch-worker`s do the work")
    @click.option("--wait", "wait_seconds", default=300, show_default=True, type=click.IntRange(1, 86_400),
                  help="stop waiting after this many seconds in which no row was done (the job goes on)")
    @click.option("--results", type=click.Path(path_type=Path, dir_okay=False), default=None, help="CSV of each row's outcome (default: FILE.results.csv)")
    @click.pass_context
    def issue_batch(ctx: click.Context, file: Path, type_code: str, issuer: str, workers: int,
                    wait_seconds: int, results: Path | None) -> None:
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
            finished = _run_on_queue(ctx, batch, job_id, total, workers, wait_seconds)
        else:
            if workers > 1:
                click.echo("no YIWANG_REDIS_URL: issuing in this process, one row at a time", err=True)
            with click.progressbar(length=total, label="issuing", file=sys.stderr) as bar:
                batch.run_inline(job_id, progress=bar.update)
            finished = batch.finish(job_id)
        if not finished:
            pending = batch.pending_count(job_id)
            raise InvalidInput(
                f"batch job {job_id}: {pending} of {total} rows still pending after {wait_seconds} s "
                f"without progress; running workers go on with it: `certstore batch-status {job_id}` "
                f"shows it, `certstore batch-status {job_id} --results {results}` writes the results"
            )
        batch.write_results(job_id, results)
        counts = batch.counts(job_id)
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        click.echo(f"{summary}; results in {results}")

    @group.command("batch-worker")
    @click.option("--job", "job_id", type=int, default=None, help="stop once this job has no pending row")
    @click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 16))
    @click.pass_context
    def batch_worker(ctx: click.Context, job_id: int | None, threads: int) -> None:
        """Consume batch-issuance jobs from the Redis queue (SIGTERM or Ctrl-C: stop, handing back held jobs)."""
        from ..batch import BatchService
        from ..batch_queue import BatchQueue

        settings = settings_of(ctx)
        if not settings.common.redis_url:
            raise InvalidInput("batch-worker needs YIWANG_REDIS_URL")
        batch = BatchService(get_services(ctx).certificates)
        queue = BatchQueue(settings, batch.run_row)
        stop = threading.Event()
        # SIGTERM (systemd, docker stop) stops like Ctrl-C: messages not started go back at once
        # instead of waiting out the requeue bound.
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        worker = queue.worker(threads=threads)
        worker.start()
        # The id names this worker's held messages in Redis (<prefix>certstore-dramatiq:__acks__.<id>.*).
        click.echo(f"batch worker {queue.broker.broker_id} started (pid {os.getpid()}; held jobs of a dead "
                   f"worker are requeued within {settings.queue_requeue_seconds:g} s)", err=True)
        try:
            while not stop.wait(_POLL):
                if job_id is not None and not batch.pending_count(job_id):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop(timeout=10_000)
            queue.close()
            signal.signal(signal.SIGTERM, previous)


def _spawn_worker(job_id: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from certstore.cli import main; main()", "batch-worker", "--job", str(job_id)]
    # Our own interpreter and module, fixed arguments: no untrusted input reaches the command line.
    return subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL)  # noqa: S603


def _run_on_queue(ctx: click.Context, batch: BatchService, job_id: int, total: int, workers: int,
                  wait_seconds: int) -> bool:
    """Queue the rows in chunks, start ``workers`` worker processes, follow progress in SQL.

    Returns whether the job finished; ``False`` after ``wait_seconds`` without a row done.
    """
    from ..batch import chunks
    from ..batch_queue import BatchQueue

    settings = settings_of(ctx)
    queue = BatchQueue(settings)
    try:
        pending = batch.pending(job_id)
        # Small enough that every worker gets a share, large enough to keep the queue short.
        size = max(1, min(_CHUNK, len(pending) // (max(workers, 1) * 4) or 1))
        for part in chunks(pending, size):
            queue.enqueue(job_id, part)
    finally:
        queue.close()
    procs = [_spawn_worker(job_id) for _ in range(workers)]
    respawns = _RESPAWNS_PER_WORKER * workers
    finished = False
    shown = 0
    last_done = -1
    last_change = time.monotonic()
    label = f"issuing ({workers} workers)" if workers else "issuing (running batch-workers)"
    try:
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            while True:
                done = total - batch.pending_count(job_id)
                if done != last_done:
                    last_done, last_change = done, time.monotonic()
                    bar.update(done - shown)
                    shown = done
                if done >= total:
                    finished = batch.finish(job_id)  # the worker that stored the last row may not have yet
                    if finished:
                        return True
                if time.monotonic() - last_change > wait_seconds:
                    return False
                for i, proc in enumerate(procs):
                    code = proc.poll()
                    if code is not None and done < total and respawns > 0:
                        respawns -= 1
                        click.echo(f"\na batch worker ended (exit {code}) with rows pending: starting another", err=True)
                        procs[i] = _spawn_worker(job_id)
                time.sleep(_POLL)
    finally:
        for proc in procs:
            if not finished and proc.poll() is None:
                proc.terminate()  # a graceful stop: what it holds goes back on the queue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
