"""``idp worker``: the Dramatiq worker for the idp's actors.

Runs back-channel logout deliveries (with their retries) and the periodic
sweep that ends expired sessions and recovers lost deliveries. Production runs
one or more of these beside ``idp serve`` (docs/operations-sessions.md); each
process re-queues lost pending deliveries at start-up.

Dramatiq's own ``dramatiq`` command wants a module-level broker; the idp
declares its actors per :class:`~idp.logout.queue.JobQueue` (so tests can
build fresh ones), so this command runs ``dramatiq.Worker`` itself, one per
process, and stops it gracefully on SIGTERM/SIGINT (in-flight messages are
requeued by Dramatiq).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading

import click

from ..errors import InvalidInput
from ..settings import IdpSettings

__all__ = ["register", "run_worker"]

logger = logging.getLogger(__name__)


def run_worker(settings: IdpSettings, threads: int, stop: threading.Event | None = None) -> None:
    """Run one worker in this process until SIGTERM/SIGINT (or ``stop`` is set)."""
    from ..container import Container

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    stack = Container.from_settings(settings, provider=False)
    try:
        stack.logout.start_worker(threads=threads, sweep=True)
        logger.info("idp worker %d running with %d threads", os.getpid(), threads)
        stop.wait()
    finally:
        logger.info("idp worker %d stopping", os.getpid())
        stack.close()


def _child(settings: IdpSettings, threads: int, level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(settings, threads)


def register(group: click.Group) -> None:
    @group.command("worker")
    @click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True)
    @click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True)
    @click.pass_obj
    def worker(settings: IdpSettings, processes: int, threads: int) -> None:
        """Run the job worker: back-channel logout deliveries and the session sweep."""
        if not settings.common.redis_url:
            raise InvalidInput(
                "idp worker needs YIWANG_REDIS_URL: without it the queue is in-process "
                "and idp serve runs the worker itself"
            )
        if processes == 1:
            run_worker(settings, threads)
            return
        ctx = multiprocessing.get_context("spawn")
        children = [
            ctx.Process(target=_child, args=(settings, threads, settings.common.log_level), daemon=False)
            for _ in range(processes)
        ]
        for c in children:
            c.start()

        def forward(signum: int, _frame: object) -> None:
            for c in children:
                if c.is_alive() and c.pid:
                    os.kill(c.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for c in children:
            c.join()
