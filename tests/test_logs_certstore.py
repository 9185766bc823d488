"""certstore's access lines (issue 18): the route's name, never the certificate in the path."""

from __future__ import annotations

import io
from typing import Any

from tests.certstore.conftest import *  # noqa: F403 (certstore's app and client fixtures)

from . import test_logs

json_lines = test_logs.json_lines  # the fixture
_records = test_logs._records


def test_certstore_access_lines_name_the_route_not_the_certificate(client: Any, json_lines: io.StringIO) -> None:
    identifier = "1.2.156.3005.2.JZZM.111101050000000017.000009.1.7"
    resp = client.get(f"/verify/offline/trust.json?x={identifier}")
    client.get(f"/api/v1/certificates/{identifier}")
    lines = [r for r in _records(json_lines) if r["logger"] == "yiwang.access"]
    assert [r["route"] for r in lines] == ["offline.trust_json", "api.get_certificate"]
    assert lines[0]["request_id"] == resp.headers["X-Request-Id"]
    assert identifier not in json_lines.getvalue()
