"""``certstore ltv status|renew``: long-term validity of stored PDFs (issue 15 §3, :mod:`certstore.ltv`).

``status`` lists each stored PDF's level and when its last timestamp's TSA
certificate expires (``--due-only``: those within the renewal margin);
``renew`` adds a document timestamp to the due ones. A scheduler runs
``certstore ltv renew --due-only`` (daily is plenty; docs/operators.md);
with Redis, ``renew --due-only --enqueue`` hands them to ``ltv worker``
processes on the job queue instead.
Bad input (an unknown certificate, a margin out of range) prints one line
and exits with status 2; a renewal that failed exits with status 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import click

from ._common import get_services

__all__ = ["register"]


def _service(ctx: click.Context):  # type: ignore[no-untyped-def]
    from ..ltv import LtvService

    svc = get_services(ctx)
    return LtvService(svc.settings, svc.sessions, svc.keyring, clock=svc.certificates.clock)


def register(group: click.Group) -> None:
    @group.group("ltv")
    def ltv_group() -> None:
        """Long-term validity: archive timestamps of stored PDFs (PAdES B-LTA)."""

    @ltv_group.command("status")
    @click.argument("identifiers", nargs=-1)
    @click.option("--due-only", is_flag=True, help="only PDFs due for a new archive timestamp")
    @click.option("--margin-days", type=int, default=None,
                  help="due when the last TSA certificate expires within this (default YIWANG_CERTSTORE_LTV_RENEW_DAYS)")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    @click.pass_context
    def status(ctx: click.Context, identifiers: tuple[str, ...], due_only: bool, margin_days: int | None,
               as_json: bool) -> None:
        """List stored PDFs by the expiry of their last timestamp's TSA certificate."""
        entries = _service(ctx).status(due_only=due_only, margin_days=margin_days,
                                       identifiers=list(identifiers) or None)
        if as_json:
            click.echo(json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=2))
            return
        for e in entries:
            until = e.tsa_not_after.isoformat(timespec="seconds") if e.tsa_not_after else "-"
            flag = "DUE" if e.due else "ok " if not e.note else "!! "
            click.echo(f"{flag} {e.identifier}  {e.level:<5}  TSA until {until}  "
                       f"({e.document_timestamps} document timestamps){'  ' + e.note if e.note else ''}")
        click.echo(f"{len(entries)} PDFs, {sum(e.due for e in entries)} due", err=True)

    @ltv_group.command("renew")
    @click.argument("identifiers", nargs=-1)
    @click.option("--due-only", is_flag=True, help="only PDFs due (what a scheduler runs)")
    @click.option("--margin-days", type=int, default=None, help="as for `ltv status`")
    @click.option("--enqueue", is_flag=True,
                  help="hand the due PDFs to the job queue (`certstore ltv worker`) instead of renewing here")
    @click.pass_context
    def renew(ctx: click.Context, identifiers: tuple[str, ...], due_only: bool, margin_days: int | None,
              enqueue: bool) -> None:
        """Add a new document timestamp (incremental update) to due PDFs, or to the named / all ones."""
        if enqueue:
            from ..ltv import LtvQueue

            service = _service(ctx)
            due = [e.identifier for e in service.status(due_only=True, margin_days=margin_days,
                                                          identifiers=list(identifiers) or None)]
            queue = LtvQueue(service.settings)
            try:
                queue.enqueue(due)
            finally:
                queue.close()
            click.echo(f"{len(due)} due PDFs handed to the job queue (certstore ltv worker renews them)", err=True)
            return
        report = _service(ctx).renew(due_only=due_only, margin_days=margin_days,
                                     identifiers=list(identifiers) or None)
        for identifier in report.renewed:
            click.echo(f"renewed {identifier}")
        for identifier, why in report.failed:
            click.echo(f"failed  {identifier}: {why}", err=True)
        click.echo(f"{len(report.renewed)} renewed, {len(report.skipped)} not due or changed meanwhile, "
                   f"{len(report.failed)} failed", err=True)
        if report.failed:
            sys.exit(1)

    @ltv_group.command("worker")
    @click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 16))
    @click.option("--until-empty", is_flag=True, help="stop once the renewal queue is empty")
    @click.pass_context
    def worker(ctx: click.Context, threads: int, until_empty: bool) -> None:
        """Renew the PDFs handed to the job queue (`ltv renew --enqueue`); SIGTERM or Ctrl-C stops."""
        from ..ltv import LTV_QUEUE, LtvQueue, queue_handler

        service = _service(ctx)
        queue = LtvQueue(service.settings, queue_handler(service))
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        dramatiq_worker = queue.worker(threads=threads)
        dramatiq_worker.start()
        click.echo(f"renewal worker started (pid {os.getpid()}, queue {LTV_QUEUE})", err=True)
        try:
            if until_empty:
                queue.broker.join(LTV_QUEUE, timeout=3_600_000)
                dramatiq_worker.join()
            else:
                while not stop.wait(0.5):
                    pass
        except KeyboardInterrupt:
            pass
        finally:
            dramatiq_worker.stop(timeout=10_000)
            queue.close()
            signal.signal(signal.SIGTERM, previous)
