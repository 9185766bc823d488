"""In-process CPU per request and cProfile of the idp's hot paths, against the WSGI app (issue 16).

``python -m benchmarks.profile_paths [--paths discovery,introspection,userinfo,refresh,sso_login]
[--n 300] [--profile]``: builds an idp on a throwaway PostgreSQL schema and Redis prefix (the
test suite's ``YIWANG_TEST_DATABASE_URL`` / ``YIWANG_TEST_REDIS_URL``, audit writer in the
background as in ``idp serve``), signs a citizen in once, and then drives each path through
the whole WSGI stack (mTLS header layer, request log, CORS, hot path, Flask) with prebuilt
environs, one request at a time. Prints wall and CPU microseconds per operation (three runs;
CPU is the process's, background threads included), or with ``--profile`` the cProfile of
``--n`` operations. No HTTP server: granian's share is not in these figures. On a loaded
machine read them relative to each other (before/after in alternation), not as absolutes.
docs/performance.md has the figures.
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

PATHS = ("discovery", "introspection", "userinfo", "refresh", "sso_login")


@contextlib.contextmanager
def _idp(root: Path) -> Iterator[tuple[Any, Any]]:
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
        settings = IdpSettings.from_env(env).with_(**FAST_HASH)
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


def _operations(app: Any, services: Any) -> dict[str, Callable[[], None]]:
    from tests.idp.oidc_helpers import (
        ID_NUMBER,
        PASSWORD,
        authorize_code,
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

    def sso_login() -> None:
        verifier, challenge = pkce_pair()
        status, headers, body = _call(app, _environ("GET", "/authorize", headers={"Cookie": cookies}, query={
            "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile", "state": "st", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256"})())
        ok(status, body)
        code = query_of(headers["Location"])["code"]
        status, _, body = _call(app, _environ("POST", "/token", headers=rp.basic(), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier})())
        ok(status, body)

    def plain(make: Callable[[], dict[str, Any]]) -> Callable[[], None]:
        def once() -> None:
            status, _, body = _call(app, make())
            ok(status, body)
        return once

    return {"discovery": plain(discovery), "introspection": plain(introspect), "userinfo": plain(userinfo),
            "refresh": refresh, "sso_login": sso_login}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_paths", description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--n", type=int, default=300, help="operations per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timings")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, _idp(Path(tmp)) as (app, services):
        ops = _operations(app, services)
        for name in args.paths.split(","):
            op = ops[name]
            for _ in range(50):
                op()  # warm-up: connections, prepared statements, caches
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.n):
                    op()
                prof.disable()
                print(f"===== {name} ({args.n} operations)")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                continue
            runs = []
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.n):
                    op()
                runs.append(((time.perf_counter() - wall) / args.n * 1e6, (time.process_time() - cpu) / args.n * 1e6))
            print(f"{name:<14} wall/CPU µs per operation: " + "  ".join(f"{w:.0f}/{c:.0f}" for w, c in runs),
                  flush=True)
    print(f"(pid {os.getpid()}; no HTTP server in these figures)")


if __name__ == "__main__":
    main()
