"""Issue 13's passkey figure for ``make bench``: passkey sign-ins per second against password sign-ins.

``python -m benchmarks.passkeys [--duration S] [--rounds R] [--concurrency C]`` (``python -m benchmarks --only passkeys``)

Starts ``idp serve`` (one granian worker, PostgreSQL and Redis as in
production, the production Argon2id cost) pinned to core 0; this process, on
core 1, signs a citizen in again and again as a new browser each time, in
alternating slices of ``S`` seconds:

- password: ``GET /login`` (the form and its CSRF token), ``POST /login``
  (ID number and password: one Argon2id verification on the server);
- passkey: ``GET /login``, ``POST /passkey/options`` (a challenge in Redis),
  the assertion signed here by a software authenticator (P-256, a synced
  passkey: counter 0, backup-eligible), ``POST /passkey/sign-in`` (the
  challenge taken, one credential read, an ES256 verification, the counter
  and last-use update, the audit record, the session).

Both end with a signed-in session; the ratio is passkey / password per second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import requests

from ._proc import REDIS_URL, free_port, pg_schema, pinned, started, wait_http
from .softauthn import SoftAuthenticator

__all__ = ["main"]

CITIZEN = ("11010519491231002X", "bench-password-0123")
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
_SECTION = re.compile(r'<section[^>]*id="passkey-(?:sign-in|add)"[^>]*>', re.S)
_DATA = re.compile(r'data-(options-url|submit-url|csrf)="([^"]*)"')


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    idp = str(Path(sys.executable).with_name("idp"))
    done = subprocess.run([idp, *args], env=env, input=stdin, capture_output=True, text=True,  # noqa: S603
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"idp {' '.join(args[:2])}: {done.stderr[-500:]}")
    return done.stdout


def _box(html: str) -> dict[str, str]:
    section = _SECTION.search(html)
    if section is None:
        raise RuntimeError("no passkey section on the page")
    return {k: unescape(v) for k, v in _DATA.findall(section.group(0))}


def _password_sign_in(base: str) -> bool:
    with requests.Session() as s:
        page = s.get(base + "/login", timeout=30).text
        csrf = _CSRF.search(page).group(1)  # type: ignore[union-attr]
        r = s.post(base + "/login", data={"csrf_token": csrf, "id_number": CITIZEN[0], "password": CITIZEN[1]},
                   allow_redirects=False, timeout=30)
        return r.status_code == 303


def _passkey_sign_in(base: str, soft: SoftAuthenticator) -> bool:
    with requests.Session() as s:
        box = _box(s.get(base + "/login", timeout=30).text)
        options = s.post(base + box["options-url"], json={"csrf_token": box["csrf"]}, timeout=30).json()
        assertion = soft.get(options, count=0)  # a synced passkey: no counter
        r = s.post(base + box["submit-url"], json={"csrf_token": box["csrf"], "credential": assertion}, timeout=30)
        return r.status_code == 200 and "next" in r.json()


def _register(base: str, soft: SoftAuthenticator) -> None:
    with requests.Session() as s:
        page = s.get(base + "/login", timeout=30).text
        s.post(base + "/login", data={"csrf_token": _CSRF.search(page).group(1),  # type: ignore[union-attr]
                                      "id_number": CITIZEN[0], "password": CITIZEN[1]}, timeout=30)
        box = _box(s.get(base + "/account", timeout=30).text)
        options = s.post(base + box["options-url"], json={"csrf_token": box["csrf"]}, timeout=30).json()
        done = s.post(base + box["submit-url"], json={"csrf_token": box["csrf"], "credential": soft.create(options),
                                                      "name": "bench"}, timeout=30)
        if done.status_code != 200:
            raise RuntimeError(f"passkey registration: {done.status_code} {done.text[:300]}")


def _slice(one: Any, seconds: float, concurrency: int) -> tuple[int, int, float]:
    ok = bad = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal ok, bad
        while time.monotonic() < stop:
            try:
                good = one()
            except (requests.RequestException, AttributeError, ValueError, RuntimeError):
                good = False
            with lock:
                if good:
                    ok += 1
                else:
                    bad += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, bad, time.monotonic() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.passkeys")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per slice")
    parser.add_argument("--rounds", type=int, default=2, help="alternating password / passkey slices")
    parser.add_argument("--concurrency", type=int, default=8, help="sign-ins in flight")
    args = parser.parse_args(argv)

    prefix = f"benchpk{uuid.uuid4().hex[:8]}:"
    port = free_port()
    issuer = f"http://localhost:{port}"  # a WebAuthn relying-party id is a host name
    base = f"http://127.0.0.1:{port}"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # the load on core 1, the server on core 0
    totals = {"password": [0, 0, 0.0], "passkey": [0, 0, 0.0]}
    with tempfile.TemporaryDirectory() as home, pg_schema("bench_pk") as db_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")},
            "YIWANG_HOME": str(Path(home) / "home"), "YIWANG_DATABASE_URL": db_url, "YIWANG_REDIS_PREFIX": prefix,
            "YIWANG_REDIS_URL": REDIS_URL, "YIWANG_ISSUER": issuer, "YIWANG_LOG_LEVEL": "warning",
            "YIWANG_ACCESS_LOG": "false",
        }
        _cli(env, "db", "upgrade")
        _cli(env, "users", "add", "--id-number", CITIZEN[0], "--name", "压测", "--password-stdin",
             stdin=CITIZEN[1] + "\n")
        serve = [str(Path(sys.executable).with_name("idp")), "serve", "--port", str(port), "--workers", "1"]
        soft = SoftAuthenticator(origin=issuer, rp_id="localhost", backup_eligible=True)
        try:
            with started(pinned(serve, 0), env=env, log=Path(home) / "idp.log"):
                wait_http(base + "/healthz")
                _register(base, soft)
                for _ in range(args.rounds):
                    for name, one in (("password", lambda: _password_sign_in(base)),
                                      ("passkey", lambda: _passkey_sign_in(base, soft))):
                        ok, bad, took = _slice(one, args.duration, args.concurrency)
                        totals[name][0] += ok
                        totals[name][1] += bad
                        totals[name][2] += took
        finally:
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=prefix + "*", count=1000))
            if keys:
                r.delete(*keys)
    rate = {k: v[0] / v[2] if v[2] else 0.0 for k, v in totals.items()}
    print(f"sign-ins as a new browser each time, {args.concurrency} in flight, one idp worker on core 0, "
          f"{args.rounds} alternating rounds of {args.duration:.0f} s")
    for name in ("password", "passkey"):
        print(f"  {name:9s} sign-ins {rate[name]:8.1f} /s   (ok {totals[name][0]}, failed {totals[name][1]})")
    ratio = rate["passkey"] / rate["password"] if rate["password"] else 0.0
    print(f"  passkey / password {ratio:6.2f}x  (a password sign-in is one Argon2id hash at the production cost)")
    return {"passkey_per_s": rate["passkey"], "password_per_s": rate["password"], "ratio": ratio,
            "failed": {k: v[1] for k, v in totals.items()}}


if __name__ == "__main__":
    print(json.dumps(main()))
