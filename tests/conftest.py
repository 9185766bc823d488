"""Shared fixtures: a fresh database schema and a fresh Redis namespace per test.

With ``YIWANG_TEST_DATABASE_URL`` set (``make test`` sets it to the local
PostgreSQL) each test gets its own schema through ``search_path``; without it,
a SQLite file in the test's temporary directory. Likewise
``YIWANG_TEST_REDIS_URL`` gives each test a key prefix of its own on a real
Redis; without it, the in-process stand-in.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

TEST_DATABASE_URL = os.environ.get("YIWANG_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("YIWANG_TEST_REDIS_URL")


def _pg_admin_dsn(url: str) -> str:
    # SQLAlchemy URL -> libpq DSN for the admin connection that creates schemas.
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def private_database(tmp_path: Path, name: str = "test") -> Iterator[str]:
    """An empty database of its own: a fresh schema on PostgreSQL, a file on SQLite."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(_pg_admin_dsn(TEST_DATABASE_URL), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    try:
        yield f"{TEST_DATABASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(_pg_admin_dsn(TEST_DATABASE_URL), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL for an empty database private to this test."""
    with private_database(tmp_path) as url:
        yield url


@pytest.fixture
def redis_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12] + ":"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str | None]:
    """The Redis URL for this test (``None`` = in-process stand-in).

    Keys under this test's prefix are deleted afterwards.
    """
    if not TEST_REDIS_URL:
        yield None
        return
    yield TEST_REDIS_URL
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def yiwang_env(tmp_path: Path, database_url: str, redis_url: str | None, redis_prefix: str) -> dict[str, str]:
    """Environment for a service started by a test (CLI or subprocess)."""
    env = {
        "YIWANG_HOME": str(tmp_path / "home"),
        "YIWANG_DATABASE_URL": database_url,
        "YIWANG_REDIS_PREFIX": redis_prefix,
        # The suite's made-up hosts (http://idp.test) are plain http: the explicit opt-in (issue 19 §9).
        "YIWANG_ALLOW_INSECURE_HTTP": "1",
        # The explicit opt-out of timestamps (issue 15 §3): B-LTA needs a TSA, which tests that
        # care start themselves (the local_tsa fixture below); the rest stay fast.
        "YIWANG_CERTSTORE_PADES_LEVEL": "B-B",
    }
    if redis_url:
        env["YIWANG_REDIS_URL"] = redis_url
    return env


@pytest.fixture
def embedded_init(yiwang_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run a service's ``init`` on its embedded SQLite default under a permissive umask.

    Returns ``run(main, **extra_env) -> Path`` of YIWANG_HOME; only this test's
    ``YIWANG_*`` variables are set, and the process umask is put back.
    """

    def run(main, **extra_env: str) -> Path:
        for name in list(os.environ):
            if name.startswith("YIWANG_") and not name.startswith("YIWANG_TEST_"):
                monkeypatch.delenv(name)
        for name, value in {**yiwang_env, **extra_env}.items():
            if name != "YIWANG_DATABASE_URL":
                monkeypatch.setenv(name, value)
        old = os.umask(0o022)
        try:
            try:
                main(["init"])
            except SystemExit as e:
                assert not e.code, capsys.readouterr().err
        finally:
            os.umask(old)
        return Path(yiwang_env["YIWANG_HOME"])

    return run


class LocalTsa:
    """One HTTP server for the session answering RFC 3161 requests for any test's region.

    ``url_for(keyring)`` registers the keyring's TSA (``certstore.tsa.TsaApp``: the key and
    certificate from ``keys.pki``, issued on first use) under a path of its own and returns
    its URL; every test keeps its own region PKI, the server starts once.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self._apps: dict[str, object] = {}

    def url_for(self, keyring: object) -> str:
        from certstore.tsa import TSA_PATH, TsaApp

        name = f"r{len(self._apps)}"
        self._apps[name] = TsaApp(keyring)  # type: ignore[arg-type]
        return f"{self.base}/{name}{TSA_PATH}"

    def __call__(self, environ: dict[str, object], start_response: object) -> object:
        head, _, tail = str(environ.get("PATH_INFO") or "/").lstrip("/").partition("/")
        app = self._apps.get(head)
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])  # type: ignore[operator]
            return [b"no such TSA\n"]
        return app({**environ, "PATH_INFO": "/" + tail}, start_response)  # type: ignore[operator]


@pytest.fixture(scope="session")
def local_tsa() -> Iterator[LocalTsa]:
    """The session's local TSA server (issue 15 §3): ``local_tsa.url_for(keyring)``."""
    from certstore.tsa import running_tsa_server

    tsa = LocalTsa("")
    with running_tsa_server(tsa) as base:
        tsa.base = base
        yield tsa


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: breaks a service on purpose (tests/faults: kills, restarts, outages)")
