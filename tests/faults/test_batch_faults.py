"""Batch issuance through a killed worker (issue 20 §4, §5), on a private PostgreSQL and Redis.

Real processes: ``certstore issue-batch`` and ``certstore batch-worker`` run as
subprocesses; a worker is killed with SIGKILL once 30 % of the job's rows are
done (watched in SQL). The requeue bound is set to 3 s
(``YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS``) so that the tests take seconds.

Run with ``-s`` to see what was measured.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.private_services import PrivatePostgres, PrivateRedis, pg_bin

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(pg_bin("initdb") is None, reason="needs the PostgreSQL server binaries"),
]

PSB = "111101050000000017"  # the demo issuer of JZZM
FIELDS = {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01", "purpose": "入学"}
ROWS = 30
BOUND = 3.0
"""The requeue bound the tests configure (seconds)."""
MARGIN = 1.5
"""Polling and scheduling slack on top of the bound."""
CLI = [sys.executable, "-c", "from certstore.cli import main; main()"]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private PostgreSQL and Redis, and a certstore home initialised with the demo data."""
    pg = PrivatePostgres().init()
    redis_server = PrivateRedis()
    try:
        pg.start()
        redis_server.start()
        home = tmp_path_factory.mktemp("certstore-home")
        base = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")}
        env = {
            **base,
            "YIWANG_HOME": str(home),
            "YIWANG_DATABASE_URL": pg.url,
            "YIWANG_CERTSTORE_PADES_LEVEL": "B-B",  # no TSA here: the explicit opt-out (issue 15 §3)
            "YIWANG_REDIS_URL": redis_server.url,
            "YIWANG_ISSUER": "http://idp.test",
            "YIWANG_ALLOW_INSECURE_HTTP": "1",
            "YIWANG_CERTSTORE_QUEUE_REQUEUE_SECONDS": str(BOUND),
        }
        done = subprocess.run([*CLI, "init", "--demo"], env=env, capture_output=True, text=True, timeout=180)  # noqa: S603
        assert done.returncode == 0, done.stderr
        engine = sa.create_engine(pg.url)
        yield {"env": env, "engine": engine, "redis_url": redis_server.url}
        engine.dispose()
    finally:
        redis_server.close()
        pg.close()


@pytest.fixture
def world(backends: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """This test's own Redis prefix and external_ref prefix; every process it started is ended."""
    import redis

    prefix = "f" + uuid.uuid4().hex[:8] + ":"
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, name: str) -> subprocess.Popen[bytes]:
        out = (tmp_path / f"{name}.out").open("wb")
        err = (tmp_path / f"{name}.err").open("wb")
        proc = subprocess.Popen([*CLI, *args], env={**backends["env"], "YIWANG_REDIS_PREFIX": prefix},  # noqa: S603
                                stdout=out, stderr=err, cwd=tmp_path)
        procs.append(proc)
        return proc

    client = redis.Redis.from_url(backends["redis_url"])
    yield {**backends, "prefix": prefix, "ref": "R" + uuid.uuid4().hex[:6], "start": start, "redis": client,
           "tmp": tmp_path}
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)
    client.close()


def _write_csv(path: Path, ref: str, n: int) -> Path:
    from keys.identifiers import resident_id_check_character

    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["external_ref", "holder_code", "holder_name", *FIELDS])
        w.writeheader()
        for i in range(n):
            first17 = f"11010119900101{i:03d}"
            w.writerow({"external_ref": f"{ref}-{i}", "holder_code": first17 + resident_id_check_character(first17),
                        "holder_name": "王小明", **FIELDS})
    return path


def _job_id(engine: sa.Engine, source: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as c:
            job = c.execute(sa.text("SELECT id FROM cert_batch_jobs WHERE source = :s"), {"s": str(source)}).scalar()
        if job is not None:
            return int(job)
        time.sleep(0.05)
    raise AssertionError("issue-batch created no job")


def _done(engine: sa.Engine, job: int) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.text("SELECT count(*) FROM cert_batch_rows WHERE job_id = :j AND state <> 'pending'"),
                             {"j": job}).scalar_one())


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll until ``predicate()``; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _assert_true_end_state(engine: sa.Engine, job: int, ref: str, results: Path) -> None:
    """Exactly ROWS certificates for the job's references, the job finished, the results file = SQL."""
    with engine.connect() as c:
        certs = c.execute(sa.text("SELECT external_ref, identifier FROM certificates WHERE external_ref LIKE :p"),
                          {"p": f"{ref}-%"}).all()
        finished, total = c.execute(sa.text("SELECT finished_at, total FROM cert_batch_jobs WHERE id = :j"),
                                    {"j": job}).one()
        rows = c.execute(sa.text("SELECT row_no, state, identifier FROM cert_batch_rows WHERE job_id = :j "
                                 "ORDER BY row_no"), {"j": job}).all()
    assert len(certs) == ROWS, f"{len(certs)} certificates for {ROWS} rows"
    assert len({r for r, _ in certs}) == ROWS and len({i for _, i in certs}) == ROWS  # none twice
    assert total == ROWS and finished is not None
    assert {s for _, s, _ in rows} <= {"issued", "existing"}  # existing: issued by the killed worker's last row
    assert sorted(i for _, _, i in rows) == sorted(i for _, i in certs)
    with results.open(encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    assert [(int(r["row"]), r["state"], r["identifier"]) for r in report] == [tuple(r) for r in rows]


def test_issue_batch_waits_through_a_killed_worker_and_reports_the_truth(world: dict[str, Any]) -> None:
    engine, tmp = world["engine"], world["tmp"]
    source = _write_csv(tmp / "k.csv", world["ref"], ROWS)
    results = tmp / "k.results.csv"
    t0 = time.monotonic()
    batch = world["start"]("issue-batch", str(source), "--type", "JZZM", "--issuer", PSB, "--workers", "1",
                           "--wait", "60", "--results", str(results), name="issue-batch")
    job = _job_id(engine, source)
    worker = _wait_for(lambda: bool(_children(batch.pid)), 30, "issue-batch starting its worker")
    assert worker
    (child,) = _children(batch.pid)
    _wait_for(lambda: _done(engine, job) >= ROWS * 3 // 10, 60, "30 % of the rows done", step=0.01)
    os.kill(child, signal.SIGKILL)
    t_kill = time.monotonic()
    done_at_kill = _done(engine, job)

    assert batch.wait(timeout=120) == 0, (tmp / "issue-batch.err").read_text()
    t_end = time.monotonic()
    err = (tmp / "issue-batch.err").read_text()
    out = (tmp / "issue-batch.out").read_text()
    assert "a batch worker ended (exit -9) with rows pending: starting another" in err
    assert f"results in {results}" in out and "pending" not in out
    _assert_true_end_state(engine, job, world["ref"], results)
    print(f"\n[batch worker SIGKILL at {done_at_kill}/{ROWS} rows, {t_kill - t0:.1f} s in] issue-batch "
          f"restarted its worker and ended 0 after {t_end - t_kill:.1f} s more (requeue bound {BOUND:g} s)")

    status = subprocess.run([*CLI, "batch-status", str(job), "--json"], env={**world["env"]},  # noqa: S603
                            capture_output=True, text=True, timeout=60)
    shown = json.loads(status.stdout)
    assert shown["finished"] is True and shown["pending"] == 0
    assert shown["issued"] + shown["existing"] == ROWS and shown["failed"] == 0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_messages_held_by_a_killed_worker_come_back_within_the_bound(world: dict[str, Any]) -> None:
    engine, tmp, r = world["engine"], world["tmp"], world["redis"]
    ns = f"{world['prefix']}certstore-dramatiq"
    a = world["start"]("batch-worker", name="worker-a")
    b = world["start"]("batch-worker", name="worker-b")
    ids = {}
    for name, _proc in (("worker-a", a), ("worker-b", b)):
        _wait_for(lambda n=name: "started" in (tmp / f"{n}.err").read_text(), 60, f"{name} starting")
        ids[name] = re.search(r"batch worker (\S+) started", (tmp / f"{name}.err").read_text()).group(1)

    source = _write_csv(tmp / "h.csv", world["ref"], ROWS)
    results = tmp / "h.results.csv"
    batch = world["start"]("issue-batch", str(source), "--type", "JZZM", "--issuer", PSB, "--workers", "0",
                           "--wait", "60", "--results", str(results), name="issue-batch")
    job = _job_id(engine, source)
    held_key = f"{ns}:__acks__.{ids['worker-a']}.certstore-batch"
    _wait_for(lambda: _done(engine, job) >= ROWS * 3 // 10 and r.scard(held_key) > 0, 60, "30 % done, A holding",
              step=0.01)
    os.kill(a.pid, signal.SIGKILL)
    t_kill = time.monotonic()
    a.wait(timeout=10)

    held = [m.decode() for m in r.smembers(held_key)]
    assert held, "the killed worker held no message: the test proves nothing"
    held_rows = [row for m in held for row in json.loads(r.hget(f"{ns}:certstore-batch.msgs", m))["args"][1]]

    t_back = _wait_for(lambda: not r.exists(held_key), BOUND + 10, "the held messages going back on the queue")

    def held_rows_done() -> bool:
        with engine.connect() as c:
            return not c.execute(sa.text("SELECT count(*) FROM cert_batch_rows WHERE job_id = :j AND state = "
                                         "'pending' AND row_no = ANY(:rows)"), {"j": job, "rows": held_rows}).scalar()

    t_rows = _wait_for(held_rows_done, 60, "worker B issuing the held rows")
    assert batch.wait(timeout=120) == 0, (tmp / "issue-batch.err").read_text()
    print(f"\n[batch worker SIGKILL holding {len(held)} messages ({len(held_rows)} rows)] back on the queue after "
          f"{t_back - t_kill:.2f} s (bound {BOUND:g} s), issued by the other worker {t_rows - t_kill:.2f} s "
          f"after the kill")
    assert t_back - t_kill <= BOUND + MARGIN
    _assert_true_end_state(engine, job, world["ref"], results)
    assert b.poll() is None  # the surviving worker goes on


def test_a_worker_stopped_with_sigterm_hands_back_what_it_holds_at_once(world: dict[str, Any]) -> None:
    engine, tmp, r = world["engine"], world["tmp"], world["redis"]
    ns = f"{world['prefix']}certstore-dramatiq"
    a = world["start"]("batch-worker", name="worker-a")
    b = world["start"]("batch-worker", name="worker-b")
    for name in ("worker-a", "worker-b"):
        _wait_for(lambda n=name: "started" in (tmp / f"{n}.err").read_text(), 60, f"{name} starting")
    a_id = re.search(r"batch worker (\S+) started", (tmp / "worker-a.err").read_text()).group(1)
    held_key = f"{ns}:__acks__.{a_id}.certstore-batch"

    source = _write_csv(tmp / "t.csv", world["ref"], ROWS)
    results = tmp / "t.results.csv"
    batch = world["start"]("issue-batch", str(source), "--type", "JZZM", "--issuer", PSB, "--workers", "0",
                           "--wait", "60", "--results", str(results), name="issue-batch")
    job = _job_id(engine, source)
    _wait_for(lambda: _done(engine, job) >= ROWS * 3 // 10 and r.scard(held_key) > 0, 60, "30 % done, A holding")
    held_then = r.scard(held_key)
    a.send_signal(signal.SIGTERM)
    t_term = time.monotonic()
    assert a.wait(timeout=20) == 0
    t_exit = time.monotonic()
    # A was alive until now, so no maintenance took its messages: it handed them back itself.
    assert not r.exists(held_key)
    assert batch.wait(timeout=120) == 0, (tmp / "issue-batch.err").read_text()
    print(f"\n[batch worker SIGTERM holding {held_then} messages] it finished its rows in hand and handed the "
          f"rest back as it exited, {t_exit - t_term:.2f} s after the signal")
    _assert_true_end_state(engine, job, world["ref"], results)
    assert b.poll() is None
