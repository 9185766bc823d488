"""The demo's wiring between idp and certstore (``make demo``), without long-running servers.

idp and certstore never import each other, so what joins them in the demo —
client ids, the citizen, certstore's credentials, the token audience — is
duplicated on purpose; these tests are what keeps the copies in agreement.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from certstore.cli.init import DEMO_CERTIFICATES, DEMO_HOLDER_ID, DEMO_HOLDER_NAME, DEMO_ISSUERS
from certstore.settings import CertstoreSettings
from demo.serve import certstore_env, curl_example, demo_services
from idp.cli import cli as idp_cli
from idp.cli.init import (
    CERTSTORE_CLIENT_ID,
    CERTSTORE_URL,
    DEMO_AGENCIES,
    DEMO_ID_NUMBER,
    DEMO_NAME,
)
from idp.oauth.provider import ProviderConfig

CLIENT_CREDENTIALS = "client_credentials"


@pytest.fixture
def demo_home(yiwang_env: dict[str, str]) -> tuple[dict[str, str], Path]:
    runner = CliRunner()
    first = runner.invoke(idp_cli, ["init", "--demo"], env=yiwang_env)
    assert first.exit_code == 0, first.output
    return yiwang_env, Path(yiwang_env["YIWANG_HOME"]) / "demo-clients.json"


def test_idp_init_demo_registers_certstore_and_agencies(demo_home: tuple[dict[str, str], Path]) -> None:
    from idp.services import Services
    from idp.settings import IdpSettings

    env, path = demo_home
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    # the portals stay where demo.serve looks for them (one per letter A, B)
    assert set(data["clients"]) == {"demo-portal-a", "demo-portal-b"}
    assert data["certstore"]["client_id"] == CERTSTORE_CLIENT_ID
    assert set(data["agencies"]) == {cid for cid, _name in DEMO_AGENCIES}

    services = Services.from_settings(IdpSettings.from_env({**os.environ, **env}))
    try:
        a, b = services.clients.get("demo-portal-a"), services.clients.get("demo-portal-b")
        assert a is not None and a.first_party and "certs:read" not in a.scopes
        # portal B is another agency's: the citizen consents before it reads certificates
        assert b is not None and not b.first_party and "certs:read" in b.scopes
        cs = services.clients.get(CERTSTORE_CLIENT_ID)
        assert cs is not None and cs.may_receive_id_number
        assert list(cs.redirect_uris) == [f"{CERTSTORE_URL}/wallet/callback"]
        # single sign-out reaches the wallet (back-channel) and the wallet's sign-out comes back
        assert cs.backchannel_logout_uri == f"{CERTSTORE_URL}/wallet/backchannel-logout"
        assert list(cs.post_logout_redirect_uris) == [f"{CERTSTORE_URL}/verify"]
        assert "authorization_code" in cs.grant_types
        assert {"openid", "profile", "id_number"} <= set(cs.scopes)
        assert cs.check_client_secret(data["certstore"]["client_secret"])
        assert not cs.check_client_secret(data["agencies"]["demo-psb"]["client_secret"])
        for client_id, _name in DEMO_AGENCIES:
            agency = services.clients.get(client_id)
            assert agency is not None, client_id
            assert list(agency.grant_types) == [CLIENT_CREDENTIALS]
            assert list(agency.scopes) == ["certs:issue"]
            assert not agency.may_receive_id_number
            assert agency.check_client_secret(data["agencies"][client_id]["client_secret"])
    finally:
        services.close()

    # a second run keeps every secret (the file is the only copy a person has)
    again = CliRunner().invoke(idp_cli, ["init", "--demo"], env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(path.read_text()) == data


def test_the_copies_agree_across_idp_and_certstore() -> None:
    # certstore's demo issuers are linked to the agency clients idp registers
    assert {d.client_id for d in DEMO_ISSUERS} == {cid for cid, _name in DEMO_AGENCIES}
    # the seeded certificates are the idp demo citizen's
    assert (DEMO_HOLDER_ID, DEMO_HOLDER_NAME) == (DEMO_ID_NUMBER, DEMO_NAME)
    assert {c[1] for c in DEMO_CERTIFICATES} == {t for d in DEMO_ISSUERS for t in d.types}
    # certs:* tokens are minted for certstore, which requires that audience and
    # may introspect (and learn the holder of) tokens only when it is the audience
    config = ProviderConfig(issuer="http://127.0.0.1:5000")
    assert dict(config.scope_audiences)["certs"] == CERTSTORE_CLIENT_ID
    assert CertstoreSettings(common=CertstoreSettings.from_env({}).common).audience == CERTSTORE_CLIENT_ID


def test_demo_serve_hands_certstore_its_client_and_the_issuer(demo_home: tuple[dict[str, str], Path]) -> None:
    env, path = demo_home
    data = json.loads(path.read_text())
    cs_env = certstore_env(data)
    assert cs_env["YIWANG_CERTSTORE_VP_COUNTER_AGENCY"] == "111101050000000017"  # the counter page is on
    assert cs_env["YIWANG_CERTSTORE_CLIENT_ID"] == CERTSTORE_CLIENT_ID
    assert cs_env["YIWANG_CERTSTORE_CLIENT_SECRET"] == data["certstore"]["client_secret"]
    assert cs_env["YIWANG_ISSUER"] == data["issuer"]
    settings = CertstoreSettings.from_env({**env, **cs_env})  # certstore accepts exactly these
    assert settings.client_id == CERTSTORE_CLIENT_ID
    assert settings.client_secret == data["certstore"]["client_secret"]
    assert settings.common.issuer == data["issuer"]

    services = {s.name: s for s in demo_services(data)}
    assert services["certstore"].env == cs_env
    assert {"portal-a", "portal-b"} <= set(services)
    for name in ("idp", "portal-a", "portal-b"):
        assert "YIWANG_CERTSTORE_CLIENT_SECRET" not in services[name].env

    lines = curl_example(data, path)
    assert any("grant_type=client_credentials" in line and "demo-psb" in line for line in lines)
    assert any("/api/v1/certificates" in line for line in lines)
    assert not any(data["agencies"]["demo-psb"]["client_secret"] in line for line in lines)


def test_without_the_certstore_client_the_env_has_only_the_issuer() -> None:
    assert certstore_env({"issuer": "http://idp.test"}) == {"YIWANG_ISSUER": "http://idp.test"}


@pytest.mark.slow
def test_certstore_init_demo_seeds_the_wallet_once(yiwang_env: dict[str, str]) -> None:
    from sqlalchemy import func, select

    from certstore.cli import cli as certstore_cli
    from certstore.models import Certificate
    from certstore.wallet import WalletService
    from certstore.wiring import build_services

    env = {**yiwang_env, "YIWANG_ISSUER": "http://127.0.0.1:5000"}
    runner = CliRunner()
    svc = build_services(CertstoreSettings.from_env({**os.environ, **env}))

    def count() -> int:
        with svc.certificates.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Certificate)) or 0)

    try:
        res = runner.invoke(certstore_cli, ["init", "--demo"], env=env)
        assert res.exit_code == 0, res.output
        assert count() == 0  # plain --demo (other tests build on it) issues nothing
        for _ in range(2):  # idempotent: the second run issues nothing new
            res = runner.invoke(certstore_cli, ["init", "--demo", "--with-certificates"], env=env)
            assert res.exit_code == 0, res.output
        assert count() == len(DEMO_CERTIFICATES)
        wallet = WalletService(svc.certificates)
        own = wallet.own_certificates(wallet.holder_index(DEMO_ID_NUMBER))
        assert sorted(v.type_code for v in own) == ["BYZS", "JZZM"]
        assert all(v.holder_name == DEMO_NAME for v in own)
    finally:
        svc.close()


def test_only_portal_b_reads_certificates_and_only_when_signed_in(demo_home: tuple[dict[str, str], Path]) -> None:
    from demo.portal import PortalConfig, create_portal

    _env, path = demo_home
    services = {s.name: s for s in demo_services(json.loads(path.read_text()))}
    assert "--certstore" in services["portal-b"].argv and "--certstore" not in services["portal-a"].argv
    # /_state (every logout token, every sid) is for tests: the demo never serves it
    assert all("--expose-state" not in s.argv for s in services.values())

    base = {"port": 5299, "issuer": "http://127.0.0.1:1", "client_id": "x", "client_secret": "y"}
    plain = create_portal(PortalConfig(name="A", **base)).test_client()
    assert plain.get("/certificates").status_code == 404
    sharing = create_portal(PortalConfig(name="B", certstore_url="http://127.0.0.1:1", **base)).test_client()
    resp = sharing.get("/certificates")  # signed out: sign in first, no call to certstore
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
