"""DPoP with an independent client: panva's ``openid-client`` (npm, v6) against a real ``idp serve``
and certstore (RFC 9449; issue 14).

openid-client pushes the authorization request with a DPoP proof (PAR binds the code to its
key), redeems the code, refreshes, calls userinfo, and as an agency gets a client-credentials
token and calls certstore's API with it — every request with a proof of its key. The idp
requires server nonces at its token endpoint, so the client has to answer ``use_dpop_nonce``.
The login page is filled in by this test (no browser): node prints the authorization URL and
reads the callback URL back.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from tests.conftest import private_database
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, csrf_of
from tests.idp.test_e2e_browser import _free_port, _idp, serving
from tests.keys.dpop_client import DPoPKey

from .conftest import populate

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parents[1] / "interop" / "dpop"
PORTAL_CB = "https://portal.example.cn/cb"


def _npm_install() -> None:
    """openid-client into tests/interop/dpop/node_modules, once (kept between runs)."""
    if (HERE / "node_modules" / "openid-client" / "package.json").exists():
        return
    command = ["npm", "ci" if (HERE / "package-lock.json").exists() else "install",
               "--no-audit", "--no-fund", "--silent"]
    out = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=300)  # noqa: S603
    assert out.returncode == 0, out.stderr[-2000:]


@contextlib.contextmanager
def certstore_serving(issuer: str, root: Path) -> Iterator[str]:
    """certstore in this process on a loopback port, checking tokens against ``issuer``'s JWKS."""
    from werkzeug.serving import make_server

    from certstore.settings import CertstoreSettings
    from certstore.web import create_app
    from certstore.wiring import build_services
    from keys.config import CommonSettings

    server = make_server("127.0.0.1", 0, lambda e, s: app(e, s), threaded=True)
    public_url = f"http://127.0.0.1:{server.server_port}"
    with private_database(root, name="cs") as url:
        common = CommonSettings.from_values({"HOME": root / "home", "DATABASE_URL": url, "ISSUER": issuer},
                                            default_issuer=issuer)
        services = build_services(CertstoreSettings(common=common, public_url=public_url))
        populate(services)
        app = create_app(services=services)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield public_url
        finally:
            server.shutdown()
            services.close()


def _sign_in(authorize: str) -> str:
    """Log in on the idp's page as a browser would; the URL the idp sends the browser back to."""
    web = requests.Session()
    resp = web.get(authorize, allow_redirects=False, timeout=10)
    for _ in range(8):
        html = resp.text if resp.status_code == 200 else ""
        if 'id="login-form"' in html:
            action = unescape(html.split('id="login-form"')[0].rsplit('action="', 1)[1].split('"', 1)[0])
            resp = web.post(urljoin(resp.url, action), allow_redirects=False, timeout=10,
                            data={"csrf_token": csrf_of(html), "id_number": ID_NUMBER, "password": PASSWORD})
            continue
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(PORTAL_CB):
            return location
        resp = web.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("the sign-in did not come back to the portal")


@pytest.fixture
def dpop_world(yiwang_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    _npm_install()
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, **yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "1024",
           "YIWANG_IDP_DPOP_NONCE_ENDPOINTS": "token"}
    env = {k: v for k, v in env.items() if not k.startswith("YIWANG_TEST_")}
    _idp(env, "db", "upgrade")
    _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD + "\n")
    portal = json.loads(_idp(env, "clients", "add", "--name", "门户", "--redirect-uri", PORTAL_CB,
                             "--scope", "openid", "--scope", "profile", "--scope", "offline_access",
                             "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                             "--first-party", "--dpop-bound", "--json"))
    assert portal["dpop_bound_access_tokens"] is True
    agency = json.loads(_idp(env, "clients", "add", "--name", "公安局", "--client-id", "demo-psb",
                             "--grant-type", "client_credentials", "--scope", "certs:issue", "--json"))
    with serving(env, port, tmp_path / "idp.log"), certstore_serving(issuer, tmp_path / "cs") as cs_url:
        yield {"issuer": issuer, "certstore": cs_url,
               "portal": {"client_id": portal["client_id"], "client_secret": portal["client_secret"],
                          "redirect_uri": PORTAL_CB},
               "agency": {"client_id": agency["client_id"], "client_secret": agency["client_secret"]}}


def test_openid_client_uses_dpop_with_par_refresh_userinfo_nonces_and_certstore(dpop_world: dict[str, Any]) -> None:
    issuer = dpop_world["issuer"]
    # The idp really requires nonces at its token endpoint: a proof without one is answered so.
    key = DPoPKey()
    agency = dpop_world["agency"]
    bare = requests.post(issuer + "/token", data={"grant_type": "client_credentials", "scope": "certs:issue"},
                         auth=(agency["client_id"], agency["client_secret"]),
                         headers={"DPoP": key.proof("POST", issuer + "/token")}, timeout=10)
    assert bare.status_code == 400 and bare.json()["error"] == "use_dpop_nonce" and bare.headers["DPoP-Nonce"]

    node = subprocess.Popen(["node", str(HERE / "flow.mjs"), json.dumps(dpop_world)],  # noqa: S603, S607
                            cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = json.loads(node.stdout.readline() or "{}")  # type: ignore[union-attr]
        assert "authorize" in first, node.stderr.read()  # type: ignore[union-attr]
        assert "request_uri=" in first["authorize"]  # pushed (PAR)
        callback = _sign_in(first["authorize"])
        out, err = node.communicate(callback + "\n", timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 0, err[-3000:]
    steps = {s["step"]: s for s in map(json.loads, out.splitlines())}
    assert steps["code"]["token_type"].lower() == "dpop"
    assert steps["refresh"]["token_type"].lower() == "dpop"
    assert steps["userinfo"]["sub"] == steps["code"]["sub"] and steps["userinfo"]["name"] == "张三"
    assert steps["client_credentials"]["token_type"].lower() == "dpop"
    assert steps["certstore"]["status"] == 200 and "certificates" in steps["certstore"]["body"]
    # The bound tokens are worthless without the key: as Bearer, the idp and certstore refuse them.
    bearer = requests.get(issuer + "/userinfo", timeout=10,
                          headers={"Authorization": "Bearer " + steps["refresh"]["access_token"]})
    assert bearer.status_code == 401 and 'error="invalid_token"' in bearer.headers["WWW-Authenticate"]
    cs = requests.get(dpop_world["certstore"] + "/api/v1/certificates", timeout=10,
                      headers={"Authorization": "Bearer " + steps["client_credentials"]["access_token"]})
    assert cs.status_code == 401 and cs.headers["WWW-Authenticate"].startswith("DPoP ")
