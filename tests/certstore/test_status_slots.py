"""A status-list slot is taken in the certificate's own transaction: a failed issuance leaks none (issue 20 §3).

Runs on whichever database the suite runs on (PostgreSQL's one-statement
path with ``YIWANG_TEST_DATABASE_URL``, the ORM path on SQLite without).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from certstore.errors import ServiceUnavailable
from certstore.issuance import Issuance
from certstore.issue_store import IssueStore
from certstore.service import IssueRequest
from certstore.statuslists import Slot, StatusListService
from signing.qr import decode_qr_payload

from .conftest import DEMO_REQUESTS, PSB

ORPHANS = sa.text(
    "SELECT count(*) FROM cert_status_slots s WHERE NOT EXISTS (SELECT 1 FROM certificates c "
    "WHERE c.status_list = CAST(s.list_id AS VARCHAR(20)) AND c.status_index = s.idx)"
)


def _counts(services: Any) -> tuple[int, int, int, int]:
    """(certificates, slots, slots without a certificate, sum of the lists' used counts)."""
    with services.engine.connect() as conn:
        return (
            int(conn.execute(sa.text("SELECT count(*) FROM certificates")).scalar_one()),
            int(conn.execute(sa.text("SELECT count(*) FROM cert_status_slots")).scalar_one()),
            int(conn.execute(ORPHANS).scalar_one()),
            int(conn.execute(sa.text("SELECT coalesce(sum(used), 0) FROM cert_status_lists")).scalar_one()),
        )


def _issue(services: Any, key: str | None = None) -> Any:
    req = DEMO_REQUESTS["JZZM"]
    request = IssueRequest.from_json(req["body"], idempotency_key=key)
    return services.certificates.issue(request, agency_uscc=req["issuer"])


def test_issued_certificates_hold_every_slot(services: Any) -> None:
    for i in range(3):
        _issue(services, key=f"k{i}")
    assert _counts(services) == (3, 3, 0, 3)


@pytest.mark.parametrize("where", ["signing", "store"])
def test_a_failed_issuance_leaves_no_slot(services: Any, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    _issue(services)  # the list exists: the failure below is not about opening one
    before = _counts(services)

    def signing_fails(*_a: Any, **_k: Any) -> Any:
        raise ServiceUnavailable("the certificate could not be signed: test")

    def database_fails(*_a: Any, **_k: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, psycopg.OperationalError("terminating connection"))

    if where == "signing":
        monkeypatch.setattr(Issuance, "_render_and_sign", signing_fails)
        expected: type[Exception] = ServiceUnavailable
    else:
        monkeypatch.setattr(IssueStore, "store_pg", database_fails)
        monkeypatch.setattr(IssueStore, "store", database_fails)
        expected = sa.exc.OperationalError
    for _ in range(3):
        with pytest.raises(expected):
            _issue(services, key="retried")
    assert _counts(services) == before
    monkeypatch.undo()
    again = _issue(services, key="retried")  # the retry with its key issues exactly one
    assert not again.replayed
    assert _issue(services, key="retried").replayed
    assert _counts(services) == (2, 2, 0, 2)


def test_a_position_taken_since_the_draw_is_drawn_again(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _issue(services)
    taken = services.certificates.status_lists.allocate(PSB)  # a slot whose certificate never comes
    real_draw = StatusListService.draw
    real_pg = IssueStore.allocate_pg
    draws: list[Slot] = []

    def draw_taken_first(self: StatusListService, uscc: str) -> Slot:
        slot = taken if not draws else real_draw(self, uscc)
        draws.append(slot)
        return slot

    def pg_taken(self: IssueStore, uscc: str, type_code: str) -> tuple[int, Slot | None]:
        serial, _slot = real_pg(self, uscc, type_code)
        draws.append(taken)
        return serial, taken

    monkeypatch.setattr(StatusListService, "draw", draw_taken_first)
    monkeypatch.setattr(IssueStore, "allocate_pg", pg_taken)
    cert = _issue(services, key="collides").certificate
    claims = decode_qr_payload(cert.qr_text).claims
    assert (claims.status_list, claims.status_index) != (taken.list_id, taken.index)
    with services.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT status_list, status_index FROM certificates WHERE identifier = :i"), {"i": cert.identifier}
        ).one()
    assert (claims.status_list, claims.status_index) == tuple(stored)
    assert len(draws) == 2
    # the certificate is stored once, with the second position; only the slot taken by hand has none
    assert _counts(services) == (2, 3, 1, 3)


def test_every_fault_seam_is_documented_and_inert_unless_armed() -> None:
    from certstore import faults

    assert faults.SEAMS
    for name in faults.SEAMS:
        assert f"``{name}``" in (faults.__doc__ or ""), name
        faults.fault_point(name)  # not armed in this process: returns
