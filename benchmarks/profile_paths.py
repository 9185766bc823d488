"""In-process CPU per request and cProfile of the idp's hot paths, against the WSGI app (issue 16).

``python -m benchmarks.profile_paths [--paths discovery,introspection,userinfo,refresh,sso_login,password_login]
[--n 300] [--profile] [--production-hash]``: builds an idp on a throwaway PostgreSQL schema and Redis prefix (the
test suite's ``YIWANG_TEST_DATABASE_URL`` / ``YIWANG_TEST_REDIS_URL``, audit writer in the
background as in ``idp serve``), signs a citizen in once, and then drives each path through
the whole WSGI stack (mTLS header layer, request log, CORS, hot path, Flask) with prebuilt
environs, one request at a time. Prints wall and CPU microseconds per operation (three runs;
CPU is the process's, background threads included), or with ``--profile`` the cProfile of
``--n`` operations. No HTTP server: granian's share is not in these figures. On a loaded
machine read them relative to each other (before/after in alternation), not as absolutes.
``password_login`` is the bench's ``login`` scenario (a fresh browser: ``/authorize`` answered
with the login form, the form POSTed with its CSRF token, the code exchanged); its hash is
the test suite's cheap one unless ``--production-hash`` (then ``--thread-cpu`` splits the
request thread's CPU into the hash and the rest). docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["main"]

PATHS = ("discovery", "introspection", "userinfo", "refresh", "sso_login", "password_login")


@contextlib.contextmanager
def _idp(root: Path, *, production_hash: bool = False) -> Iterator[tuple[Any, Any]]:
    from idp.services import Services
    from idp.settings import IdpSettings
    from idp.web import create_app
    from keys.keyring import open_keyring
    from tests.conftest import TEST_REDIS_URL, private_database
    from tests.idp.oidc_helpers import FAST_HASH

    prefix = "prof" + uuid.uuid4().hex[:10] + ":"
    with private_database(root) as url:
        env = {"YIWANG_HOME": str(root / "home"), "YIWANG_DATABASE_URL": url, "YIWANG_REDIS_PREFIX": prefix,
               "YIWANG_ISSUER": "http://127.0.0.1:5000"}
        if TEST_REDIS_URL:
            env["YIWANG_REDIS_URL"] = TEST_REDIS_URL
        settings = IdpSettings.from_env(env)
        if not production_hash:
            settings = settings.with_(**FAST_HASH)
        keyring = open_keyring(settings.common.keys)
        services = Services.build(settings, pii=keyring.pii(), keyring=keyring, audit_background=True)
        services.db.create_all()
        app = create_app(settings, services=services)
        try:
            yield app, services
        finally:
            runtime = app.extensions["yiwang"]
            if runtime.logout is not None:
                runtime.logout.close()
            keys = list(services.redis.scan_iter(match=prefix + "*", count=1000))
            if keys:
                services.redis.delete(*keys)
            services.close()


def _environ(method: str, path: str, *, data: Any = None, headers: Any = None,
             query: Any = None) -> Callable[[], dict[str, Any]]:
    from werkzeug.test import EnvironBuilder

    env = EnvironBuilder(method=method, path=path, data=data, headers=headers, query_string=query,
                         base_url="http://127.0.0.1:5000").get_environ()
    raw = env["wsgi.input"].read()

    def fresh() -> dict[str, Any]:
        e = dict(env)
        e["wsgi.input"] = io.BytesIO(raw)
        return e

    return fresh


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app.wsgi_app(environ, start_response))
    return seen["status"], seen["headers"], body


def _call_cookies(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes, dict[str, str]]:
    """:func:`_call`, and the cookies the answer sets (name → value), as a browser keeps them."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app.wsgi_app(environ, start_response))
    cookies = {}
    for name, value in seen["headers"]:
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            cookies[pair.split("=", 1)[0]] = pair.split("=", 1)[1]
    return seen["status"], dict(seen["headers"]), body, cookies


class HashClock:
    """Wraps the account service's hasher: the thread CPU spent in ``verify`` (the Argon2id), summed."""

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        self.cpu = 0.0
        self.calls = 0

    def verify(self, password: str, phc: str | None) -> bool:
        t = time.thread_time()
        try:
            return bool(self._hasher.verify(password, phc))
        finally:
            self.cpu += time.thread_time() - t
            self.calls += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hasher, name)


def _operations(app: Any, services: Any) -> dict[str, Callable[[], None]]:
    from html import unescape

    from tests.idp.oidc_helpers import (
        _FORM_ACTION,
        ID_NUMBER,
        PASSWORD,
        authorize_code,
        csrf_of,
        exchange,
        make_rp,
        pkce_pair,
        query_of,
    )

    services.accounts.add(ID_NUMBER, "张三", PASSWORD, phone="+8613800000000", email="zs@example.cn")
    rp = make_rp(services, first_party=True, redirect_uri="http://127.0.0.1:9100/cb")
    web = app.test_client()
    q, v = authorize_code(web, rp, scope="openid profile email offline_access")
    tokens = exchange(web, rp, q["code"], v).get_json()
    cookies = "; ".join(f"{c.key}={c.value}" for c in web._cookies.values())
    discovery = _environ("GET", "/.well-known/openid-configuration")
    introspect = _environ("POST", "/introspect", data={"token": tokens["access_token"]}, headers=rp.basic())
    userinfo = _environ("GET", "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    state = {"rt": tokens["refresh_token"]}

    def ok(status: str, body: bytes) -> None:
        if not status.startswith(("200", "302", "303")):
            raise RuntimeError(f"{status}: {body[:200]!r}")

    def refresh() -> None:
        status, _, body = _call(app, _environ("POST", "/token", headers=rp.basic(), data={
            "grant_type": "refresh_token", "refresh_token": state["rt"]})())
        ok(status, body)
        state["rt"] = json.loads(body)["refresh_token"]

    def exchange(code: str, verifier: str) -> None:
        status, _, body = _call(app, _environ("POST", "/token", headers=rp.basic(), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier})())
        ok(status, body)

    def sso_login() -> None:
        verifier, challenge = pkce_pair()
        status, headers, body = _call(app, _environ("GET", "/authorize", headers={"Cookie": cookies}, query={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile", "state": "st", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256"})())
        ok(status, body)
        exchange(query_of(headers["Location"])["code"], verifier)

    def password_login() -> None:
        # The bench's login scenario: a fresh browser (no cookies), scope "openid profile email".
        verifier, challenge = pkce_pair()
        status, _, body, jar = _call_cookies(app, _environ("GET", "/authorize", query={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile email", "state": "st", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256"})())
        ok(status, body)
        page = body.decode()
        action = _FORM_ACTION.search(page)
        if action is None:
            raise RuntimeError(f"no login form: {status} {body[:200]!r}")
        path, _, query = unescape(action.group(1)).partition("?")
        status, headers, body, _ = _call_cookies(app, _environ(
            "POST", path, query=query, headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())},
            data={"csrf_token": csrf_of(page), "id_number": ID_NUMBER, "password": PASSWORD})())
        ok(status, body)
        exchange(query_of(headers["Location"])["code"], verifier)

    def plain(make: Callable[[], dict[str, Any]]) -> Callable[[], None]:
        def once() -> None:
            status, _, body = _call(app, make())
            ok(status, body)
        return once

    return {"discovery": plain(discovery), "introspection": plain(introspect), "userinfo": plain(userinfo),
            "refresh": refresh, "sso_login": sso_login, "password_login": password_login}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_paths", description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--n", type=int, default=300, help="operations per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timings")
    parser.add_argument("--cpu", action="store_true",
                        help="with --profile: the calling thread's CPU time (time.thread_time), not wall time,"
                             " so waits on PostgreSQL and Redis and other processes' load drop out")
    parser.add_argument("--dump", metavar="PREFIX", help="with --profile: also write the stats to PREFIX.<path>")
    parser.add_argument("--production-hash", action="store_true",
                        help="Argon2id at the production parameters (else the test suite's cheap hash)")
    args = parser.parse_args(argv)
    with (tempfile.TemporaryDirectory() as tmp,
          _idp(Path(tmp), production_hash=args.production_hash) as (app, services)):
        ops = _operations(app, services)
        clock = services.accounts.hasher = HashClock(services.accounts.hasher)
        for name in args.paths.split(","):
            op = ops[name]
            for _ in range(50):
                op()  # warm-up: connections, prepared statements, caches
            if args.profile:
                prof = cProfile.Profile(time.thread_time) if args.cpu else cProfile.Profile()
                prof.enable()
                for _ in range(args.n):
                    op()
                prof.disable()
                if args.dump:
                    prof.dump_stats(f"{args.dump}.{name}")
                print(f"===== {name} ({args.n} operations)")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(80)
                pstats.Stats(prof).sort_stats("tottime").print_stats(50)
                continue
            runs = []
            for _ in range(3):
                clock.cpu = 0.0
                wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
                for _ in range(args.n):
                    op()
                runs.append(((time.perf_counter() - wall) / args.n * 1e6, (time.process_time() - cpu) / args.n * 1e6,
                             (time.thread_time() - own - clock.cpu) / args.n * 1e6, clock.cpu / args.n * 1e6))
            print(f"{name:<14} wall/CPU µs per operation: " + "  ".join(f"{w:.0f}/{c:.0f}" for w, c, _, _ in runs),
                  flush=True)
            if clock.cpu:
                print(f"{'':<14} request thread outside / inside the hash, µs: "
                      + "  ".join(f"{o:.0f}/{h:.0f}" for _, _, o, h in runs), flush=True)
    print(f"(pid {os.getpid()}; no HTTP server in these figures)")


if __name__ == "__main__":
    main()
