"""certstore through a database restart and a read-only database (issue 20 §2, §3), on a private PostgreSQL and Redis.

A real ``certstore serve`` answers an agency client that issues through the
API, each request with its own ``Idempotency-Key``. Between two known
requests the test stops PostgreSQL (``-m fast``, then ``-m immediate``: a
crash) or makes it read-only; the requests sent while it is away must all
be 503 problem+json ``service_unavailable`` with ``Retry-After`` (a browser
on the verify page gets the HTML 503 page), and after it is back each failed
request retried with its key gives exactly one certificate. At the end of
each test: certificates the client believes issued = certificate rows =
idempotency records = issuance audit events, and no status-list slot without
a certificate; the service log holds no traceback and at most one
"unavailable" and one "available again" line per outage.

A last test kills ``certstore issue`` at the seam ``issue.before_store``
(:mod:`certstore.faults`) and finds no slot left behind.

Run with ``-s`` to see the measured error windows and recovery times.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.certstore.conftest import DEMO_REQUESTS, issue_args, make_settings
from tests.demo.processes import Proc, free_port, started
from tests.support.private_services import PrivatePostgres, PrivateRedis, pg_bin

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(pg_bin("initdb") is None, reason="needs the PostgreSQL server binaries"),
]

CLI = [sys.executable, "-c", "from certstore.cli import main; main()"]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PER_PHASE = 3
"""Requests sent while the database is away (each must be a 503)."""
RECOVERY_LIMIT = 15.0
"""Seconds within which certstore must answer 2xx again once PostgreSQL is back."""


class _Idp(BaseHTTPRequestHandler):
    """The idp as certstore sees it: a discovery document and a JWKS."""

    jwks: dict[str, Any] = {}
    issuer = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/.well-known/openid-configuration":
            body = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks.json"}
        elif self.path == "/jwks.json":
            body = self.jwks
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class Agency:
    """The agency's client: what it sent, what it believes was issued."""

    base: str
    token: str
    issued: dict[str, str] = field(default_factory=dict)
    """Idempotency-Key → certificate identifier, for every 2xx the client got."""
    failed: list[str] = field(default_factory=list)
    n: int = 0

    def _post(self, key: str) -> requests.Response:
        body = dict(DEMO_REQUESTS["JZZM"]["body"], paper_serial=f"京朝居 2026 {key}")
        return requests.post(f"{self.base}/api/v1/certificates", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key})

    def issue(self) -> requests.Response:
        self.n += 1
        key = f"k{self.n:04d}"
        resp = self._post(key)
        if resp.status_code in (200, 201):
            self.issued[key] = resp.json()["identifier"]
        else:
            self.failed.append(key)
        return resp

    def retry_failed(self) -> None:
        """Each failed request again with its key: a new certificate, then the same one replayed."""
        for key in self.failed:
            first = self._post(key)
            assert first.status_code == 201, first.text
            again = self._post(key)
            assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
            assert again.json()["identifier"] == first.json()["identifier"]
            self.issued[key] = first.json()["identifier"]
        self.failed.clear()

    def get(self, identifier: str) -> requests.Response:
        return requests.get(f"{self.base}/api/v1/certificates/{identifier}", timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    def change(self, identifier: str, action: str) -> requests.Response:
        return requests.post(f"{self.base}/api/v1/certificates/{identifier}/status", timeout=30,
                             json={"action": action, "reason": "fault test"},
                             headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private PostgreSQL and Redis, a stand-in idp, the demo data, and ``certstore serve``."""
    from keys.jws import encode_jws
    from keys.keyring import open_keyring

    tmp = tmp_path_factory.mktemp("certstore-store-faults")
    keys = open_keyring(make_settings(tmp / "idp", "sqlite://").common.keys).keyset("idp-token")
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    handler = type("Idp", (_Idp,), {"jwks": keys.jwks(), "issuer": issuer})
    idp = ThreadingHTTPServer(("127.0.0.1", idp_port), handler)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    pg = PrivatePostgres().init()
    redis_server = PrivateRedis()
    try:
        pg.start()
        redis_server.start()
        base = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_") or k.startswith("YIWANG_TEST_")}
        env = {
            **base,
            "YIWANG_HOME": str(tmp / "home"),
            "YIWANG_DATABASE_URL": pg.url,
            "YIWANG_CERTSTORE_PADES_LEVEL": "B-B",  # no TSA here: the explicit opt-out (issue 15 §3)
            "YIWANG_REDIS_URL": redis_server.url,
            "YIWANG_ISSUER": issuer,
            "YIWANG_ALLOW_INSECURE_HTTP": "1",
        }
        done = subprocess.run([*CLI, "init", "--demo"], env=env, capture_output=True, text=True, timeout=180)  # noqa: S603
        assert done.returncode == 0, done.stderr
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        now = int(time.time())
        token = encode_jws(keys.active(), {
            "iss": issuer, "sub": "demo-psb", "aud": "certstore", "client_id": "demo-psb", "scope": "certs:issue",
            "jti": f"fault-{now}", "iat": now, "exp": now + 3600,
        }, typ="at+jwt")
        engine = sa.create_engine(pg.url, poolclass=sa.pool.NullPool)
        argv = [*CLI, "serve", "--port", str(port)]
        with started([("certstore", argv, env, f"{url}/healthz")], tmp) as procs:
            agency = Agency(url, token)
            assert agency.issue().status_code == 201  # warm: JWKS fetched, lists opened
            yield {"pg": pg, "env": env, "engine": engine, "agency": agency, "proc": procs["certstore"], "url": url,
                   "tmp": tmp}
        engine.dispose()
    finally:
        idp.shutdown()
        redis_server.close()
        pg.close()


def _log(proc: Proc) -> str:
    return proc.log.read_text(errors="replace")


def _assert_503(resp: requests.Response) -> None:
    assert resp.status_code == 503, f"{resp.status_code}: {resp.text[:300]}"
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.json()["code"] == "service_unavailable"


def _browser_503(url: str) -> None:
    """The verify page, as a browser sends it, while the database is away: the HTML 503 page."""
    with requests.Session() as browser:
        form = browser.get(f"{url}/verify", headers=BROWSER, timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, "the verify page has its CSRF field"
        page = browser.post(f"{url}/verify", data={"csrf": csrf.group(1), "text": "HC1:anything"},
                            headers=BROWSER, timeout=30)
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html"), page.status_code
    assert int(page.headers["Retry-After"]) > 0
    assert "服务暂不可用" in page.text and "Traceback" not in page.text


def _first_2xx(agency: Agency) -> float:
    """Issue until certstore answers 2xx (every failure a 503 meanwhile); the monotonic time it did."""
    deadline = time.monotonic() + RECOVERY_LIMIT
    while time.monotonic() < deadline:
        resp = agency.issue()
        if resp.status_code == 201:
            return time.monotonic()
        _assert_503(resp)
        time.sleep(0.02)
    raise AssertionError(f"certstore did not recover within {RECOVERY_LIMIT:.0f} s of PostgreSQL")


def _assert_consistent(world: dict[str, Any]) -> None:
    """What the client believes = what is stored, and no status-list slot without its certificate."""
    agency: Agency = world["agency"]
    with world["engine"].connect() as c:
        certs = set(c.execute(sa.text("SELECT identifier FROM certificates")).scalars())
        idem = int(c.execute(sa.text("SELECT count(*) FROM cert_idempotency")).scalar_one())
        audit = int(c.execute(sa.text("SELECT count(*) FROM cert_audit WHERE action = 'certificate.issue'"))
                    .scalar_one())
        orphans = int(c.execute(sa.text(
            "SELECT count(*) FROM cert_status_slots s WHERE NOT EXISTS (SELECT 1 FROM certificates c "
            "WHERE c.status_list = CAST(s.list_id AS VARCHAR) AND c.status_index = s.idx)")).scalar_one())
        used = int(c.execute(sa.text("SELECT coalesce(sum(used), 0) FROM cert_status_lists")).scalar_one())
    believed = set(agency.issued.values())
    assert len(believed) == len(agency.issued), "two keys got the same certificate"
    assert believed == certs
    assert len(certs) == idem == audit == used
    assert orphans == 0, f"{orphans} status-list slots without a certificate"


def _assert_log(segment: str, what: str) -> None:
    assert "Traceback" not in segment, f"{what}: a traceback in the service log:\n{segment[-3000:]}"
    down = segment.count("database unavailable")
    back = segment.count("database available again")
    assert down <= 1 and back <= 1, f"{what}: {down} 'unavailable' and {back} 'available again' lines:\n{segment}"
    assert back == down, f"{what}: the return is logged as the outage was:\n{segment}"


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_restart_is_503_then_each_retry_gives_one_certificate(world: dict[str, Any], mode: str) -> None:
    pg, agency, proc = world["pg"], world["agency"], world["proc"]
    assert agency.issue().status_code == 201
    offset = len(_log(proc))
    stopped = time.monotonic()
    pg.stop(mode)
    for _ in range(PER_PHASE):
        _assert_503(agency.issue())
    _browser_503(world["url"])
    first_failed = len(agency.failed)
    pg.start()
    back = time.monotonic()
    ok = _first_2xx(agency)
    print(f"\nPostgreSQL -m {mode}: {first_failed} requests answered 503 while it was down; "
          f"error window {ok - stopped:.2f} s (stop to first 2xx, PostgreSQL down {back - stopped:.2f} s of it); "
          f"recovery {ok - back:.3f} s from PostgreSQL back to the first 2xx")
    agency.retry_failed()
    _assert_consistent(world)
    _assert_log(_log(proc)[offset:], f"restart -m {mode}")
    assert "database unavailable" in _log(proc)[offset:]  # the outage was noticed (once)


def test_a_read_only_database_refuses_writes_and_serves_reads(world: dict[str, Any]) -> None:
    pg, agency, proc = world["pg"], world["agency"], world["proc"]
    assert agency.issue().status_code == 201
    known = next(iter(agency.issued.values()))
    offset = len(_log(proc))
    started_at = time.monotonic()
    pg.read_only(True)  # ends every session, as a failover does
    for _ in range(PER_PHASE):
        _assert_503(agency.issue())
    _assert_503(agency.change(known, "suspend"))
    # reads keep working
    got = agency.get(known)
    assert got.status_code == 200 and got.json()["identifier"] == known
    verified = requests.post(f"{world['url']}/api/v1/verify", json={"text": got.json()["qr_text"]}, timeout=30)
    assert verified.status_code == 200, verified.text
    assert requests.get(f"{world['url']}/readyz", timeout=30).status_code == 200  # reads are served: ready
    _assert_503(agency.issue())  # still read-only after the reads
    pg.read_only(False)
    back = time.monotonic()
    ok = _first_2xx(agency)
    print(f"\nPostgreSQL read-only: {len(agency.failed)} writes answered 503, reads served; error window "
          f"{ok - started_at:.2f} s; recovery {ok - back:.3f} s from writable to the first 2xx")
    assert agency.change(known, "suspend").status_code == 200
    assert agency.change(known, "reinstate").status_code == 200
    agency.retry_failed()
    _assert_consistent(world)
    segment = _log(proc)[offset:]
    _assert_log(segment, "read-only")
    assert "database unavailable: read-only" in segment


def test_readyz_says_when_the_database_is_away(world: dict[str, Any]) -> None:
    pg, url = world["pg"], world["url"]
    assert requests.get(f"{url}/readyz", timeout=30).status_code == 200
    pg.stop("fast")
    try:
        _assert_503(requests.get(f"{url}/readyz", timeout=30))
        _assert_503(requests.get(f"{url}/readyz", timeout=30))
        assert requests.get(f"{url}/healthz", timeout=30).status_code == 200  # alive: no restart wanted
    finally:
        pg.start()
    deadline = time.monotonic() + RECOVERY_LIMIT
    while requests.get(f"{url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "not ready again"
        time.sleep(0.02)


def test_a_crash_between_the_draw_and_the_store_leaks_no_slot(world: dict[str, Any]) -> None:
    """``certstore issue`` SIGKILLed at ``issue.before_store``: serial and position drawn, PDF signed, nothing stored."""
    env = {**world["env"], "YIWANG_FAULT_POINTS": "issue.before_store"}
    with world["engine"].connect() as c:
        before = int(c.execute(sa.text("SELECT count(*) FROM cert_status_slots")).scalar_one())
    done = subprocess.run([*CLI, *issue_args("JZZM", Path(world["tmp"]) / "killed.pdf")], env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    with world["engine"].connect() as c:
        after = int(c.execute(sa.text("SELECT count(*) FROM cert_status_slots")).scalar_one())
    assert after == before
    _assert_consistent(world)
