"""Issue 11 §6: the audit chain is keyed and anchored outside the database.

The attacker here can write the idp's database (every table, the head row
included) and knows the record format, but holds neither the audit MAC key
nor the anchor signing key, and cannot rewrite what was anchored outside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from idp.audit import record_hash
from idp.models import AuditEvent, AuditHead
from idp.services import Services
from idp.settings import IdpSettings
from keys.keyring import open_keyring
from tests.idp.data_helpers import FAST_HASH
from tests.idp.test_cli_admin import Result, Run, env, idp  # noqa: F401 - fixtures

ALICE_MASKED = "110105********002X"


@pytest.fixture
def services(yiwang_env: dict[str, str]) -> Iterator[Services]:
    settings = IdpSettings.from_env(yiwang_env).with_(**FAST_HASH)
    keyring = open_keyring(settings.common.keys)
    svc = Services.build(settings, pii=keyring.pii(), keyring=keyring)
    svc.db.create_all()
    try:
        yield svc
    finally:
        svc.close()


def _fill(services: Services, n: int) -> None:
    for i in range(n):
        services.audit.record(
            "login.failure", subject=ALICE_MASKED, client_id="portal", ip=f"192.0.2.{i}", detail={"attempt": i}
        )


def _rechain_with_plain_hashes(services: Services, *, from_seq: int, edit: Any = None) -> None:
    """What an attacker with the database can do: edit, then recompute every unkeyed hash and the head."""
    with services.db.session() as s:
        events = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
        prev = events[from_seq - 2].hash if from_seq > 1 else "0" * 64
        for event in events[from_seq - 1 :]:
            if edit is not None:
                edit(event)
            event.prev_hash = prev
            event.hash = prev = record_hash(event)
        head = s.get(AuditHead, 1)
        assert head is not None
        head.hash = prev


def test_a_rewritten_record_with_every_hash_recomputed_is_reported(services: Services) -> None:
    _fill(services, 6)
    assert services.audit.verify().intact

    def edit(event: AuditEvent) -> None:
        if event.seq == 3:
            event.ip = "203.0.113.66"  # where the failed sign-in really came from, hidden

    _rechain_with_plain_hashes(services, from_seq=3, edit=edit)
    report = services.audit.verify()
    assert not report.intact and report.broken_seq == 3 and "altered" in (report.problem or "")


def test_records_rewritten_as_unkeyed_ones_are_reported(services: Services) -> None:
    # Pretending the tail predates keying: unkeyed records only ever start the chain.
    _fill(services, 4)

    def unkey(event: AuditEvent) -> None:
        event.key_id = None

    _rechain_with_plain_hashes(services, from_seq=3, edit=unkey)
    report = services.audit.verify()
    assert report.broken_seq == 3 and "not keyed" in (report.problem or "")


def test_the_whole_chain_rewritten_as_unkeyed_is_caught_by_the_anchor(services: Services) -> None:
    _fill(services, 4)
    services.audit.checkpoint()

    def unkey(event: AuditEvent) -> None:
        event.key_id = None
        if event.seq == 2:
            event.detail = {"attempt": 0}

    _rechain_with_plain_hashes(services, from_seq=1, edit=unkey)
    report = services.audit.verify()
    assert not report.intact and "differs from its checkpoint" in (report.problem or "")


def test_deleting_the_last_records_after_a_checkpoint_is_reported(services: Services) -> None:
    _fill(services, 5)
    services.audit.checkpoint()
    _fill(services, 2)
    assert services.audit.verify().intact
    # Cut records 4..7 and make the head agree with record 3: an intact, shorter chain.
    with services.db.session() as s:
        s.execute(sa.delete(AuditEvent).where(AuditEvent.seq > 3))
        third = s.get(AuditEvent, 3)
        assert third is not None
        s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=3, hash=third.hash))
    report = services.audit.verify()
    assert not report.intact and report.broken_seq == 4
    assert "record 5 was anchored" in (report.problem or "") and "cut" in (report.problem or "")


def test_a_forged_checkpoint_is_reported(services: Services) -> None:
    _fill(services, 2)
    written = services.audit.checkpoint()
    path = services.settings.audit_anchor_path
    line = json.loads(path.read_text().splitlines()[-1])
    head, _claims, signature = line["jws"].split(".")
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"seq": 1, "hash": "f" * 64, "at": written.at}).encode()).rstrip(b"=")
    with path.open("a") as f:
        f.write(json.dumps({"seq": 1, "hash": "f" * 64, "jws": f"{head}.{claims.decode()}.{signature}"}) + "\n")
    report = services.audit.verify()
    assert not report.intact and "signature does not verify" in (report.problem or "")


def test_old_records_still_verify_after_the_key_is_rotated(services: Services) -> None:
    _fill(services, 3)
    first_key = services.audit.tail(1)[0].key_id
    services.audit.rotate_key()
    _fill(services, 2)
    events = services.audit.tail(5)
    assert [e.key_id for e in events[:3]] == [first_key] * 3
    assert events[3].key_id == events[4].key_id != first_key
    report = services.audit.verify()
    assert report.intact and report.records == 5
    # Another process, opening the key store afresh, verifies the same chain.
    other = Services.build(services.settings, pii=services.pii, keyring=open_keyring(services.settings.common.keys),
                           db=services.db)
    assert other.audit.verify().intact


def test_checkpoints_are_written_every_n_records(services: Services) -> None:
    services.audit.anchor_every = 3
    services.audit.anchor_seconds = 3600
    _fill(services, 1)  # the first commit of a process anchors at once
    _fill(services, 7)
    path = services.settings.audit_anchor_path
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == [1, 4, 7]
    assert os.stat(path).st_mode & 0o077 == 0
    assert services.audit.verify().anchors == 3


def test_the_anchor_file_can_live_elsewhere(yiwang_env: dict[str, str], tmp_path: Any) -> None:
    where = tmp_path / "worm" / "idp-anchors.jsonl"
    settings = IdpSettings.from_env({**yiwang_env, "YIWANG_IDP_AUDIT_ANCHOR_FILE": str(where)})
    keyring = open_keyring(settings.common.keys)
    svc = Services.build(settings, pii=keyring.pii(), keyring=keyring)
    svc.db.create_all()
    try:
        _fill(svc, 1)
        assert [json.loads(line)["seq"] for line in where.read_text().splitlines()] == [1]
        assert not (settings.home / "audit" / "anchors.jsonl").exists()
    finally:
        svc.close()


def test_the_cli_checkpoints_and_verify_names_a_cut_tail(idp: Run, env: dict[str, str]) -> None:  # noqa: F811
    assert idp("db", "upgrade").code == 0
    services = Services.from_settings(IdpSettings.from_env(env))
    try:
        _fill(services, 4)
        services.audit.flush()
    finally:
        services.close()
    result = idp("audit", "checkpoint")
    assert result.code == 0 and "anchored record 4" in result.out
    assert idp("audit", "verify").out.startswith("4 records, chain intact")
    services = Services.from_settings(IdpSettings.from_env(env))
    try:
        with services.db.session() as s:
            s.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 4))
            third = s.get(AuditEvent, 3)
            assert third is not None
            s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=3, hash=third.hash))
    finally:
        services.close()
    result = idp("audit", "verify")
    assert result.code == 2 and "record 4 was anchored" in result.err and "cut" in result.err
    assert idp("audit", "checkpoint").code == 2  # never anchors a chain that does not verify
