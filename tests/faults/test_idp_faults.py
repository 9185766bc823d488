"""The idp through crashes and outages (issue 20 §1, §5, §6, §7), on a private PostgreSQL and Redis.

Real processes: ``idp serve`` (granian) and ``idp worker`` run as
subprocesses against the private instances; the test process holds the same
database and Redis through the composition root (:class:`idp.container.Container`)
to hand out the first refresh tokens, start sessions and read what happened.
Faults are injected at the named seams of :mod:`idp.faults`
(``YIWANG_FAULT_POINTS``), by stopping Redis, or by signals.

Run with ``-s`` to see what was measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from tests.support.private_services import PrivatePostgres, PrivateRedis, free_port, pg_bin

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(pg_bin("initdb") is None, reason="needs the PostgreSQL server binaries"),
]

IDP = str(Path(sys.executable).parent / "idp")
REPO = Path(__file__).resolve().parents[2]
ID_NUMBER = "11010519491231002X"
BOUND = 3.0
"""The logout queue's requeue bound the worker test configures (seconds)."""
MARGIN = 1.5
"""Polling and scheduling slack on top of a bound."""


# ------------------------------------------------------------------ support


class _Receiver(BaseHTTPRequestHandler):
    """A relying party's back-channel logout endpoint: records each POST and its arrival time."""

    arrivals: list[tuple[float, bytes]]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.arrivals.append((time.monotonic(), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _idp(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([IDP, *args], env=env, input=stdin, capture_output=True, text=True,  # noqa: S603
                          timeout=180, cwd=REPO)
    assert done.returncode == 0, f"idp {' '.join(args[:2])}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Private PostgreSQL and Redis (AOF), an initialised idp home, a citizen and a client, a receiver."""
    from idp.container import Container
    from idp.settings import IdpSettings

    pg = PrivatePostgres().init()
    redis_server = PrivateRedis(appendonly=True)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.arrivals = []  # type: ignore[attr-defined]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    stack = None
    try:
        pg.start()
        redis_server.start()
        tmp = tmp_path_factory.mktemp("idp-faults")
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")}
        env = {
            **base,
            "YIWANG_HOME": str(tmp / "home"),
            "YIWANG_DATABASE_URL": pg.url,
            "YIWANG_REDIS_URL": redis_server.url,
            "YIWANG_REDIS_PREFIX": "faults:",
            "YIWANG_ISSUER": f"http://127.0.0.1:{port}",
            "YIWANG_LOG_LEVEL": "info",
            "YIWANG_IDP_LOGOUT_TIMEOUT_SECONDS": "1",
            "YIWANG_IDP_QUEUE_REQUEUE_SECONDS": str(BOUND),
            "PYTHONUNBUFFERED": "1",
        }
        _idp(env, "init")
        _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin",
             stdin="fault-suite-password\n")
        client = json.loads(_idp(
            env, "clients", "add", "--name", "Fault RP", "--redirect-uri", "http://127.0.0.1:9/cb",
            "--grant-type", "authorization_code", "--grant-type", "refresh_token",
            "--scope", "openid", "--scope", "profile", "--scope", "offline_access", "--first-party",
            "--backchannel-logout-uri", f"http://127.0.0.1:{receiver.server_address[1]}/backchannel",
            "--json",
        ))
        stack = Container.from_settings(IdpSettings.from_env(env))
        citizen = stack.services.accounts.find_by_id_number(ID_NUMBER)
        yield {"env": env, "port": port, "base": f"http://127.0.0.1:{port}", "pg": pg, "redis": redis_server,
               "client": client, "stack": stack, "citizen": citizen, "receiver": receiver, "tmp": tmp}
    finally:
        if stack is not None:
            stack.close()
        receiver.shutdown()
        redis_server.close()
        pg.close()


@contextmanager
def serving(world: dict[str, Any], name: str, **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``idp serve`` on the issuer's port until the block ends (its whole process group stopped)."""
    log = (world["tmp"] / f"{name}.log").open("wb")
    proc = subprocess.Popen([IDP, "serve", "--port", str(world["port"])], env={**world["env"], **extra_env},  # noqa: S603
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    try:
        _wait_healthy(world, proc, name)
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _wait_port_free(world["port"])


def _wait_healthy(world: dict[str, Any], proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> float:
    """Seconds until ``/healthz`` answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited: {(world['tmp'] / f'{name}.log').read_text()[-3000:]}")
        with suppress(requests.RequestException):
            if requests.get(f"{world['base']}/healthz", timeout=2).status_code == 200:
                return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{name} did not answer: {(world['tmp'] / f'{name}.log').read_text()[-3000:]}")


def _wait_port_free(port: int, timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)


def _issue(world: dict[str, Any], *, scope: str = "openid offline_access", sid: str | None = None) -> str:
    """A first refresh token, issued in-process as the authorization-code grant would (same DB and Redis)."""
    from idp.oauth.provider import GrantUser

    provider = world["stack"].provider
    client = provider.query_client(world["client"]["client_id"])
    citizen = world["citizen"]
    user = GrantUser(citizen_id=citizen.id, public_id=citizen.public_id, sid=sid, auth_time=int(time.time()),
                     acr="1", amr=["pwd"], citizen=citizen)
    token = provider.generate_token("authorization_code", client, user=user, scope=scope)
    provider.save_token(token, SimpleNamespace(payload=SimpleNamespace(grant_type="authorization_code"),
                                               client=client))
    return str(token["refresh_token"])


def _refresh(world: dict[str, Any], token: str, timeout: float = 10) -> requests.Response:
    c = world["client"]
    return requests.post(f"{world['base']}/token", data={"grant_type": "refresh_token", "refresh_token": token},
                         auth=(c["client_id"], c["client_secret"]), timeout=timeout)


def _sql(world: dict[str, Any], statement: str) -> str:
    return str(world["pg"].sql(statement))


def _jti(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _revoked_in_family(world: dict[str, Any], token: str) -> int:
    family = _sql(world, f"SELECT family_id FROM token WHERE jti = '{_jti(token)}'")  # noqa: S608 - hex digest
    return int(_sql(world, f"SELECT count(*) FROM token WHERE family_id = '{family}' AND revoked_at IS NOT NULL"))  # noqa: S608


# --------------------------------------------------- §1 and §7: a refresh killed half-way


def _burst(world: dict[str, Any], tokens: list[str]) -> list[int | None]:
    """Refresh every token at once on one web worker: the status of each answer, ``None`` if none came.

    The connections are opened (and taken by the worker) before any request
    is sent, so that when one request kills the worker every request is in
    it — as a refresh loop of several clients is when the process dies.
    """
    import base64
    import socket
    from urllib.parse import urlencode

    c = world["client"]
    auth = base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
    socks = [socket.create_connection(("127.0.0.1", world["port"]), timeout=15) for _ in tokens]
    time.sleep(0.3)
    for sock, token in zip(socks, tokens, strict=True):
        body = urlencode({"grant_type": "refresh_token", "refresh_token": token})
        sock.sendall((f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{world['port']}\r\n"
                      f"Authorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
    out: list[int | None] = []
    for sock in socks:
        try:
            head = sock.recv(65536)
        except OSError:
            head = b""
        sock.close()
        out.append(int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None)
    return out


@pytest.mark.parametrize("seam", ["refresh.after_consume", "refresh.after_store"])
def test_a_refresh_killed_half_way_is_retried_and_the_family_lives(world: dict[str, Any], seam: str) -> None:
    chains = [_issue(world) for _ in range(4)]
    with serving(world, "serve-before"):
        for i in range(len(chains)):  # a refresh loop: each chain rotates twice
            for _ in range(2):
                resp = _refresh(world, chains[i])
                assert resp.status_code == 200, resp.text
                chains[i] = resp.json()["refresh_token"]

    # The web worker dies at the seam under the burst; granian respawns it by itself (§7).
    with serving(world, f"serve-{seam}", YIWANG_FAULT_POINTS=seam) as proc:
        answers = _burst(world, chains)
        respawned = _wait_healthy(world, proc, f"serve-{seam}")
    assert None in answers and set(answers) <= {None, 200}, answers  # no answer, or a whole one
    parents = "','".join(_jti(t) for t, a in zip(chains, answers, strict=True) if a is None)
    taken = set(_sql(world, f"SELECT jti FROM token WHERE jti IN ('{parents}') AND consumed_at IS NOT NULL").split())  # noqa: S608
    consumed = len(taken)
    children = int(_sql(world, f"SELECT count(*) FROM token WHERE parent_jti IN ('{parents}')"))  # noqa: S608
    assert consumed >= 1  # at least one died after its token was consumed: the case that revoked families
    if seam == "refresh.after_store":
        assert children >= 1  # and its child was stored but never delivered
    print(f"\n[{seam}] {answers.count(None)} of {len(chains)} refreshes died with the web worker "
          f"({consumed} after consuming their token, {children} undelivered children); "
          f"granian respawned the worker, healthy again {respawned:.2f} s later")

    with serving(world, "serve-after"):  # restarted without the fault
        newest = []
        for parent, answer in zip(chains, answers, strict=True):
            if answer == 200:
                continue  # that client got its answer (the worker died after sending it)
            # The client retries the last token it holds, which it never saw replaced.
            resp = _refresh(world, parent)
            assert resp.status_code == 200, resp.text
            child = resp.json()["refresh_token"]
            others = _sql(world, "SELECT count(*) = count(revoked_at) FROM token WHERE kind = 'refresh' "  # noqa: S608
                                 f"AND parent_jti = '{_jti(parent)}' AND jti <> '{_jti(child)}'")
            assert others == "t"  # every never-delivered child is revoked: one live chain
            resp = _refresh(world, child)  # the family lives: the new token works
            assert resp.status_code == 200, resp.text
            newest.append((parent, resp.json()["refresh_token"]))

        # A real replay: a parent consumed when the worker died, once more after its retry succeeded.
        parent, latest = next((p, t) for p, t in newest if _jti(p) in taken)
        newest.remove((parent, latest))
        replay = _refresh(world, parent)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert _refresh(world, latest).json()["error"] == "invalid_grant"  # the family is revoked
        deadline = time.monotonic() + 5
        while _sql(world, "SELECT count(*) FROM audit_event WHERE kind = 'token.refresh_reuse'") == "0":
            assert time.monotonic() < deadline, "no token.refresh_reuse audit record"
            time.sleep(0.1)
        for _parent, token in newest:  # the other families are untouched
            assert _refresh(world, token).status_code == 200


# --------------------------------------------------- §1, §6: Redis stopped


def test_redis_stopped_during_a_refresh_is_a_503_and_revokes_nothing(world: dict[str, Any]) -> None:
    stack = world["stack"]
    session, _cookie = stack.sessions.create(str(world["citizen"].id), int(time.time()), "1", ["pwd"], "web",
                                             "127.0.0.1", "fault-suite")
    token = _issue(world, scope="openid profile", sid=session.sid)  # session-bound: the refresh reads the session
    with serving(world, "serve-redis"):
        world["redis"].stop()  # SIGTERM: with AOF (appendfsync always) the session survives
        try:
            for _ in range(3):  # a client retrying through the outage
                resp = _refresh(world, token)
                assert resp.status_code == 503, resp.text
                assert resp.headers["Content-Type"].startswith("application/problem+json")
                assert resp.headers.get("Retry-After")
            assert _revoked_in_family(world, token) == 0
            assert _sql(world, f"SELECT consumed_at IS NULL FROM token WHERE jti = '{_jti(token)}'") == "t"  # noqa: S608
        finally:
            world["redis"].start()
        back = time.monotonic()
        while True:
            resp = _refresh(world, token)
            if resp.status_code != 503:
                break
            assert time.monotonic() - back < 10, "no recovery within 10 s of Redis accepting connections"
            time.sleep(0.01)
        recovered = time.monotonic() - back
        assert resp.status_code == 200, resp.text
        assert _refresh(world, resp.json()["refresh_token"]).status_code == 200
    print(f"\n[redis stopped] refresh: 503 during the outage, the same token worked {recovered:.3f} s "
          "after Redis accepted connections again; nothing revoked")


def test_authorize_in_a_browser_during_a_redis_outage_is_the_error_page(world: dict[str, Any]) -> None:
    params = {"response_type": "code", "client_id": world["client"]["client_id"],
              "redirect_uri": "http://127.0.0.1:9/cb", "scope": "openid", "state": "s",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    with serving(world, "serve-authorize"):
        world["redis"].stop()
        try:
            page = requests.get(f"{world['base']}/authorize", params=params, timeout=10, allow_redirects=False,
                                headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
                                         "Accept-Language": "zh-CN,zh;q=0.9"})
            api = requests.get(f"{world['base']}/authorize", params=params, timeout=10, allow_redirects=False,
                               headers={"Accept": "application/json"})
        finally:
            world["redis"].start()
    assert page.status_code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers.get("Retry-After")
    assert "服务暂时不可用" in page.text and "Traceback" not in page.text
    assert api.status_code == 503 and api.headers["Content-Type"].startswith("application/problem+json")


# --------------------------------------------------- §5: a worker killed holding a logout job


def test_a_worker_killed_holding_a_logout_job_gives_it_back_within_the_bound(world: dict[str, Any]) -> None:
    import redis

    r = redis.Redis.from_url(world["redis"].url)
    beats = "faults:dramatiq:__heartbeats__"
    procs: list[subprocess.Popen[bytes]] = []

    def worker(name: str, **extra: str) -> subprocess.Popen[bytes]:
        before = r.zcard(beats)
        log = (world["tmp"] / f"{name}.log").open("wb")
        proc = subprocess.Popen([IDP, "worker", "--threads", "2"], env={**world["env"], **extra},  # noqa: S603
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while r.zcard(beats) <= before:  # its broker stamped a heartbeat: it is consuming
            assert proc.poll() is None and time.monotonic() < deadline, (world["tmp"] / f"{name}.log").read_text()
            time.sleep(0.05)
        return proc

    try:
        survivor = worker("worker-b")
        os.kill(survivor.pid, signal.SIGSTOP)  # so that the doomed worker is the one that fetches the job
        doomed = worker("worker-a", YIWANG_FAULT_POINTS="logout.after_fetch")

        stack, arrivals = world["stack"], world["receiver"].arrivals
        arrivals.clear()
        session, _cookie = stack.sessions.create(str(world["citizen"].id), int(time.time()), "1", ["pwd"], "web",
                                                 "127.0.0.1", "fault-suite")
        stack.sessions.add_client(session.sid, world["client"]["client_id"])
        assert stack.sessions.end(session.sid, "logout") is not None  # the delivery is recorded and queued
        doomed.wait(timeout=30)
        died = time.monotonic()
        assert doomed.returncode == -signal.SIGKILL  # killed at the seam, holding the job and its lock
        os.kill(survivor.pid, signal.SIGCONT)

        while not arrivals:
            assert time.monotonic() - died < BOUND + MARGIN + 5, "the delivery did not arrive"
            time.sleep(0.02)
        waited = arrivals[0][0] - died
        time.sleep(1.0)  # exactly once: nothing else arrives
        assert len(arrivals) == 1
        status = world["pg"].sql(f"SELECT status FROM logout_delivery WHERE sid = '{session.sid}'")  # noqa: S608
        assert status == "delivered"
        print(f"\n[worker SIGKILLed holding a logout job] delivered by the other worker {waited:.2f} s after "
              f"the kill (bound {BOUND:g} s)")
        assert waited <= BOUND + MARGIN
    finally:
        for proc in procs:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        r.close()


def test_every_seam_is_documented() -> None:
    import idp.faults

    for seam in idp.faults.SEAMS:
        assert f"``{seam}``" in (idp.faults.__doc__ or "")


def test_a_requeued_delivery_whose_lock_a_dead_worker_holds_comes_back_when_it_frees(tmp_path: Path) -> None:
    # In-process: the job the broker gave back finds the dead worker's lock and is
    # re-sent to run once the lock has expired, instead of dropping out (it used to,
    # and the delivery then waited for the recovery sweep).
    import fakeredis

    from idp.logout.queue import JobQueue, delivery_lock_ms
    from idp.settings import IdpSettings

    settings = IdpSettings.from_env({"YIWANG_HOME": str(tmp_path / "home")})
    attempts: list[str] = []
    handlers = SimpleNamespace(attempt=attempts.append, sweep=lambda: None)
    r = fakeredis.FakeRedis()
    queue = JobQueue(settings, handlers, redis=r, prefix="t:")
    try:
        r.set("t:logout:job:7:lock", "1", px=delivery_lock_ms(settings))  # held by a worker that died
        queue._deliver("7")
        assert attempts == []
        delayed = queue.broker.queues["idp.DQ"]  # type: ignore[attr-defined]
        assert delayed.qsize() == 1
        eta = json.loads(delayed.get())["options"]["eta"]
        assert 0 < eta / 1000 - time.time() <= delivery_lock_ms(settings) / 1000 + 0.2
        r.delete("t:logout:job:7:lock")  # free: the job attempts the delivery
        queue._deliver("7")
        assert attempts == ["7"]
    finally:
        queue.close()
