"""The idp's ``/metrics``: token answers by grant type and error on both front doors, the logout
backlog from SQL, who may scrape; and the ``invalid_client`` that says the credentials are wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from idp.oauth.client_auth import WRONG_CREDENTIALS
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + " ") and not labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _grants(web: Any, grant_type: str, result: str) -> float:
    return _value(web.get("/metrics").get_data(as_text=True), "yiwang_idp_token_requests_total",
                  grant_type=grant_type, result=result)


def test_token_answers_are_counted_by_grant_type_and_result_on_both_paths(web: Any, rp: RP, flask_reached: list[str]) -> None:
    cc = {"grant_type": "client_credentials"}
    issued, refused = _grants(web, "client_credentials", "issued"), _grants(web, "client_credentials", "invalid_client")
    assert web.post("/token", data=cc, headers=rp.basic()).status_code == 200  # the hot path
    assert web.post("/token?via=flask", data=cc, headers=rp.basic()).status_code == 200  # Flask (a query string)
    wrong = RP(rp.client_id, "not-the-secret", rp.redirect_uri)
    assert web.post("/token", data=cc, headers=wrong.basic()).status_code == 401
    assert flask_reached == ["oauth.token"]
    assert _grants(web, "client_credentials", "issued") == issued + 2
    assert _grants(web, "client_credentials", "invalid_client") == refused + 1
    # a grant type nobody registered is counted under its name only when it is a known one
    made_up = "urn:example:" + "1" * 30
    before = _grants(web, "other", "unsupported_grant_type")
    assert web.post("/token", data={"grant_type": made_up}, headers=rp.basic()).status_code == 400
    assert _grants(web, "other", "unsupported_grant_type") == before + 1
    assert made_up not in web.get("/metrics").get_data(as_text=True)


def test_latency_is_by_route_name(web: Any, rp: RP) -> None:
    web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    web.get("/.well-known/openid-configuration")
    text = web.get("/metrics").get_data(as_text=True)
    assert _value(text, "yiwang_idp_request_duration_seconds_count", endpoint="oauth.token") >= 1
    endpoints = set(re.findall(r'yiwang_idp_request_duration_seconds_count\{endpoint="([^"]+)"', text))
    assert endpoints and not any("/" in e for e in endpoints)


def test_the_logout_backlog_is_read_from_sql_at_scrape_time(web: Any, idp_services: Any, citizen: Any) -> None:
    from idp.models import LogoutDelivery

    with idp_services.db.session() as s:
        s.add(LogoutDelivery(sid="s-1", client_id="c", uri="https://rp.example.cn/bc", status="pending",
                             created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)))
        s.add(LogoutDelivery(sid="s-2", client_id="c", uri="https://rp.example.cn/bc", status="failed"))
    text = web.get("/metrics").get_data(as_text=True)
    assert _value(text, "yiwang_idp_logout_deliveries", state="pending") == 1
    assert _value(text, "yiwang_idp_logout_deliveries", state="failed") == 1
    assert 120 <= _value(text, "yiwang_idp_logout_oldest_pending_seconds") < 600


def test_with_a_metrics_token_only_its_bearer_may_scrape(app_with: Any, idp_settings: Any) -> None:
    token = "m" * 40
    app = app_with(common=dataclasses.replace(idp_settings.common, metrics_token=token))
    client = app.test_client()
    assert client.get("/metrics").status_code == 404  # loopback alone is no longer enough
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 404
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"},
                    environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert ok.status_code == 200 and b"yiwang_idp_signins_total" in ok.data


def test_a_wrong_secret_says_the_credentials_are_wrong_on_both_paths(web: Any, rp: RP, flask_reached: list[str]) -> None:
    wrong = RP(rp.client_id, "not-the-secret", rp.redirect_uri)
    unknown = RP("no-such-client", "whatever", rp.redirect_uri)
    answers = [
        web.post("/token", data={"grant_type": "client_credentials"}, headers=wrong.basic()),  # hot path
        web.post("/token?x=1", data={"grant_type": "client_credentials"}, headers=wrong.basic()),  # Flask
        web.post("/token", data={"grant_type": "client_credentials"}, headers=unknown.basic()),
        web.post("/token", data={"grant_type": "client_credentials", "client_id": rp.client_id,
                                 "client_secret": "not-the-secret"}),  # client_secret_post
        web.post("/introspect", data={"token": "x"}, headers=wrong.basic()),
    ]
    assert "oauth.token" in flask_reached
    for resp in answers:
        body = resp.get_json()
        assert resp.status_code == 401 and body["error"] == "invalid_client", body
        assert body["error_description"] == WRONG_CREDENTIALS
        assert "methods" not in body["error_description"]
