"""CIBA ping mode (§10.2): the callback through the job queue, its bearer, retries, then the token fetch."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from idp.ciba.registration import CibaRegistration
from idp.ciba.store import auth_req_hash
from idp.settings import IdpSettings
from tests.idp.ciba_helpers import decide, make_ciba_rp, pending_ids, poll, signed_in_phone, start
from tests.idp.logout_helpers import wait_until
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import FAST_HASH, ID_NUMBER, ISSUER


class PingReceiver:
    """The client's notification endpoint on 127.0.0.1: records each callback; ``statuses`` are answered in turn."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append((self.headers.get("Authorization", ""), json.loads(body or b"{}")))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/ciba/ping"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp_settings(yiwang_env: dict[str, str]) -> IdpSettings:
    """The embedded demo's rule: callbacks may go to loopback; quick retries."""
    env = dict(yiwang_env, YIWANG_ISSUER=ISSUER)
    return IdpSettings.from_env(env).with_(**FAST_HASH, allow_loopback_callbacks=True, logout_min_backoff_ms=50,
                                           logout_max_backoff_ms=200)


@pytest.fixture
def receiver() -> Iterator[PingReceiver]:
    r = PingReceiver()
    yield r
    r.stop()


@pytest.fixture
def worker(app: Any) -> Iterator[Any]:
    runtime = app.extensions["yiwang"].logout
    runtime.queue.start_worker(sweep=False)
    yield runtime.queue
    runtime.queue.stop_worker()


def _ping_client(services: Any, receiver: PingReceiver) -> Any:
    return make_ciba_rp(services, name="热线系统", reg=CibaRegistration(mode="ping", notification_endpoint=receiver.uri))


def test_ping_after_approval_then_the_tokens(web: Any, app: Any, idp_services: Any, citizen: Any,
                                             receiver: PingReceiver, worker: Any) -> None:
    hotline = _ping_client(idp_services, receiver)
    missing = start(web, hotline, login_hint=ID_NUMBER)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"  # no notification token
    receiver.statuses = [503]  # the first callback fails: retried by the queue
    rid = start(web, hotline, login_hint=ID_NUMBER, client_notification_token="nt-" + "x" * 30).get_json()[
        "auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0])
    wait_until(lambda: len(receiver.calls) >= 2)
    for auth, body in receiver.calls:
        assert auth == "Bearer nt-" + "x" * 30 and body == {"auth_req_id": rid}
    tokens = poll(web, hotline, rid)
    assert tokens.status_code == 200 and "id_token" in tokens.get_json()


def test_ping_after_denial_and_no_ping_once_redeemed(web: Any, app: Any, idp_services: Any, citizen: Any,
                                                     receiver: PingReceiver, worker: Any) -> None:
    hotline = _ping_client(idp_services, receiver)
    rid = start(web, hotline, login_hint=ID_NUMBER, client_notification_token="tok-deny-" + "y" * 20).get_json()[
        "auth_req_id"]
    phone = signed_in_phone(app)
    decide(phone, pending_ids(phone)[0], "deny")
    wait_until(lambda: receiver.calls)
    assert receiver.calls[0][1] == {"auth_req_id": rid}
    assert poll(web, hotline, rid).get_json()["error"] == "access_denied"
    # a ping job for a request already gone does nothing (its retries end)
    ciba = app.extensions["yiwang"].server.ciba
    assert ciba.ping.attempt(auth_req_hash("no-such-request")) == "gone"


def test_ping_to_a_private_address_is_not_sent(app: Any, idp_services: Any, citizen: Any) -> None:
    from idp.ciba.ping import post_ping

    outcome = post_ping("http://10.1.2.3/ping", "rid", "tok", timeout=1, allow_loopback=True)
    assert outcome.result == "failed" and "not sent" in outcome.detail
