"""Logout fan-out measurement (issue 4, ``make bench``), against a running idp's settings.

A session signed in to 50 clients, each with a back-channel logout URI on a
local receiver, ends; we measure the time until all 50 logout tokens have been
POSTed and answered, and the deliveries per second, with 1 and 2 ``idp
worker`` processes (Dramatiq on Redis). Without ``YIWANG_REDIS_URL`` the queue
is in-process and one worker thread pool is measured instead.

:mod:`benchmarks.logout` runs it on a throwaway home for ``make bench``; on
its own: ``python -m benchmarks.logout_fanout [--clients 50] [--rounds 3]``
with the same ``YIWANG_*`` environment as the idp (it adds clients named
``bench-fanout-N``).
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from idp.settings import IdpSettings

__all__ = ["main", "run"]


class _Receiver:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # socketserver's listen backlog is 5: with 16 delivery threads (2 workers x 8)
            # connecting at once the accept queue overflowed and the kernel dropped the
            # handshakes, which the senders retried after 1 s (the bimodal 2-worker figure).
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/bcl"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ensure_clients(stack: Any, n: int, uri: str) -> list[str]:
    from idp.clients import ClientSpec
    from idp.models import Client

    ids = [f"bench-fanout-{i}" for i in range(n)]
    for cid in ids:
        existing = stack.services.clients.get(cid)
        if existing is None:
            stack.services.clients.add(
                ClientSpec(name=cid, client_id=cid, redirect_uris=["https://bench.example/cb"], backchannel_logout_uri=uri),
                actor="bench",
            )
        else:
            with stack.services.db.session() as db:
                row = db.get(Client, cid)
                row.backchannel_logout_uri = uri
    return ids


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of ``pids`` so far (Linux ``/proc``); ``None`` elsewhere."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def _one_round(stack: Any, receiver: _Receiver, ids: list[str], timeout: float = 120.0) -> float:
    session, _ = stack.sessions.create("0", int(time.time()), "bench", ["pwd"], "bench", "", "")
    for cid in ids:
        stack.sessions.add_client(session.sid, cid)
    start_count = receiver.count
    t0 = time.perf_counter()
    stack.sessions.end(session.sid, "admin")
    while receiver.count - start_count < len(ids):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"only {receiver.count - start_count} of {len(ids)} delivered in {timeout:g} s")
        time.sleep(0.002)
    return time.perf_counter() - t0


def _start_workers(n: int, threads: int, env: dict[str, str] | None) -> list[subprocess.Popen[bytes]]:
    idp = str(Path(sys.executable).with_name("idp"))
    procs = [
        subprocess.Popen(  # noqa: S603
            [idp, "worker", "--threads", str(threads)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(n)
    ]
    time.sleep(3)  # workers connect and declare their queues
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


def run(
    settings: IdpSettings,
    *,
    clients: int = 50,
    rounds: int = 3,
    threads: int = 8,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Measure; ``env`` is the environment of the ``idp worker`` processes (default: ours)."""
    from idp.container import Container

    stack = Container.from_settings(settings, provider=False)
    receiver = _Receiver()
    results = []
    try:
        ids = _ensure_clients(stack, clients, receiver.uri)
        setups: list[tuple[str, int]] = (
            [("idp worker ×1", 1), ("idp worker ×2", 2)] if settings.common.redis_url else [("in-process worker", 0)]
        )
        for label, workers in setups:
            procs = _start_workers(workers, threads, env) if workers else []
            if not workers:
                stack.logout.queue.start_worker(threads=threads, sweep=False)
            try:
                _one_round(stack, receiver, ids)  # warm-up: connections, key loading
                # The workers' CPU per round (issue 16): the wall time moves with the machine's
                # other tenants, their CPU much less. In-process: this whole process's CPU.
                pids = [p.pid for p in procs] or [os.getpid()]
                times, cpu = [], []
                for _ in range(rounds):
                    before = _cpu_seconds(pids)
                    times.append(_one_round(stack, receiver, ids))
                    after = _cpu_seconds(pids)
                    if before is not None and after is not None:
                        cpu.append(after - before)
            finally:
                if workers:
                    _stop_workers(procs)
                else:
                    stack.logout.queue.stop_worker()
            median = statistics.median(times)
            results.append(
                {"setup": label, "clients": clients, "seconds": median, "deliveries_per_s": clients / median,
                 "worker_cpu_seconds": statistics.median(cpu) if cpu else None}
            )
    finally:
        receiver.close()
        stack.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Back-channel logout fan-out benchmark")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    args = parser.parse_args(argv)
    settings = IdpSettings.from_env(os.environ)
    print(f"logout fan-out: one session signed in to {args.clients} clients, median of {args.rounds}")
    for r in run(settings, clients=args.clients, rounds=args.rounds, threads=args.threads):
        print(
            f"  {r['setup']:<18} all {r['clients']} logout tokens delivered in {r['seconds'] * 1000:7.1f} ms"
            f"  ({r['deliveries_per_s']:7.1f} deliveries/s)" + _cpu_note(r)
        )


def _cpu_note(r: dict[str, Any]) -> str:
    cpu = r.get("worker_cpu_seconds")
    return "" if cpu is None else f", worker CPU {cpu * 1000:.0f} ms"


if __name__ == "__main__":
    main()
