"""``/metrics`` of both services after a sign-in, a token grant and an issuance (issue 18, must show).

The series are there, with their labels; and nothing a scrape shows is an
identifier of a person or a secret: not the citizen's ID number, not a client
secret, not the access token, not the certificate's identifier.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from tests.idp.oidc_helpers import ID_NUMBER, login

from .conftest import DEMO_REQUESTS
from .idp_world import *  # noqa: F403 (the world fixture)
from .idp_world import World


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels…}`` of an exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _scrape(client: Any) -> str:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"
    return str(resp.get_data(as_text=True))


def test_both_scrapes_count_sign_ins_grants_and_issuance_and_leak_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    idp_before, cs_before = _scrape(world.idp), _scrape(world.cs)

    # a failed sign-in (logged, masked), then a real one through the whole flow
    page = world.idp.get("/authorize", query_string={
        "response_type": "code", "client_id": "portal", "redirect_uri": world.portal.redirect_uri,
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    with caplog.at_level(logging.WARNING, logger="idp.signin"):
        login(world.idp, page, password="not-the-password-1")  # noqa: S106
    citizen = world.citizen_tokens(world.portal, "openid certs:read")
    # a client-credentials grant (the hot path) and an issuance through the API
    token = world.client_token("demo-psb", "certs:issue")
    req = DEMO_REQUESTS["JZZM"]
    resp = world.cs.post("/api/v1/certificates", json={**req["body"], "paper_serial": "metrics-1"},
                         headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    identifier = resp.get_json()["identifier"]
    verified = world.cs.post("/api/v1/verify", json={"text": resp.get_json()["qr_text"]})
    assert verified.status_code == 200 and verified.get_json()["valid"] is True

    idp_text, cs_text = _scrape(world.idp), _scrape(world.cs)

    def grew(text: str, before: str, name: str, **labels: str) -> float:
        return _value(text, name, **labels) - _value(before, name, **labels)

    assert grew(idp_text, idp_before, "yiwang_idp_signins_total", result="success") >= 1
    assert grew(idp_text, idp_before, "yiwang_idp_signins_total", result="bad_credentials") == 1
    assert grew(idp_text, idp_before, "yiwang_idp_token_requests_total",
                grant_type="client_credentials", result="issued") >= 1
    assert grew(idp_text, idp_before, "yiwang_idp_token_requests_total",
                grant_type="authorization_code", result="issued") >= 1
    assert grew(idp_text, idp_before, "yiwang_idp_request_duration_seconds_count", endpoint="oauth.token") >= 2
    assert grew(idp_text, idp_before, "yiwang_idp_request_duration_seconds_count", endpoint="oauth.authorize") >= 1
    assert "yiwang_idp_logout_deliveries{" in idp_text and "yiwang_idp_logout_oldest_pending_seconds" in idp_text
    assert grew(cs_text, cs_before, "yiwang_certstore_certificates_issued_total", type="JZZM", result="issued") == 1
    assert grew(cs_text, cs_before, "yiwang_certstore_verifications_total", kind="qr", result="valid") == 1
    assert grew(cs_text, cs_before, "yiwang_certstore_request_duration_seconds_count",
                endpoint="api.issue_certificate") == 1

    # nothing personal or secret in either scrape; routes by name, never by path
    for text in (idp_text, cs_text):
        for needle in (ID_NUMBER, ID_NUMBER[-8:], req["body"]["holder_code"], identifier, token,
                       citizen["access_token"], *world.secrets.values()):
            assert needle not in text
        assert "/api/v1/certificates/" not in text and "1.2.156.3005" not in text

    failed = [r.getMessage() for r in caplog.records if r.name == "idp.signin"]
    assert failed and "sign-in failed" in failed[0]
    assert ID_NUMBER not in failed[0] and "*" in failed[0]  # the masked number


def test_metrics_answer_loopback_only_unless_a_token_is_configured(world: World) -> None:
    for client in (world.idp, world.cs):
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 404
        # a proxy on this host relays an Internet request: it looks local, but it is not
        relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert relayed.status_code == 404
        assert client.get("/metrics").status_code == 200
