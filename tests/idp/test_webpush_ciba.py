"""Web Push in a real CIBA request (issue 13 §1): a clerk asks, the citizen's subscribed device gets
the push (decrypted here), and its link is the approval page the live notifier shows."""

from __future__ import annotations

import json
import time
from typing import Any

from idp.ciba.registration import CibaRegistration
from tests.idp.ciba_helpers import CIBA, make_ciba_rp, signed_in_phone, start
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER
from tests.idp.test_staff import make_staff, redeem, staff_sign_in
from tests.idp.test_webpush import Device, PushService, push_service  # noqa: F401 - a fixture
from tests.idp.test_webpush_account import _section


def test_a_counter_request_pushes_to_the_citizens_device(app_with: Any, idp_services: Any, citizen: Any,
                                                         push_service: PushService) -> None:  # noqa: F811
    app = app_with(allow_loopback_callbacks=True)  # the push service of this test listens on 127.0.0.1
    counter = make_ciba_rp(idp_services, name="朝阳区政务服务中心", grant_types=("authorization_code", CIBA),
                           scopes=("openid", "profile"), audience="staff", first_party=True,
                           reg=CibaRegistration(acting="clerk"))
    phone = signed_in_phone(app)
    attrs = _section(phone)
    device = Device(push_service.url + "/push/v1/phone")
    resp = phone.post(attrs["subscribe-url"], data={"csrf_token": attrs["csrf"],
                                                    "subscription": json.dumps(device.json)})
    assert resp.status_code == 201, resp.data
    desk = app.test_client()
    _, totp = make_staff(idp_services)
    signed, verifier = staff_sign_in(desk, counter, totp)
    clerk = redeem(desk, counter, signed.headers["Location"], verifier)["id_token"]
    runtime = app.extensions["yiwang"]
    runtime.logout.start_worker(sweep=False)  # the pushes are jobs on the idp's queue (actor ciba_webpush)
    resp = start(app.test_client(), counter, login_hint=ID_NUMBER, actor_token=clerk, binding_message="A7X2")
    assert resp.status_code == 200, resp.data
    deadline = time.monotonic() + 30  # a wait for the job, not a measurement
    while not push_service.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(push_service.received) == 1
    _path, _headers, body = push_service.received[0]
    message = device.decrypt(body)
    live = phone.get("/ciba/pending").get_json()["pending"]
    assert message == {"v": 1, "kind": "counter", "url": f"/ciba/{live[0]['id']}"}
    assert resp.get_json()["auth_req_id"] not in json.dumps(message) and "A7X2" not in json.dumps(message)
