"""OpenID4VCI with a wallet library nobody here wrote (issue 15 "Must show"): ``@openid4vc/openid4vci``
(npm, 0.4) receives SD-JWT VCs from certstore through both flows, and ``@sd-jwt/sd-jwt-vc`` verifies
them — signature, disclosures and status (its own status-list fetcher and validator).

* pre-authorized code: the issuing agency asks certstore's API for an offer (client-credentials
  token from a real ``idp serve``); the wallet resolves the ``openid-credential-offer://`` link,
  redeems the code with the tx_code at certstore's token endpoint, gets a c_nonce and receives a
  batch of two credentials, one per holder key;
* authorization code: the wallet starts from a sign-in offer, signs the citizen in at the idp (this
  test fills in the login page), redeems the code at the idp and presents the idp's access token
  at certstore's credential endpoint;
* after the agency revokes the certificate, ``@sd-jwt/sd-jwt-vc`` refuses the same credential
  (status list).
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

from .conftest import DEMO_REQUESTS, populate

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parents[1] / "interop" / "vci"
WALLET_CB = "https://wallet.example.cn/cb"


def _npm_install() -> None:
    """The wallet and verifier libraries into tests/interop/vci/node_modules, once (kept between runs)."""
    if (HERE / "node_modules" / "@openid4vc" / "openid4vci" / "package.json").exists():
        return
    command = ["npm", "ci" if (HERE / "package-lock.json").exists() else "install",
               "--no-audit", "--no-fund", "--silent"]
    out = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=300)  # noqa: S603
    assert out.returncode == 0, out.stderr[-2000:]


@contextlib.contextmanager
def certstore_serving(issuer: str, root: Path, client_secret: str) -> Iterator[tuple[str, Any]]:
    """certstore on a loopback port, checking tokens at ``issuer`` and introspecting as ``certstore``."""
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
        services = build_services(CertstoreSettings(common=common, public_url=public_url, client_id="certstore",
                                                    client_secret=client_secret,
                                                    vci_wallet_clients=frozenset({"demo-wallet"})))
        populate(services)
        app = create_app(services=services)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield public_url, services
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
        if location.startswith(WALLET_CB):
            return location
        resp = web.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("the sign-in did not come back to the wallet")


@pytest.fixture
def vci_world(yiwang_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    _npm_install()
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, **yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "1024"}
    env = {k: v for k, v in env.items() if not k.startswith("YIWANG_TEST_")}
    _idp(env, "db", "upgrade")
    _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD + "\n")
    agency = json.loads(_idp(env, "clients", "add", "--name", "公安局", "--client-id", "demo-psb",
                             "--grant-type", "client_credentials", "--scope", "certs:issue", "--json"))
    certstore = json.loads(_idp(env, "clients", "add", "--name", "certstore", "--client-id", "certstore",
                                "--redirect-uri", "http://127.0.0.1:5100/wallet/callback",
                                "--grant-type", "authorization_code", "--scope", "openid", "--scope", "id_number",
                                "--may-receive-id-number", "--first-party", "--json"))
    wallet = json.loads(_idp(env, "clients", "add", "--name", "证照钱包", "--client-id", "demo-wallet", "--public",
                             "--redirect-uri", WALLET_CB, "--grant-type", "authorization_code",
                             "--scope", "openid", "--scope", "certs:read:JZZM", "--first-party", "--json"))
    with serving(env, port, tmp_path / "idp.log"), \
            certstore_serving(issuer, tmp_path / "cs", certstore["client_secret"]) as (cs_url, services):
        body = dict(DEMO_REQUESTS["JZZM"]["body"], holder_code=ID_NUMBER, holder_name="张三")
        from certstore.service import IssueRequest

        ident = services.certificates.issue(IssueRequest.from_json(body), agency_uscc=DEMO_REQUESTS["JZZM"]["issuer"])
        yield {"issuer": issuer, "certstore": cs_url, "services": services, "identifier": ident.certificate.identifier,
               "agency": agency, "wallet": wallet,
               "issuer_jwk": services.keyring.agency_signer(DEMO_REQUESTS["JZZM"]["issuer"]).public_jwk()}


def _node(cfg: dict[str, Any], stdin: Any = None) -> subprocess.Popen[str]:
    return subprocess.Popen(["node", str(HERE / "flow.mjs"), json.dumps(cfg)], cwd=HERE,  # noqa: S603, S607
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _agency_token(w: dict[str, Any]) -> str:
    agency = w["agency"]
    resp = requests.post(w["issuer"] + "/token", data={"grant_type": "client_credentials", "scope": "certs:issue"},
                         auth=(agency["client_id"], agency["client_secret"]), timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_wallet_library_receives_through_both_flows_and_sd_jwt_vc_checks_the_status(vci_world: dict[str, Any]) -> None:
    w = vci_world
    ident = w["identifier"]
    offer = requests.post(f"{w['certstore']}/api/v1/certificates/{ident}/credential-offer",
                          headers={"Authorization": "Bearer " + _agency_token(w)}, timeout=10)
    assert offer.status_code == 201, offer.text
    created = offer.json()

    # 1. pre-authorized code, a batch of two
    node = _node({"mode": "pre", "offer": created["offer_link"], "tx_code": created["tx_code"],
                  "issuer_jwk": w["issuer_jwk"]})
    out, err = node.communicate(timeout=120)
    assert node.returncode == 0, err[-3000:]
    steps = _steps(out)
    meta = steps[0]
    assert meta["version"] == "V1" and meta["authorization_servers"] == [w["issuer"], w["certstore"]]
    assert [s["token_type"] for s in steps if s["step"] == "token"] == ["DPoP"]  # bound to the wallet's key
    creds = [s for s in steps if s["step"] == "credential"]
    assert len(creds) == 2
    for c in creds:
        assert c["typ"] == "dc+sd-jwt" and c["kid"] == w["issuer_jwk"]["kid"]
        assert c["claims"]["identifier"] == ident and c["claims"]["holder_name"] == "张三"
        assert c["claims"]["paper_serial"] == DEMO_REQUESTS["JZZM"]["body"]["paper_serial"]
        assert c["cnf_x"] in c["holder_xs"]
    assert creds[0]["cnf_x"] != creds[1]["cnf_x"]

    # 2. authorization code: the citizen signs in at the idp, certstore takes the idp's token
    node = _node({"mode": "auth", "offer": f"openid-credential-offer://?credential_offer_uri={w['certstore']}"
                  "/vci/signin-offers/JZZM", "client_id": w["wallet"]["client_id"], "redirect_uri": WALLET_CB,
                  "issuer_jwk": w["issuer_jwk"]})
    try:
        first = json.loads(node.stdout.readline() or "{}")  # type: ignore[union-attr]
        assert "authorize" in first, node.stderr.read()  # type: ignore[union-attr]
        assert "request_uri=" in first["authorize"]  # the library pushed the request (PAR) to the idp
        callback = _sign_in(first["authorize"])
        out, err = node.communicate(callback + "\n", timeout=120)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 0, err[-3000:]
    steps = _steps(out)
    assert [s["claims"]["identifier"] for s in steps if s["step"] == "credential"] == [ident]

    # 3. the issuer's log: three credentials, two flows, no claim values
    from certstore.vci.log import issued_for

    with w["services"].sessions() as s:
        import sqlalchemy as sa

        from certstore.models import Certificate

        cert_id = s.scalar(sa.select(Certificate.id).where(Certificate.identifier == ident))
    rows = issued_for(w["services"].sessions, [cert_id])
    assert sorted(r.flow for r in rows) == ["authorization_code", "pre-authorized_code", "pre-authorized_code"]

    # 4. revoked: the same credential now fails @sd-jwt/sd-jwt-vc's status check
    revoke = requests.post(f"{w['certstore']}/api/v1/certificates/{ident}/status",
                           json={"action": "revoke", "reason": "interop"},
                           headers={"Authorization": "Bearer " + _agency_token(w)}, timeout=10)
    assert revoke.status_code == 200, revoke.text
    node = _node({"mode": "verify", "credential": creds[0]["credential"], "issuer_jwk": w["issuer_jwk"]})
    out, err = node.communicate(timeout=60)
    verdict = _steps(out)[-1]
    assert verdict["ok"] is False and "Status is not valid" in verdict["error"], (verdict, err[-2000:])
