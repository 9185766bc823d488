"""keys.metrics request timing: the web layers' hooks observe a duration and name the endpoint."""

from __future__ import annotations

from typing import Any

from keys.logs import ENDPOINT_KEY
from keys.metrics import request_finished, request_started


def test_a_started_request_is_observed_under_its_endpoint() -> None:
    environ: dict[str, Any] = {}
    seen: list[tuple[str | None, float]] = []
    request_started(environ)
    request_finished(environ, "oauth.token", lambda endpoint, seconds: seen.append((endpoint, seconds)))
    assert [e for e, _ in seen] == ["oauth.token"] and seen[0][1] >= 0
    assert environ[ENDPOINT_KEY] == "oauth.token"


def test_a_request_never_started_is_not_timed_and_no_endpoint_is_not_named() -> None:
    environ: dict[str, Any] = {}
    seen: list[tuple[str | None, float]] = []
    request_finished(environ, None, lambda endpoint, seconds: seen.append((endpoint, seconds)))
    assert seen == [] and ENDPOINT_KEY not in environ
