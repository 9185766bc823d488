"""Issue 6's batch-issuance figure for ``make bench``: 10,000 certificates with 1 and 2 workers.

``python -m benchmarks.batch [--count N] [--database-url URL] [--redis-url URL]``

Runs ``certstore issue-batch`` exactly as an operator would — a fresh home
and schema, ``certstore init --demo``, a CSV of N residence certificates —
once with ``--workers 1`` and once with ``--workers 2`` (different
``external_ref``s, same database), and prints each throughput and their ratio.
Both runs use the Dramatiq queue on Redis with worker processes, so the only
difference is the number of workers. It needs PostgreSQL and Redis (defaults:
the local ones ``make test`` uses); without Redis it measures the inline run
only and says so.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["main"]

PSB = "111101050000000017"
FIELDS = {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01", "purpose": "入学"}


def _ids(n: int, offset: int) -> list[str]:
    from keys.identifiers import resident_id_check_character

    out = []
    for k in range(offset, offset + n):
        first17 = f"110101{1950 + k % 60}{1 + k % 12:02d}{1 + k % 28:02d}{k % 1000:03d}"
        out.append(first17 + resident_id_check_character(first17))
    return out


def _csv(path: Path, n: int, prefix: str, offset: int) -> None:
    cols = ["external_ref", "holder_code", "holder_name", "paper_serial", *FIELDS]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for i, hid in enumerate(_ids(n, offset)):
            w.writerow([f"{prefix}-{i}", hid, "张三丰", f"P{prefix}{i}", *FIELDS.values()])


def _reachable_redis(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def _pg_schema(url: str) -> tuple[str, str]:
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    return schema, f"{url}{sep}options=-csearch_path%3D{schema}"


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _certstore(env: dict[str, str], *args: str) -> str:
    cmd = [sys.executable, "-c", "from certstore.cli import main; main()", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - fixed command
    if res.returncode != 0:
        raise RuntimeError(f"certstore {' '.join(args[:1])} failed: {res.stderr.strip()[-500:]}")
    return res.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("YIWANG_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("YIWANG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    redis_ok = _reachable_redis(args.redis_url)
    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")}
        env.update({"YIWANG_HOME": str(home / "home"), "YIWANG_ISSUER": "http://127.0.0.1:5000"})
        if args.database_url.startswith("postgresql"):
            schema, url = _pg_schema(args.database_url)
            env["YIWANG_DATABASE_URL"] = url
            env["YIWANG_CERTSTORE_PADES_LEVEL"] = "B-B"  # the issue-6 figure is B-B; no TSA here
        if redis_ok:
            env["YIWANG_REDIS_URL"] = args.redis_url
            env["YIWANG_REDIS_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}:"
        try:
            _certstore(env, "init", "--demo")
            rates: dict[int, float] = {}
            for workers in ((1, 2) if redis_ok else (1,)):
                path = home / f"w{workers}.csv"
                _csv(path, args.count, f"W{workers}", offset=workers * args.count)
                start = time.perf_counter()
                out = _certstore(env, "issue-batch", str(path), "--type", "JZZM", "--issuer", PSB, "--workers", str(workers))
                elapsed = time.perf_counter() - start
                rates[workers] = args.count / elapsed
                print(f"{workers} worker(s): {args.count:,} certificates in {elapsed:.1f} s = {rates[workers]:.1f}/s ({out.strip()[:60]})")
            if 2 in rates:
                print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (2 cores, shared with the database)")
            else:
                print("2 workers: skipped (no Redis reachable for the job queue)")
        finally:
            if schema is not None:
                _drop(args.database_url, schema)
            if redis_ok:
                import redis

                r = redis.Redis.from_url(args.redis_url)
                keys = list(r.scan_iter(match=env["YIWANG_REDIS_PREFIX"] + "*"))
                if keys:
                    r.delete(*keys)


if __name__ == "__main__":
    main()
