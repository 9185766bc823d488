"""Web Push for CIBA (issue 13 §1): a real push, encrypted by pywebpush, received and decrypted here.

The push service is an HTTP server this test starts on 127.0.0.1; it keeps
what it receives, and the test decrypts the body with the subscription's
private key (http_ece, RFC 8291) and checks the VAPID signature (RFC 8292).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from idp.ciba.notify import ActorDisplay, PendingApproval
from idp.ciba.webpush import WebPushNotifier, build_webpush
from idp.errors import InvalidInput
from idp.push.subscriptions import SubscriptionStore
from idp.push.vapid import Vapid
from tests.idp.oidc_helpers import *  # noqa: F403


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService:
    """A stand-in push service: records each POST; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 201
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Device:
    """A browser's push subscription: its ECDH key pair and auth secret (RFC 8291 §3)."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = b"0123456789abcdef"
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        self.json = {"endpoint": endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def decrypt(self, body: bytes) -> Any:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()


def pending(account_id: int, *, expires_in: int = 300, actor: bool = True) -> PendingApproval:
    return PendingApproval(
        account_id=account_id, display_id="d-8Qm2", client_name="窗口受理系统",
        actor=ActorDisplay("clerk", "王芳", "3 号窗口") if actor else None,
        binding_message="A7X2", scopes=("openid", "profile"), expires_at=int(time.time()) + expires_in)


def notifier(idp_services: Any) -> WebPushNotifier:
    store = SubscriptionStore(idp_services.db, allow_loopback=True)
    return WebPushNotifier(store=store, vapid=Vapid(idp_services.keyring, "mailto:ops@yiwang.example.cn"),
                           allow_loopback=True)


def test_a_pending_request_reaches_the_device_encrypted_and_vapid_signed(idp_services: Any, citizen: Any,
                                                                         push_service: PushService) -> None:
    n = notifier(idp_services)
    device = Device(push_service.url + "/push/v1/sub-1")
    n.store.add(citizen.id, device.json, user_agent="Chromium")
    n.notify(pending(citizen.id))
    assert len(push_service.received) == 1
    path, headers, body = push_service.received[0]
    assert path == "/push/v1/sub-1" and headers["content-encoding"] == "aes128gcm"
    assert b"A7X2" not in body and "王芳".encode() not in body  # encrypted, and ...
    message = device.decrypt(body)
    assert message == {"v": 1, "kind": "counter", "url": "/ciba/d-8Qm2"}  # ... says only what is needed
    assert 0 < int(headers["ttl"]) <= 300 and headers["urgency"] == "high"
    scheme, _, rest = headers["authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    assert scheme == "vapid" and fields["k"] == n.vapid.application_server_key()
    point = unb64url(fields["k"])
    key = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:])})
    claims = jose_jwt.decode(fields["t"], key, algorithms=["ES256"]).claims  # signed by the idp-vapid key
    assert claims["aud"] == push_service.url and claims["sub"] == "mailto:ops@yiwang.example.cn"
    assert claims["exp"] - time.time() <= 24 * 3600


def test_a_hotline_request_and_one_without_an_actor_say_so(idp_services: Any, citizen: Any,
                                                           push_service: PushService) -> None:
    n = notifier(idp_services)
    device = Device(push_service.url + "/push/v1/sub-2")
    n.store.add(citizen.id, device.json)
    agent = PendingApproval(account_id=citizen.id, display_id="d-2", client_name="12345", binding_message=None,
                            actor=ActorDisplay("agent", "李强", "12345 热线"), scopes=("openid",),
                            expires_at=int(time.time()) + 60)
    n.notify(agent)
    n.notify(pending(citizen.id, actor=False))
    kinds = [device.decrypt(body)["kind"] for _, _, body in push_service.received]
    assert kinds == ["hotline", "request"]


def test_a_gone_subscription_is_forgotten_and_an_expired_request_is_not_pushed(
        idp_services: Any, citizen: Any, push_service: PushService) -> None:
    n = notifier(idp_services)
    n.store.add(citizen.id, Device(push_service.url + "/push/v1/gone").json)
    n.notify(pending(citizen.id, expires_in=-1))
    assert push_service.received == []
    push_service.status = 410
    n.notify(pending(citizen.id))  # must not raise
    assert len(push_service.received) == 1 and n.store.count(citizen.id) == 0


def test_a_push_service_that_cannot_be_reached_does_not_raise(idp_services: Any, citizen: Any) -> None:
    n = notifier(idp_services)
    n.store.add(citizen.id, Device("http://127.0.0.1:9/push/nowhere").json)
    n.notify(pending(citizen.id))
    assert n.store.count(citizen.id) == 1


def test_subscriptions_are_checked_before_they_are_kept(idp_services: Any, citizen: Any) -> None:
    store = SubscriptionStore(idp_services.db)  # production rule: https to a public host
    good = Device("https://fcm.googleapis.com/fcm/send/abc").json
    for bad in ({**good, "endpoint": "http://push.example.cn/x"}, {**good, "endpoint": "https://10.0.0.8/x"},
                {**good, "endpoint": "https://127.0.0.1/x"}, {**good, "keys": {"p256dh": "AAAA", "auth": "x"}},
                {**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": b64url(b"short")}}, "nope", {}):
        with pytest.raises(InvalidInput):
            store.add(citizen.id, bad)
    store.add(citizen.id, good)
    store.add(citizen.id, good)  # the same endpoint again replaces it
    assert store.count(citizen.id) == 1
    for i in range(12):
        store.add(citizen.id, Device(f"https://fcm.googleapis.com/fcm/send/{i}").json)
    assert store.count(citizen.id) == 10


def test_the_container_settings_build_the_notifier(idp_settings: Any, idp_services: Any) -> None:
    built = build_webpush(idp_settings, idp_services)
    assert built is not None and built.vapid.subject == idp_settings.issuer
    assert len(unb64url(built.vapid.application_server_key())) == 65


def test_the_queued_attempt_retries_a_busy_push_service_and_stops_at_gone(
        idp_services: Any, citizen: Any, push_service: PushService) -> None:
    from idp.logout.queue import TransientDelivery

    n = notifier(idp_services)
    sub = n.store.add(citizen.id, Device(push_service.url + "/push/v1/busy").json)
    payload = {"v": 1, "kind": "counter", "url": "/ciba/d-1"}
    expires = int(time.time()) + 300
    push_service.status = 503
    with pytest.raises(TransientDelivery):
        n.attempt(sub.id, payload, expires, "d-1")
    push_service.status = 429
    with pytest.raises(TransientDelivery):
        n.attempt(sub.id, payload, expires, "d-1")
    push_service.status = 400
    assert n.attempt(sub.id, payload, expires, "d-1") == "failed"
    assert n.attempt(sub.id, payload, int(time.time()) - 1, "d-1") == "expired"
    push_service.status = 201
    assert n.attempt(sub.id, payload, expires, "d-1") == "delivered"
    push_service.status = 410
    assert n.attempt(sub.id, payload, expires, "d-1") == "gone"
    assert n.attempt(sub.id, payload, expires, "d-1") == "gone"  # forgotten: nothing sent
    assert len(push_service.received) == 5
