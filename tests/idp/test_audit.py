"""The hash-chained audit log: appends, tamper detection, concurrency, no secrets."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from idp.audit import GENESIS_HASH, AuditLog, record_hash, record_mac
from idp.db import Database
from idp.models import AuditEvent, AuditHead
from idp.services import Services
from tests.idp.data_helpers import *  # noqa: F403


def _fill(audit: AuditLog, n: int) -> None:
    for i in range(n):
        audit.record(
            "login.failure",
            subject="110105********002X",
            client_id="portal",
            ip=f"192.0.2.{i}",
            detail={"attempt": i, "note": "密码错误"},
        )


def _sql(db: Database, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_records_chain_onto_each_other(services: Services) -> None:
    audit = services.audit
    first = audit.record("admin.client_added", actor="cli:root", subject="portal")
    second = audit.record("login.success", subject="110105********002X", detail={"amr": ["pwd"]})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert record_mac(second, audit.mac_key(second.key_id)) == second.hash  # keyed, not plain SHA-256
    assert record_hash(second) != second.hash
    report = audit.verify()
    assert report.intact and report.records == 2
    assert [e.kind for e in audit.tail(1)] == ["login.success"]


def test_an_edited_detail_is_found(services: Services) -> None:
    _fill(services.audit, 5)
    _sql(services.db, "UPDATE audit_event SET detail = :d WHERE seq = 3", d='{"attempt": 99}')
    report = services.audit.verify()
    assert not report.intact and report.broken_seq == 3 and "altered" in (report.problem or "")


def test_an_edited_row_with_a_recomputed_plain_hash_is_found(services: Services) -> None:
    _fill(services.audit, 5)
    with services.db.session() as s:
        event = s.get(AuditEvent, 2)
        assert event is not None
        event.ip = "203.0.113.66"
        event.hash = record_hash(event)
    report = services.audit.verify()
    assert report.broken_seq == 2  # the MAC is keyed: a recomputed plain hash is not it


def test_a_deleted_record_is_named(services: Services) -> None:
    _fill(services.audit, 5)
    _sql(services.db, "DELETE FROM audit_event WHERE seq = 4")
    report = services.audit.verify()
    assert report.broken_seq == 4 and "missing" in (report.problem or "")


def test_a_cut_off_tail_is_found_through_the_head(services: Services) -> None:
    _fill(services.audit, 5)
    _sql(services.db, "DELETE FROM audit_event WHERE seq = 5")
    assert services.audit.verify().broken_seq == 5
    # and renumbering the head alone does not hide it: its hash no longer matches
    _sql(services.db, "UPDATE audit_head SET seq = 4")
    assert services.audit.verify().broken_seq == 4


def test_a_record_written_in_a_failed_transaction_leaves_no_trace(services: Services) -> None:
    _fill(services.audit, 2)
    with pytest.raises(RuntimeError), services.db.session() as s:
        services.audit.record("admin.client_deleted", subject="portal", session=s)
        raise RuntimeError("the change it described failed")
    services.audit.record("admin.client_added", subject="portal")
    report = services.audit.verify()
    assert report.intact and report.records == 3
    with services.db.session() as s:
        assert s.get(AuditHead, 1).seq == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"detail": {"client_secret": "s3cr3t"}}, "client_secret"),
        ({"detail": {"password": "x"}}, "password"),
        ({"detail": {"nested": {"refresh_token": "x"}}}, "refresh_token"),
        ({"detail": {"code": "abc"}}, "code"),
        ({"subject": "11010519491231002X"}, "unmasked ID number"),
        ({"detail": {"note": "user 11010519491231002x typed"}}, "unmasked ID number"),
        ({"detail": {"ratio": 0.5}}, "floats"),
    ],
)
def test_secrets_and_full_id_numbers_are_refused(
    services: Services, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        services.audit.record("login.failure", **fields)  # type: ignore[arg-type]
    assert services.audit.verify().records == 0


def test_kind_must_be_area_dot_event(services: Services) -> None:
    with pytest.raises(ValueError):
        services.audit.record("LoginFailure")


def test_concurrent_writers_do_not_fork_the_chain(services: Services) -> None:
    # Each thread has its own connection; on PostgreSQL the head row lock
    # serialises them, on SQLite the database write lock does.
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(8):
                services.audit.record("token.issued", client_id=f"c{n}", detail={"i": i})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = services.audit.verify()
    assert report.intact and report.records == 32
    with services.db.session() as s:
        seqs = s.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, 33))


def test_background_writer_batches_and_keeps_the_chain(services: Services) -> None:
    """Two web processes' writers and a synchronous admin write share one chain."""
    first = AuditLog(services.db, background=True, batch_max=7)
    second = AuditLog(services.db, background=True)
    try:
        for i in range(40):
            assert first.record("token.grant", client_id="c1", detail={"i": i}) is None
            second.record("token.grant", client_id="c2", detail={"i": i})
            if i == 20:
                services.audit.record("admin.client_added", subject="portal")
        first.flush()
        second.flush()
    finally:
        first.close()
        second.close()
    report = services.audit.verify()
    assert report.intact and report.records == 81
    with services.db.session() as s:
        by_client = s.execute(
            sa.select(AuditEvent.client_id, sa.func.count()).group_by(AuditEvent.client_id)
        ).all()
    assert dict(by_client) == {"c1": 40, "c2": 40, None: 1}


def test_closing_the_background_writer_drains_it(services: Services) -> None:
    audit = AuditLog(services.db, background=True)
    for i in range(25):
        audit.record("login.failure", subject="110105********002X", detail={"i": i})
    audit.close()
    assert services.audit.verify().records == 25
    with pytest.raises(ValueError, match="at most 64"):
        audit.record("login.failure", ip="x" * 65)


def test_an_altered_head_is_found_even_on_an_empty_log(services: Services) -> None:
    assert services.audit.verify().intact
    _sql(services.db, "UPDATE audit_head SET hash = :h", h="f" * 64)
    report = services.audit.verify()
    assert not report.intact and "head" in (report.problem or "")


def test_verify_stops_at_the_head_it_read(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records a running idp appends during the walk are not mistaken for tampering."""
    _fill(services.audit, 3)
    real_walk = AuditLog._walk

    def walk_while_appending(self: AuditLog, s: object, upto: int, batch: int = 1000):  # type: ignore[no-untyped-def]
        AuditLog(services.db).record("token.grant", client_id="late")  # another instance
        yield from real_walk(self, s, upto, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(AuditLog, "_walk", walk_while_appending)
    report = services.audit.verify()
    monkeypatch.undo()
    assert report.intact and report.records == 3
    assert services.audit.verify().records == 4
