"""Logs (issue 18): YIWANG_LOG_FORMAT=json, a request id in every record of a request and in its
answer, one access line per request naming the route (never the raw path), failed sign-ins logged
with the masked ID number."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keys.logs import make_handler
from tests.idp import conftest as _idp_fixtures
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, RP, login

REPO = Path(__file__).resolve().parents[1]
app_with = _idp_fixtures.app_with  # the fixture


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above during the test, as the JSON format writes it."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_request_id_of_their_request(web: Any, citizen: Any, rp: RP, json_lines: io.StringIO) -> None:
    page = web.get("/authorize", query_string={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    json_lines.truncate(0)
    json_lines.seek(0)
    resp = login(web, page, password="not-the-password-1")  # noqa: S106
    rid = resp.headers["X-Request-Id"]
    records = _records(json_lines)
    mine = [r for r in records if r.get("request_id") == rid]
    failed = [r for r in mine if r["logger"] == "idp.signin"]
    assert failed and failed[0]["level"] == "WARNING" and "sign-in failed" in failed[0]["message"]
    assert ID_NUMBER not in json_lines.getvalue()
    assert ID_NUMBER[:6] + "********" + ID_NUMBER[-4:] in failed[0]["message"]  # the masked number
    access = [r for r in mine if r["logger"] == "yiwang.access"]
    assert len(access) == 1
    assert access[0]["route"] == "auth.login" and access[0]["method"] == "POST" and access[0]["status"] == "401"
    assert "flow=" not in json_lines.getvalue()  # the query string is never logged

    # the hot path answers without Flask: one access line too, under the route's name
    json_lines.truncate(0)
    json_lines.seek(0)
    cc = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    (line,) = [r for r in _records(json_lines) if r["logger"] == "yiwang.access"]
    assert line["route"] == "oauth.token" and line["request_id"] == cc.headers["X-Request-Id"]
    assert cc.get_json()["access_token"] not in json_lines.getvalue() and rp.secret not in json_lines.getvalue()


def test_the_request_id_is_taken_from_the_request_only_when_trusted(app_with: Any, idp_settings: Any) -> None:
    untrusted = app_with().test_client()
    resp = untrusted.get("/healthz", headers={"X-Request-Id": "from-the-client-1"})
    assert resp.headers["X-Request-Id"] != "from-the-client-1" and len(resp.headers["X-Request-Id"]) == 24
    trusted = app_with(common=dataclasses.replace(idp_settings.common, trust_request_id=True)).test_client()
    assert trusted.get("/healthz", headers={"X-Request-Id": "proxy-abc.123"}).headers["X-Request-Id"] == "proxy-abc.123"
    # a value that could forge a log line is replaced, trusted or not
    forged = trusted.get("/healthz", headers={"X-Request-Id": 'x" injected="1'}).headers["X-Request-Id"]
    assert "injected" not in forged


def test_the_json_format_is_chosen_in_one_place(tmp_path: Path) -> None:
    code = ("from keys.logs import configure; import logging; configure('info', 'json'); "
            "logging.getLogger('idp.example').warning('hello %s', 'there')")
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)}, timeout=60,
    )
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["message"] == "hello there" and record["level"] == "WARNING"
    assert record["logger"] == "idp.example" and record["request_id"] == "-" and "asctime" in record


def test_the_access_line_can_be_left_to_the_proxy(app_with: Any, idp_settings: Any, json_lines: io.StringIO) -> None:
    quiet = app_with(common=dataclasses.replace(idp_settings.common, access_log=False)).test_client()
    resp = quiet.get("/healthz")
    assert resp.headers["X-Request-Id"]  # the id stays
    assert not [r for r in _records(json_lines) if r["logger"] == "yiwang.access"]
    app_with().test_client().get("/healthz")
    assert [r["route"] for r in _records(json_lines) if r["logger"] == "yiwang.access"] == ["wellknown.healthz"]

