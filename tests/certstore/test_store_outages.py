"""The database or Redis being away is a 503 with Retry-After, logged once per outage (issue 20 §2), without a server.

The fault suite (tests/faults/test_certstore_store_faults.py) does the same
against a real PostgreSQL that is restarted and made read-only; here the
errors are raised in-process, so each mapping is checked on its own.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy as sa

from certstore.availability import DATABASE, REDIS, RETRY_AFTER_SECONDS, Availability, Outage
from certstore.db import make_engine, outage_of
from certstore.service import CertificateService

from .conftest import DEMO_REQUESTS

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _operational() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))


def _read_only() -> sa.exc.InternalError:
    return sa.exc.InternalError("INSERT INTO certificates …", {}, psycopg.errors.ReadOnlySqlTransaction("read-only"))


def _dropped() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed"), connection_invalidated=True)


@pytest.fixture(autouse=True)
def _stores_up() -> Iterator[None]:
    """The trackers are process-wide: every test starts and ends with both stores up."""
    for tracker in (DATABASE, REDIS):
        tracker.answered(wrote=True)
    yield
    for tracker in (DATABASE, REDIS):
        tracker.answered(wrote=True)


def _issue(client: Any, mint: Any, **headers: str) -> Any:
    req = DEMO_REQUESTS["JZZM"]
    return client.post(
        "/api/v1/certificates", json=req["body"], headers={"Authorization": f"Bearer {mint()}", **headers}
    )


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def fail(*_a: Any, **_k: Any) -> Any:
        raise exc

    monkeypatch.setattr(CertificateService, "issue", fail)


def _assert_503(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert resp.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body: dict[str, Any] = resp.get_json()
    assert body["code"] == "service_unavailable" and body["status"] == 503
    assert "SELECT" not in body["detail"] and "INSERT" not in body["detail"]
    return body


def test_an_unreachable_database_is_503_with_retry_after_and_one_log_line(
    client: Any, mint: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fail_with(monkeypatch, _operational())
    caplog.set_level(logging.INFO)
    for _ in range(5):
        _assert_503(_issue(client, mint, **{"Idempotency-Key": "k1"}))
    assert not [r for r in caplog.records if r.exc_info], "no stack trace per request"
    lines = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert lines == ["database unavailable: OperationalError"]
    assert DATABASE.down
    monkeypatch.undo()
    assert client.get("/api/v1/certificates", headers={"Authorization": f"Bearer {mint()}"}).status_code == 200
    assert not DATABASE.down  # a statement that succeeded ended the outage
    again = [r.getMessage() for r in caplog.records if "available again" in r.getMessage()]
    assert len(again) == 1 and re.fullmatch(r"database available again after \d+\.\d s", again[0]), again


def test_a_read_only_database_is_503_for_writes(client: Any, mint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_with(monkeypatch, _read_only())
    body = _assert_503(_issue(client, mint))
    assert "read-only" in body["detail"]
    assert DATABASE.down


def test_a_dropped_connection_is_503_but_no_outage(
    client: Any, mint: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fail_with(monkeypatch, _dropped())
    caplog.set_level(logging.INFO)
    _assert_503(_issue(client, mint))
    _assert_503(_issue(client, mint))
    assert not DATABASE.down
    assert [r.getMessage() for r in caplog.records if "database" in r.getMessage()] == [
        "database connection lost (OperationalError); reconnecting"
    ]


def test_other_database_errors_stay_500(client: Any, mint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_with(monkeypatch, sa.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")))
    resp = _issue(client, mint)
    assert resp.status_code == 500 and resp.get_json()["code"] == "internal_error"
    assert not DATABASE.down


def test_redis_away_is_503(client: Any, mint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_with(monkeypatch, redis.exceptions.ConnectionError("refused"))
    _assert_503(_issue(client, mint))
    assert REDIS.down and not DATABASE.down


def test_a_browser_on_a_page_gets_the_html_503_page(
    client: Any, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = client.get("/verify")
    csrf = form.headers["Set-Cookie"].split("cs_csrf=", 1)[1].split(";", 1)[0]

    def fail(*_a: Any, **_k: Any) -> Any:
        raise _operational()

    monkeypatch.setattr(type(services.certificates), "verify_qr", fail)
    page = client.post("/verify", data={"csrf": csrf, "text": "HC1:whatever"}, headers=BROWSER)
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    html = page.get_data(as_text=True)
    assert "服务暂不可用" in html and "OperationalError" not in html and "Traceback" not in html
    api = client.post("/api/v1/verify", json={"text": "HC1:whatever"}, headers=BROWSER)
    _assert_503(api)  # the API keeps problem+json, whatever the Accept


def test_healthz_and_readyz(client: Any, services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"

    def no_database(*_a: Any, **_k: Any) -> Any:
        raise _operational()

    monkeypatch.setattr(services.engine, "connect", no_database)
    _assert_503(client.get("/readyz"))
    assert client.get("/healthz").status_code == 200  # liveness asks no dependency


def test_readyz_asks_redis(app: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = app.extensions["certstore.wallet_sessions"]

    def no_redis() -> Any:
        raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setattr(sessions.client, "ping", no_redis)
    _assert_503(client.get("/readyz"))
    assert REDIS.down
    monkeypatch.undo()
    assert client.get("/readyz").status_code == 200
    assert not REDIS.down


# -- the classification and the tracker, without the web layer -----------------------------------


def test_outage_of_classifies_driver_errors() -> None:
    assert outage_of(_operational()) == Outage("unreachable", "OperationalError")
    assert outage_of(_read_only()) == Outage("read-only", "read-only (ReadOnlySqlTransaction, SQLSTATE 25006)")
    assert outage_of(_dropped()) == Outage("dropped", "OperationalError")
    refused = sa.exc.OperationalError(None, None, psycopg.OperationalError("connection refused"))
    assert outage_of(refused) == Outage("unreachable", "cannot connect (OperationalError)")
    shutting_down = sa.exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating"))
    assert outage_of(shutting_down) == Outage("unreachable", "AdminShutdown, SQLSTATE 57P01")
    assert outage_of(sa.exc.TimeoutError()) == Outage("unreachable", "no pooled connection free in time")
    assert outage_of(sa.exc.IntegrityError("x", {}, Exception())) is None
    assert outage_of(ValueError("x")) is None


def test_a_read_only_sqlite_file_is_a_read_only_outage(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    make_engine(f"sqlite:///{path}").dispose()
    with sa.create_engine(f"sqlite:///{path}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError) as caught:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    outage = outage_of(caught.value)
    assert outage is not None and outage.kind == "read-only"


def test_the_engine_reports_successes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        DATABASE.lost(Outage("read-only", "test"))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            conn.execute(sa.text("SELECT 1"))
        assert DATABASE.down  # reads (and DDL) do not end a read-only outage
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert not DATABASE.down
        DATABASE.lost(Outage("unreachable", "test"))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert not DATABASE.down
    finally:
        engine.dispose()


def test_the_tracker_logs_each_transition_once_across_threads(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter(float(i) for i in range(1000))
    tracker = Availability("database", clock=lambda: next(clock))
    caplog.set_level(logging.INFO, logger="certstore.availability")
    threads = [threading.Thread(target=tracker.lost, args=(Outage("unreachable", "refused"),)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracker.lost(Outage("read-only", "read-only"))
    tracker.answered(wrote=False)  # the server answers reads again: still read-only
    assert tracker.down
    for _ in range(3):
        tracker.answered(wrote=True)
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: refused",
        "database available again after 17.0 s",
    ]
