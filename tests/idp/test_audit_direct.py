"""The background audit writer's append straight on psycopg (idp/audit/direct.py, issue 16).

It must write the rows the Core path writes, keep the chain and the head, split
large batches, recreate a missing head through the Core path, and report a lost
database as SQLAlchemy's ``OperationalError`` (the writer's back-off).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp.audit import AuditLog
from idp.audit.direct import MAX_ROWS
from idp.audit.records import checked
from idp.services import Services
from tests.idp.data_helpers import *  # noqa: F403

pytestmark = pytest.mark.usefixtures("services")


def _pending(i: int, kind: str = "login.success"):  # type: ignore[no-untyped-def]
    return checked(kind, actor=None, subject="110105********002X", client_id="portal", ip=f"192.0.2.{i % 250}",
                   detail={"amr": ["pwd"], "i": i, "note": "密码"})


def _rows(services: Services) -> list[tuple[object, ...]]:
    with services.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT seq, at, kind, actor, subject, client_id, ip, detail::text, prev_hash, hash, key_id"
            " FROM audit_event ORDER BY seq"))]


def _head(services: Services) -> tuple[int, str]:
    with services.db.engine.connect() as conn:
        seq, mac = conn.execute(sa.text("SELECT seq, hash FROM audit_head")).one()
    return int(seq), str(mac)


@pytest.fixture
def direct_log(services: Services):  # type: ignore[no-untyped-def]
    if services.db.dialect != "postgresql":
        pytest.skip("the direct path is PostgreSQL's (YIWANG_TEST_DATABASE_URL)")
    log = AuditLog(services.db, keyring=services.keyring, background=True)
    assert log._direct is not None
    yield log
    log.close()


def test_the_direct_path_writes_the_rows_the_core_path_writes(services: Services, direct_log: AuditLog) -> None:
    batch = [_pending(i) for i in range(3)]
    rows = direct_log._write_batch(batch)
    direct = _rows(services)
    with services.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_event"))
        conn.execute(sa.text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": direct[0][8]})
    with services.db.session() as s:
        core_rows = direct_log._append(s, batch)
    assert [r["hash"] for r in rows] == [r["hash"] for r in core_rows]
    assert _rows(services) == direct  # byte for byte: timestamps, JSON detail, MACs
    assert _head(services) == (3, rows[-1]["hash"])
    assert services.audit.verify().intact


def test_batches_larger_than_one_insert_are_split_and_chained(services: Services, direct_log: AuditLog) -> None:
    direct_log._write_batch([_pending(0)])
    rows = direct_log._write_batch([_pending(i) for i in range(2 * MAX_ROWS + 5)])
    assert [r["seq"] for r in rows] == list(range(2, 2 * MAX_ROWS + 7))
    assert _head(services) == (2 * MAX_ROWS + 6, rows[-1]["hash"])
    report = services.audit.verify()
    assert report.intact and report.records == 2 * MAX_ROWS + 6


def test_the_background_writer_uses_it_and_the_chain_holds(services: Services, direct_log: AuditLog) -> None:
    for i in range(30):
        direct_log.record("token.grant", client_id="portal", detail={"i": i})
        if i == 10:
            services.audit.record("admin.client_added", subject="portal")  # a synchronous writer in between
    direct_log.flush()
    report = services.audit.verify()
    assert report.intact and report.records == 31


def test_a_missing_head_is_recreated_by_the_core_path(services: Services, direct_log: AuditLog,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_head"))
    rows = direct_log._write_batch([_pending(0)])
    assert rows[0]["seq"] == 1 and _head(services) == (1, rows[0]["hash"])
    assert "audit head row missing" in caplog.text


def test_a_lost_database_is_sqlalchemys_operational_error(services: Services, direct_log: AuditLog) -> None:
    import psycopg

    assert direct_log._direct is not None
    fairy = services.db.engine.raw_connection()
    pid = fairy.driver_connection.info.backend_pid
    fairy.close()  # back to the pool: the direct path takes it next
    with psycopg.connect(services.db.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(sa.exc.OperationalError):
        direct_log._direct.write([_pending(0)])
    assert direct_log._write_batch([_pending(1)])[0]["seq"] == 1  # the dead connection left the pool
    assert services.audit.verify().intact
