"""Issue 19 §2: a back-channel logout receiver cannot exhaust the idp's memory or hold its worker.

Each hostile answer (1 GiB claimed and streamed, a gzip bomb, one byte a
second) is cut within the delivery deadline plus a second, the test process
grows by less than 50 MiB, and a delivery to a well-behaved receiver made
meanwhile still succeeds at once.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import sqlalchemy as sa

from idp.logout.queue import TransientDelivery
from idp.models import LogoutDelivery
from idp.netpolicy import OutboundUrlRefused, check_outbound_url
from tests.idp.logout_helpers import make_stack, seed
from tests.support.hostile_http import HostileServer, RssMeter

DEADLINE = 2  # YIWANG_IDP_LOGOUT_TIMEOUT_SECONDS: one overall deadline per delivery
TIME_BOUND = DEADLINE + 1.0
MEMORY_BOUND_MIB = 50


@pytest.fixture
def env(yiwang_env):
    return {**yiwang_env, "YIWANG_IDP_LOGOUT_TIMEOUT_SECONDS": str(DEADLINE)}


@pytest.fixture
def hostile():
    server = HostileServer().start()
    yield server
    server.stop()


def _attempt(stack, delivery_id: int) -> None:
    with contextlib.suppress(TransientDelivery):
        stack.logout.service.attempt(str(delivery_id))


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/trickle"])
def test_a_hostile_receiver_is_cut_within_the_deadline_and_memory_bound(env, hostile, logout_rp, path):
    stack = make_stack(env, create_schema=True)
    try:
        citizen = seed(stack.database, backchannel={"hostile": hostile.url(path), "normal": logout_rp.uri})
        session, _ = stack.sessions.create(
            str(citizen), 1_800_000_000, "urn:yiwang:acr:pwd", ["pwd"], "browser", "127.0.0.1", "UA"
        )
        stack.sessions.add_client(session.sid, "hostile")
        stack.sessions.add_client(session.sid, "normal")
        stack.sessions.end(session.sid, "logout")
        with stack.database.session() as db:
            ids = dict(db.execute(sa.select(LogoutDelivery.client_id, LogoutDelivery.id)).all())
        _attempt(stack, ids["normal"])  # warm up: key loading is not what is measured
        with stack.database.session() as db:
            db.get(LogoutDelivery, ids["normal"]).status = "pending"

        took: dict[str, float] = {}

        def hostile_delivery() -> None:
            t = time.monotonic()
            _attempt(stack, ids["hostile"])
            took["hostile"] = time.monotonic() - t

        with RssMeter() as meter:
            worker = threading.Thread(target=hostile_delivery, daemon=True)
            worker.start()
            time.sleep(0.3)  # the hostile answer is under way
            t = time.monotonic()
            _attempt(stack, ids["normal"])  # another worker thread, meanwhile
            took["normal"] = time.monotonic() - t
            worker.join(timeout=30)
        assert "hostile" in took, "the hostile delivery never returned"
        assert took["hostile"] < TIME_BOUND, f"held {took['hostile']:.1f} s"
        assert meter.growth_mib < MEMORY_BOUND_MIB, f"grew {meter.growth_mib:.0f} MiB"
        with stack.database.session() as db:
            normal = db.get(LogoutDelivery, ids["normal"])
            assert normal.status == "delivered"
        assert took["normal"] < 2.0
    finally:
        stack.close()


@pytest.mark.parametrize(
    "uri",
    [
        "http://portal.example/bcl",  # not https
        "https://10.1.2.3/bcl",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[::ffff:127.0.0.1]/bcl",  # loopback in IPv6 clothing
        "https://localhost/bcl",
        "https://user@portal.example/bcl",
    ],
)
def test_the_address_rule_refuses_internal_targets(uri):
    with pytest.raises(OutboundUrlRefused):
        check_outbound_url(uri, allow_loopback=False)
    check_outbound_url("https://portal.example/bcl", allow_loopback=False)


def test_a_receiver_registered_on_an_internal_address_is_not_posted_to(yiwang_env, logout_rp):
    # An idp on a real host (not the embedded demo): a loopback receiver
    # registered before the rule existed is not told, and the row fails for good.
    stack = make_stack({**yiwang_env, "YIWANG_ISSUER": "https://idp.example"}, create_schema=True)
    try:
        citizen = seed(stack.database, backchannel={"sneaky": logout_rp.uri})
        session, _ = stack.sessions.create(
            str(citizen), 1_800_000_000, "urn:yiwang:acr:pwd", ["pwd"], "browser", "127.0.0.1", "UA"
        )
        stack.sessions.add_client(session.sid, "sneaky")
        stack.sessions.end(session.sid, "logout")
        with stack.database.session() as db:
            row_id = db.scalar(sa.select(LogoutDelivery.id))
        _attempt(stack, row_id)
        with stack.database.session() as db:
            row = db.get(LogoutDelivery, row_id)
            assert row.status == "failed" and row.last_error.startswith("not sent")
        assert logout_rp.requests == 0
    finally:
        stack.close()


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(monkeypatch):
    # DNS rebinding: the name passed registration; at delivery it resolves inward.
    import socket

    from idp.logout.http import post_logout_token

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    outcome = post_logout_token("https://rp.example/bcl", "t", timeout=2)
    assert outcome.result == "failed" and "public" in outcome.detail
