"""Issue 4's logout fan-out figure for ``make bench``.

A session signed in to 50 clients ends; the time until all 50 back-channel
logout tokens are delivered, and deliveries/s, with 1 and 2 ``idp worker``
processes (Dramatiq on Redis) — see :mod:`benchmarks.logout_fanout`. Runs on a fresh
home, a throwaway PostgreSQL schema and its own Redis prefix; without Redis it
measures the in-process queue and says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks._proc import REDIS_URL, pg_schema

__all__ = ["main"]


def _redis_ok(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    from benchmarks.logout_fanout import _cpu_note, run
    from idp.settings import IdpSettings

    prefix = f"benchlogout{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as home, pg_schema("bench_logout") as db_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")},
            "YIWANG_HOME": str(Path(home) / "home"),
            "YIWANG_DATABASE_URL": db_url,
            "YIWANG_REDIS_PREFIX": prefix,
            "YIWANG_LOG_LEVEL": "warning",
        }
        have_redis = _redis_ok(REDIS_URL)
        if have_redis:
            env["YIWANG_REDIS_URL"] = REDIS_URL
        else:
            print("Redis not reachable: measuring the in-process queue only")
        subprocess.run(  # noqa: S603
            [str(Path(sys.executable).with_name("idp")), "init"], env=env, check=True, capture_output=True
        )
        settings = IdpSettings.from_env(env)
        try:
            results = run(settings, clients=50, rounds=3, env=env)
        finally:
            if have_redis:
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                keys = list(client.scan_iter(match=prefix + "*", count=1000))
                if keys:
                    client.delete(*keys)
    print("logout fan-out: one session signed in to 50 clients (median of 3)")
    for r in results:
        print(
            f"  {r['setup']:<18} all 50 logout tokens delivered in {r['seconds'] * 1000:7.1f} ms"
            f"  ({r['deliveries_per_s']:6.1f} deliveries/s)" + _cpu_note(r)
        )
    return results  # for make bench's closing table (benchmarks.summary)


if __name__ == "__main__":
    main()
