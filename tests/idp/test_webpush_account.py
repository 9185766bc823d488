"""The citizen subscribes a device to Web Push from the account page (issue 13 §1)."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from typing import Any

import sqlalchemy as sa

from idp.models import AuditEvent
from idp.push.subscriptions import SubscriptionStore
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP, authorize_code
from tests.idp.test_webpush import Device


def _section(web: Any) -> dict[str, str]:
    page = web.get("/account")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    m = re.search(r'<section id="push"(.*?)>', html, re.S)
    assert m, "no push section on the account page"
    attrs = {k: unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1))}
    assert 'src="/static/push.js"' in html
    return attrs


def test_a_signed_in_citizen_subscribes_and_unsubscribes_a_device(web: Any, idp_services: Any, citizen: Any,
                                                                  rp: RP) -> None:
    authorize_code(web, rp)
    attrs = _section(web)
    key = web.get(attrs["key-url"]).get_json()["applicationServerKey"]
    assert len(base64.urlsafe_b64decode(key + "=")) == 65
    device = Device("https://fcm.googleapis.com/fcm/send/dev-1")
    sub = json.dumps(device.json)
    resp = web.post(attrs["subscribe-url"], data={"csrf_token": attrs["csrf"], "subscription": sub})
    assert resp.status_code == 201 and resp.get_json() == {"devices": 1}
    assert SubscriptionStore(idp_services.db).for_citizen(citizen.id)[0].endpoint.endswith("/dev-1")
    resp = web.post(attrs["unsubscribe-url"], data={"csrf_token": attrs["csrf"],
                                                    "endpoint": device.json["endpoint"]})
    assert resp.status_code == 200 and resp.get_json() == {"devices": 0, "removed": 1}
    idp_services.audit.flush()
    with idp_services.db.session() as s:
        kinds = set(s.scalars(sa.select(AuditEvent.kind)))
    assert {"push.subscribed", "push.unsubscribed"} <= kinds


def test_csrf_a_session_and_a_good_subscription_are_required(app: Any, web: Any, idp_services: Any,
                                                             citizen: Any, rp: RP) -> None:
    good = json.dumps(Device("https://fcm.googleapis.com/fcm/send/dev-2").json)
    anonymous = app.test_client()
    assert anonymous.post("/account/push/subscribe", data={"subscription": good}).status_code == 401
    authorize_code(web, rp)
    attrs = _section(web)
    assert web.post(attrs["subscribe-url"], data={"subscription": good}).status_code == 400
    assert web.post(attrs["subscribe-url"], data={"csrf_token": "0" * 64, "subscription": good}).status_code == 400
    for bad in ("not json", json.dumps({"endpoint": "https://10.1.2.3/x", "keys": {}}),
                json.dumps({"endpoint": "http://push.example.cn/x", "keys": {}})):
        resp = web.post(attrs["subscribe-url"], data={"csrf_token": attrs["csrf"], "subscription": bad})
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert SubscriptionStore(idp_services.db).count(citizen.id) == 0


def test_the_service_worker_and_the_page_script_are_served(web: Any) -> None:
    sw = web.get("/static/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["Content-Type"]
    text = sw.get_data(as_text=True)
    assert "showNotification" in text and "notificationclick" in text
    assert web.get("/static/push.js").status_code == 200
