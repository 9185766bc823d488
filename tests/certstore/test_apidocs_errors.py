"""Errors that point the right way (issue 18): a token not meant for certstore, a token without the
scope, a body that is not JSON although it says it is. The problem codes stay what they were."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_a_token_for_another_audience_says_it_was_not_issued_for_certstore(client: Any, mint: Callable[..., str]) -> None:
    token = mint(aud="portal", scope="openid profile")
    resp = client.post("/api/v1/certificates", json={}, headers={"Authorization": f"Bearer {token}"})
    body = resp.get_json()
    assert resp.status_code == 401 and body["code"] == "invalid_token"
    assert "not issued for certstore" in body["detail"] and "scope=certs:issue" in body["detail"]
    assert "claim aud" not in body["detail"]


def test_a_token_without_the_scope_names_the_scope_to_ask_for(client: Any, mint: Callable[..., str]) -> None:
    token = mint(scope="certs:lookup")
    resp = client.post("/api/v1/certificates", json={}, headers={"Authorization": f"Bearer {token}"})
    body = resp.get_json()
    assert resp.status_code == 403 and body["code"] == "insufficient_scope"
    assert "lacks the scope certs:issue" in body["detail"] and "scope=certs:issue" in body["detail"]
    assert 'scope="certs:issue"' in resp.headers["WWW-Authenticate"]


def test_malformed_json_with_the_json_content_type_says_the_body_is_not_json(client: Any, mint: Callable[..., str]) -> None:
    headers = {"Authorization": f"Bearer {mint()}", "Content-Type": "application/json"}
    resp = client.post("/api/v1/certificates", data=b'{"type": "JZZM", "holder_code": 11010519491231002X}',
                       headers=headers)
    body = resp.get_json()
    assert resp.status_code == 422 and body["code"] == "invalid_input" and body["field"] == "body"
    assert body["detail"].startswith("the request body is not JSON, although its Content-Type says so")
    assert "line 1, column" in body["detail"]
    assert "11010519491231002X" not in body["detail"]  # where the parser stopped, never what it read
    plain = client.post("/api/v1/certificates", data=b"type=JZZM", headers={
        "Authorization": f"Bearer {mint()}", "Content-Type": "application/x-www-form-urlencoded"})
    assert "Content-Type: application/json" in plain.get_json()["detail"]
