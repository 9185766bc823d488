"""CIBA with an independent client: panva's ``openid-client`` (npm, v6) against ``idp serve`` (issue 13 §1).

openid-client's own CIBA functions (``initiateBackchannelAuthentication``,
``pollBackchannelAuthenticationGrant``; for ping mode its notification endpoint
and one ``genericGrantRequest``) talk to a real idp process; the citizen approves
in Chromium on their own signed-in account page, where the request appears
without a reload (the embedded live notifier). Also: an unknown citizen reaches
the client as ``unknown_user_id``, and a used ``auth_req_id`` as ``invalid_grant``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, make_id
from tests.idp.test_e2e_browser import _free_port, _idp, serving
from tests.support.browser import browser_fixture as browser  # noqa: F401 - the fixture
from tests.support.browser import prepared_idp, sign_in

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parents[1] / "interop" / "ciba"
CIBA = "urn:openid:params:grant-type:ciba"


def _npm_install() -> None:
    """openid-client into tests/interop/ciba/node_modules, once (kept between runs)."""
    if (HERE / "node_modules" / "openid-client" / "package.json").exists():
        return
    out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"],  # noqa: S603, S607
                         cwd=HERE, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def _client(env: dict[str, str], name: str, *extra: str) -> dict[str, str]:
    out = json.loads(_idp(env, "clients", "add", "--name", name, "--grant-type", CIBA, "--scope", "openid",
                          "--scope", "profile", *extra, "--json"))
    return {"client_id": out["client_id"], "client_secret": out["client_secret"]}


def _approve(page: Any, issuer: str, binding_message: str) -> None:
    """The citizen's account page, already open: the request shows up without reload; review and allow."""
    item = page.locator("#ciba-pending-list li").first
    item.wait_for(timeout=15_000)
    assert binding_message in item.inner_text()
    item.locator("a").click()
    page.wait_for_selector("#ciba-binding-message")
    assert page.inner_text("#ciba-binding-message") == binding_message
    page.click("#approve")
    page.wait_for_selector('#ciba-result[data-outcome="approved"]')
    page.goto(issuer + "/account")  # back to the account page for the next request


def test_openid_client_poll_and_ping_with_approval_in_chromium(yiwang_env: dict[str, str], tmp_path: Path,
                                                              browser: Any) -> None:  # noqa: F811
    _npm_install()
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    env = {**env, "YIWANG_IDP_CIBA_INTERVAL_SECONDS": "1", "YIWANG_IDP_INPROCESS_WORKER": "true",
           "YIWANG_IDP_ALLOW_LOOPBACK_CALLBACKS": "true"}
    ping_port = _free_port()
    config = {"issuer": issuer, "id_number": ID_NUMBER, "unknown_id": make_id("11010519800101123"),
              "ping_port": ping_port,
              "poll": _client(env, "市民服务窗口"),
              "ping": _client(env, "12345 热线", "--ciba-mode", "ping", "--ciba-notification-endpoint",
                              f"http://127.0.0.1:{ping_port}/ciba/ping")}
    with serving(env, port, tmp_path / "idp.log"):
        page = browser.new_page()
        page.goto(issuer + "/account")
        sign_in(page, ID_NUMBER, PASSWORD)
        page.wait_for_url("**/account**")
        node = subprocess.Popen(["node", str(HERE / "flow.mjs"), json.dumps(config)],  # noqa: S603, S607
                                cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: dict[str, dict[str, Any]] = {}
        try:
            for _ in range(8):
                raw = node.stdout.readline()  # type: ignore[union-attr]
                if not raw:
                    break
                line = json.loads(raw)
                lines[line.get("step") or "started:" + line["started"]] = line
                if "started" in line:
                    _approve(page, issuer, line["binding_message"])
            node.wait(timeout=60)
        finally:
            if node.poll() is None:
                node.kill()
        assert node.returncode == 0, (lines, node.stderr.read(), (tmp_path / "idp.log").read_text()[-3000:])  # type: ignore[union-attr]
    assert lines["unknown"]["error"] == "unknown_user_id"
    assert lines["started:poll"]["interval"] == 1 and lines["started:poll"]["expires_in"] == 300
    poll = lines["poll"]
    assert poll["token_type"].lower() == "bearer" and poll["aud"] == config["poll"]["client_id"] and poll["sid"]
    assert poll["scope"] == "openid profile"
    assert lines["ping"] == {"step": "ping", "bearer_ok": True, "id_ok": True, "content_type": "application/json"}
    assert lines["ping_token"]["sid"] == poll["sid"]  # both grants belong to the approving session
    assert lines["replay"]["error"] == "invalid_grant"
