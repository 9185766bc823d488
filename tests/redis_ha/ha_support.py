"""A Sentinel set of a test's own on loopback: a primary, a replica, three sentinels.

The failover test kills its primary; the shared set of .ci/prepare is never
touched. Fast timing so that a failover takes about two seconds:
``down-after-milliseconds 500``, ``failover-timeout 3000``.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.private_services import free_port

__all__ = ["PrivateSentinelSet", "PrivateCluster"]

SERVICE = "ha-failover"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001,S110 - not there yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],  # noqa: S603,S607
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


class PrivateSentinelSet:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="yiwang-sentinel-"))
        self.primary = free_port()
        self.replica = free_port()
        self.sentinels = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0?wait=1&wait_ms=200"

    def _server(self, port: int, *extra: str) -> None:
        data = self.dir / str(port)
        data.mkdir()
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
                "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", *extra]
        self.procs[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603

    def start(self) -> PrivateSentinelSet:
        self._server(self.primary)
        self._server(self.replica, "--replicaof", "127.0.0.1", str(self.primary))
        _wait(lambda: "master_link_status:up" in _cli(self.replica, "info", "replication"), 20, "replication")
        # Each sentinel is told its id, the others and the replica up front: discovering
        # them through hello messages takes several 2-second rounds.
        ids = {port: secrets.token_hex(20) for port in self.sentinels}
        for port in self.sentinels:
            conf = self.dir / f"sentinel-{port}.conf"
            known = "".join(f"sentinel known-sentinel {SERVICE} 127.0.0.1 {other} {ids[other]}\n"
                            for other in self.sentinels if other != port)
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\nsentinel myid {ids[port]}\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary} 2\n"
                            f"sentinel down-after-milliseconds {SERVICE} 500\n"
                            f"sentinel failover-timeout {SERVICE} 3000\n"
                            f"sentinel known-replica {SERVICE} 127.0.0.1 {self.replica}\n{known}")
            self.procs[port] = subprocess.Popen(["redis-server", str(conf), "--sentinel"],  # noqa: S603,S607
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in self.sentinels:  # every sentinel has found the replica and the other sentinels
            _wait(lambda p=port: "num-slaves" in _cli(p, "sentinel", "master", SERVICE)
                  and _sentinel_field(p, "num-slaves") == "1" and int(_sentinel_field(p, "num-other-sentinels") or 0) >= 1,
                  20, "sentinel discovery")
        return self

    def current_primary(self) -> int:
        return int(_cli(self.sentinels[0], "sentinel", "get-master-addr-by-name", SERVICE).split()[-1])

    def kill_primary(self) -> int:
        """SIGKILL the primary (no shutdown, no save): what a lost machine looks like."""
        port = self.current_primary()
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(timeout=10)
        return port

    def wait_for_promotion(self, old: int, timeout: float = 20) -> int:
        _wait(lambda: self.current_primary() != old
              and "role:master" in _cli(self.current_primary(), "info", "replication"), timeout, "promotion")
        return self.current_primary()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000) is free and valid too."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    out: list[int] = []
    while len(out) < n:
        port = random.randint(20000, 50000)  # noqa: S311 - a port, not a secret
        if port not in out and free(port) and free(port + 10000):
            out.append(port)
    return out


def _sentinel_field(port: int, name: str) -> str:
    lines = _cli(port, "sentinel", "master", SERVICE).splitlines()
    pairs = dict(zip(lines[::2], lines[1::2], strict=False))
    return pairs.get(name, "")


class PrivateCluster:
    """A Redis Cluster of a test's own: three primaries, each with a replica (``cluster-node-timeout 1000``)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="yiwang-cluster-"))
        self.ports = _cluster_ports(6)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3]) + "?wait=1&wait_ms=200"

    def start(self) -> PrivateCluster:
        for port in self.ports:
            data = self.dir / str(port)
            data.mkdir()
            argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no",
                    "--repl-diskless-sync-delay", "0"]
            self.procs[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        for port in self.ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG", 20, "cluster node")
        done = subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),  # noqa: S603,S607
                               "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-500:] + done.stderr[-500:])
        for port in self.ports:
            _wait(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"), 30, "cluster state ok")
        _wait(lambda: _cli(self.ports[0], "cluster", "nodes").count("connected") == 6
              and len(self.replicas_online()) == 3, 30, "replicas in sync")
        return self

    def replicas_online(self) -> list[int]:
        out = []
        for port in self.ports:
            info = _cli(port, "info", "replication")
            if "role:slave" in info and "master_link_status:up" in info:
                out.append(port)
        return out

    def kill(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(timeout=10)

    def primaries(self) -> list[int]:
        return [p for p in self.ports if self.procs[p].poll() is None and "role:master" in _cli(p, "info", "replication")]

    def kill_primary(self) -> int:
        """SIGKILL the first primary (the same interface as :class:`PrivateSentinelSet`)."""
        port = self.primaries()[0]
        self.kill(port)
        return port

    def wait_for_promotion(self, old: int, timeout: float = 30) -> int:
        """Until a replica has taken over the dead primary's slots and the cluster is whole again."""
        alive = [p for p in self.ports if p != old]
        _wait(lambda: len(self.primaries()) == 3
              and all("cluster_state:ok" in _cli(p, "cluster", "info") for p in alive), timeout, "cluster failover")
        return self.primaries()[0]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
