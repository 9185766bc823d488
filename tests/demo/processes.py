"""Start the idp and the demo portals for real, as subprocesses, for the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = ["free_port", "idp_cli", "Proc", "started", "Portal", "register_portal", "wait_http"]

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(command: str, env: dict[str, str], args: tuple[str, ...], stdin: str | None) -> str:
    res = subprocess.run(  # noqa: S603
        [str(VENV_BIN / command), *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True,
        timeout=120, cwd=REPO,
    )
    assert res.returncode == 0, f"{command} {' '.join(args)} failed: {res.stderr[-2000:]}"
    return res.stdout


def idp_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run ``idp …`` and return its standard output; fail the test on a non-zero exit."""
    return _cli("idp", env, args, stdin)


def certstore_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run ``certstore …`` and return its standard output; fail the test on a non-zero exit."""
    return _cli("certstore", env, args, stdin)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def signal_group(self, sig: int) -> None:
        """Signal the whole process group: ``idp serve`` forks granian workers that
        outlive a killed supervisor (they were left running after the suite)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def wait_http(url: str, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited: {proc.output()}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} did not answer at {url}: {proc.output()}")


@contextmanager
def started(specs: Sequence[tuple[str, list[str], dict[str, str], str | None]], logdir: Path) -> Iterator[dict[str, Proc]]:
    """Start ``(name, argv, env, ready_url)`` processes; stop them all afterwards."""
    procs: dict[str, Proc] = {}
    try:
        for name, argv, env, ready in specs:
            log = logdir / f"{name}.log"
            fh = log.open("wb")
            popen = subprocess.Popen(  # noqa: S603
                argv, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=fh, stderr=subprocess.STDOUT,
                cwd=REPO, start_new_session=True,
            )
            procs[name] = Proc(name, popen, log)
            if ready:
                wait_http(ready, procs[name])
        yield procs
    finally:
        for p in procs.values():
            p.signal_group(signal.SIGTERM)  # also when the leader is gone and its workers are not
        for p in procs.values():
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.signal_group(signal.SIGKILL)
                p.popen.wait()


@dataclass
class Portal:
    name: str
    port: int
    client_id: str
    client_secret: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self, issuer: str) -> list[str]:
        return [sys.executable, "-m", "demo.portal", "--name", self.name, "--port", str(self.port),
                "--issuer", issuer, f"--client-id={self.client_id}", "--expose-state"]

    def state(self) -> dict:
        return dict(requests.get(f"{self.url}/_state", timeout=5).json())


def register_portal(env: dict[str, str], name: str, *, frontchannel: bool = False, extra: Sequence[str] = ()) -> Portal:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if frontchannel:
        extra = [*extra, "--frontchannel-logout-uri", f"{base}/frontchannel-logout"]
    out = idp_cli(
        env, "clients", "add", "--name", f"Portal {name}", "--redirect-uri", f"{base}/callback",
        "--post-logout-redirect-uri", f"{base}/", "--backchannel-logout-uri", f"{base}/backchannel-logout",
        "--scope", "openid", "--scope", "profile", "--first-party", *extra, "--json",
    )
    data = json.loads(out)
    return Portal(name, port, data["client_id"], data["client_secret"])
