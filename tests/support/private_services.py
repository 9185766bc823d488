"""PostgreSQL and Redis instances of the fault suite's own, on loopback.

The fault tests stop, restart and break these on purpose, so they never touch
the shared instances on 5432/6379 that the rest of the suite (and other
processes on the machine) use. Each instance lives in a temporary directory
and on a free port, and is torn down at the end of its fixture.

PostgreSQL refuses to run as root, so when the tests run as root (CI, this
machine) the cluster is created and started as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "pg_bin"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str | None:
    """The PostgreSQL server binary ``name`` (initdb, pg_ctl), on PATH or in Debian's versioned dir."""
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivatePostgres:
    """A throw-away cluster: ``start``, ``restart(mode)``, ``read_only(on)``, ``stop``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="yiwang-pg-"))
        self.data = self.dir / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_user, *argv], capture_output=True, text=True, check=check,  # noqa: S603
                              timeout=120)

    def init(self) -> PrivatePostgres:
        initdb = pg_bin("initdb")
        if initdb is None:
            raise RuntimeError("initdb not found (Debian package postgresql)")
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        with (self.data / "postgresql.conf").open("a") as f:
            # Loopback only, a socket dir we own, and no fsync: the faults are
            # process-level (restart, read-only), not power loss.
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                    "max_connections = 60\nshared_buffers = 32MB\n")
        return self

    def start(self) -> None:
        self._run(pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")
        _wait(lambda: _accepts(self.port), 30, "PostgreSQL accepting connections")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        """``fast`` ends sessions cleanly; ``immediate`` is a crash (recovery on the next start)."""
        self.stop(mode)
        self.start()

    def sql(self, statement: str) -> str:
        psql = shutil.which("psql") or "psql"
        done = self._run(psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                         "-Atc", statement)
        return done.stdout.strip()

    def read_only(self, on: bool) -> None:
        """Every new transaction read-only (as on a replica after a failover), existing ones too."""
        self.sql(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
        self.sql("SELECT pg_reload_conf()")
        if on:
            # Pooled connections keep their session default; end them so the
            # setting reaches every connection, as a failover would.
            self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throw-away redis-server: ``start``, ``stop`` (SIGTERM or SIGKILL), ``restart``."""

    def __init__(self, *, appendonly: bool = False) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="yiwang-redis-"))
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        _wait(lambda: _accepts(self.port), 20, "Redis accepting connections")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=20)
        self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)
