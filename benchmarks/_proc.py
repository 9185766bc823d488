"""Helpers for benchmarks that start real servers: free ports, waiting, schemas, clean-up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import requests

DATABASE_URL = os.environ.get(
    "YIWANG_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YIWANG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HAVE_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(argv: Sequence[str], core: int) -> list[str]:
    """``argv`` under ``taskset -c core`` where the machine has two cores."""
    return ["taskset", "-c", str(core), *argv] if HAVE_TASKSET else list(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last})")


@contextlib.contextmanager
def pg_schema(prefix: str = "bench") -> Iterator[str]:
    """A throwaway PostgreSQL schema; yields a SQLAlchemy URL that uses it."""
    import psycopg

    admin = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in DATABASE_URL else "?"
    try:
        yield f"{DATABASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def started(argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (in its own process group) and stop it afterwards."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own commands
            list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
