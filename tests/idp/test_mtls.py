"""RFC 8705 mutual TLS at the idp, through a real TLS terminator (tests/support/tls_proxy.py).

The idp listens on plain HTTP behind the proxy; the proxy verifies client
certificates against the agency CA (keys.pki: region root → issuing CA →
the agency's TLS client certificate) and forwards the one it verified in
``X-Client-Cert``, from 127.0.0.2. A caller reaching the idp directly (from
127.0.0.1) cannot set that header.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keys import pki
from keys.config import CommonSettings
from keys.keyring import open_keyring
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, make_rp
from tests.support.tls_proxy import (
    PROXY_SOURCE,
    TlsProxy,
    make_server_certificate,
    self_signed_client,
    serve_wsgi,
)

AGENCY_A = "111101050000000017"  # unified social credit codes with a valid check character
AGENCY_B = "11110105000000002A"


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _x5t(cert: x509.Certificate) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


class Agency:
    def __init__(self, directory: Path, ring: Any, uscc: str, name: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.cert = pki.issue_tls_client(ring, uscc=uscc, name=name, public_key_pem=pub)
        self.cert_path, self.key_path = directory / f"{uscc}.pem", directory / f"{uscc}.key"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.dn = self.cert.subject.rfc4514_string()

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.cert_path), str(self.key_path)


@pytest.fixture(scope="module")
def pkit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The agency PKI, two agencies' TLS client certificates, a self-signed client, the proxy's files."""
    d = tmp_path_factory.mktemp("mtls")
    ring = open_keyring(CommonSettings.from_values({"HOME": d / "home"}, default_issuer="http://x").keys)
    ca = pki.init_region(ring, region="110000", name="Region 110000")
    issuing = d / "issuing.pem"
    issuing.write_bytes(ca.issuing.public_bytes(serialization.Encoding.PEM))
    chain = d / "chain.pem"
    chain.write_bytes(ca.issuing.public_bytes(serialization.Encoding.PEM) + ca.root.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = make_server_certificate(d)
    self_cert, self_key, self_obj = self_signed_client(d, "kiosk-backend")
    return {"dir": d, "issuing": issuing, "chain": chain, "server_cert": server_cert, "server_key": server_key,
            "a": Agency(d, ring, AGENCY_A, "Agency A"), "b": Agency(d, ring, AGENCY_B, "Agency B"),
            "self": (str(self_cert), str(self_key)), "self_cert": self_obj}


@pytest.fixture
def mtls_app(app_with: Any, pkit: dict[str, Any]) -> Any:
    return app_with(mtls_proxies=(ipaddress.ip_network(PROXY_SOURCE + "/32"),), mtls_ca_file=pkit["issuing"],
                    mtls_base_url="https://mtls.idp.test")


@pytest.fixture
def stack(mtls_app: Any, pkit: dict[str, Any]) -> Any:
    """``(proxy_url, direct_url)``: the idp behind the TLS proxy, and the idp itself."""
    with serve_wsgi(mtls_app) as (host, port), TlsProxy(
            (host, port), server_cert=pkit["server_cert"], server_key=pkit["server_key"],
            ca_files=[pkit["chain"], Path(pkit["self"][0])]) as proxy:
        yield proxy.url, f"http://{host}:{port}"


def _post(pkit: dict[str, Any], url: str, data: dict[str, str], cert: Any = None, **kw: Any) -> requests.Response:
    verify = str(pkit["server_cert"]) if url.startswith("https") else True
    return requests.post(url, data=data, cert=cert, verify=verify, timeout=10, **kw)


def _get(pkit: dict[str, Any], url: str, cert: Any = None, **kw: Any) -> requests.Response:
    verify = str(pkit["server_cert"]) if url.startswith("https") else True
    return requests.get(url, cert=cert, verify=verify, timeout=10, **kw)


@pytest.fixture
def agency_a(idp_services: Any, pkit: dict[str, Any]) -> Any:
    return make_rp(idp_services, name="Agency A", auth_method="tls_client_auth", tls_subject_dn=pkit["a"].dn,
                   grant_types=("authorization_code", "refresh_token", "client_credentials"))


# ------------------------------------------------------------ tls_client_auth


def test_tls_client_auth_through_the_proxy_gets_a_certificate_bound_token(stack, pkit, agency_a):
    proxy, _ = stack
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": agency_a.client_id},
                 cert=pkit["a"].pair)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"  # RFC 8705 §3: still Bearer, bound by cnf  # noqa: S105
    assert _claims(body["access_token"])["cnf"] == {"x5t#S256": _x5t(pkit["a"].cert)}


def test_another_agencys_certificate_from_the_same_ca_is_invalid_client(stack, pkit, agency_a):
    proxy, _ = stack
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": agency_a.client_id},
                 cert=pkit["b"].pair)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_no_certificate_through_the_proxy_is_invalid_client(stack, pkit, agency_a):
    proxy, _ = stack
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": agency_a.client_id})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_a_self_signed_certificate_with_the_registered_dn_does_not_pass_tls_client_auth(stack, pkit, idp_services):
    proxy, _ = stack
    rp = make_rp(idp_services, name="Kiosk", auth_method="tls_client_auth", tls_subject_dn="CN=kiosk-backend",
                 grant_types=("client_credentials",), scopes=())
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": rp.client_id},
                 cert=pkit["self"])
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"  # not issued by the agency CA


def test_the_forged_header_of_a_direct_caller_is_dropped(stack, pkit, agency_a):
    _, direct = stack
    pem = pkit["a"].cert.public_bytes(serialization.Encoding.PEM).decode()
    for header in ({"X-Client-Cert": quote(pem, safe="")},
                   {"X-Yiwang-Verified-Client-Cert": base64.b64encode(
                       pkit["a"].cert.public_bytes(serialization.Encoding.DER)).decode()}):
        resp = _post(pkit, direct + "/token", {"grant_type": "client_credentials", "client_id": agency_a.client_id},
                     headers=header)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", header


def test_the_forged_header_is_dropped_on_the_flask_path_too(mtls_app, pkit, agency_a):
    pem = pkit["a"].cert.public_bytes(serialization.Encoding.PEM).decode()
    web = mtls_app.test_client()
    # A query string sends /token through Flask instead of the hot path.
    resp = web.post("/token?x=1", data={"grant_type": "client_credentials", "client_id": agency_a.client_id},
                    headers={"X-Client-Cert": quote(pem, safe="")}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert resp.status_code in (400, 401) and resp.get_json()["error"] in ("invalid_client", "invalid_request")
    ok = web.post("/token", data={"grant_type": "client_credentials", "client_id": agency_a.client_id},
                  headers={"X-Client-Cert": quote(pem, safe="")}, environ_base={"REMOTE_ADDR": PROXY_SOURCE})
    assert ok.status_code == 200, ok.get_data(as_text=True)


# ----------------------------------------------------- self_signed_tls_client_auth


def test_self_signed_tls_client_auth_with_the_registered_certificate(stack, pkit, idp_services):
    proxy, _ = stack
    pem = Path(pkit["self"][0]).read_text()
    rp = make_rp(idp_services, name="Kiosk", auth_method="self_signed_tls_client_auth", tls_certificates=[pem],
                 grant_types=("client_credentials",), scopes=())
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": rp.client_id},
                 cert=pkit["self"])
    assert resp.status_code == 200, resp.text
    assert _claims(resp.json()["access_token"])["cnf"] == {"x5t#S256": _x5t(pkit["self_cert"])}
    other = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": rp.client_id},
                  cert=pkit["a"].pair)
    assert other.status_code == 401 and other.json()["error"] == "invalid_client"


def test_self_signed_tls_client_auth_with_the_registered_public_key(stack, pkit, idp_services):
    from joserfc.jwk import ECKey

    proxy, _ = stack
    jwk = ECKey.import_key(pkit["self_cert"].public_key()).as_dict(private=False)
    rp = make_rp(idp_services, name="Kiosk", auth_method="self_signed_tls_client_auth", jwks={"keys": [jwk]},
                 grant_types=("client_credentials",), scopes=())
    resp = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": rp.client_id},
                 cert=pkit["self"])
    assert resp.status_code == 200, resp.text


# ------------------------------------------------ certificate-bound tokens at userinfo


def test_a_bound_token_at_userinfo_needs_the_same_certificate(stack, pkit, agency_a, mtls_app, citizen):
    proxy, direct = stack
    web = mtls_app.test_client()
    query, verifier = authorize_code(web, agency_a)
    resp = _post(pkit, proxy + "/token", {"grant_type": "authorization_code", "code": query["code"],
                                          "redirect_uri": agency_a.redirect_uri, "code_verifier": verifier,
                                          "client_id": agency_a.client_id}, cert=pkit["a"].pair)
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert _claims(token)["cnf"]["x5t#S256"] == _x5t(pkit["a"].cert)
    auth = {"Authorization": f"Bearer {token}"}
    assert _get(pkit, proxy + "/userinfo", cert=pkit["a"].pair, headers=auth).status_code == 200
    for cert in (pkit["b"].pair, pkit["self"], None):
        refused = _get(pkit, proxy + "/userinfo", cert=cert, headers=auth)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token", cert
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    pem = pkit["a"].cert.public_bytes(serialization.Encoding.PEM).decode()
    forged = _get(pkit, direct + "/userinfo", headers={**auth, "X-Client-Cert": quote(pem, safe="")})
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    # The refresh of a bound grant is bound again, to the certificate presented then.
    refreshed = _post(pkit, proxy + "/token", {"grant_type": "refresh_token", "client_id": agency_a.client_id,
                                               "refresh_token": resp.json()["refresh_token"]}, cert=pkit["a"].pair)
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(refreshed.json()["access_token"])["cnf"]["x5t#S256"] == _x5t(pkit["a"].cert)


def test_introspection_shows_the_binding(stack, pkit, agency_a):
    proxy, _ = stack
    token = _post(pkit, proxy + "/token", {"grant_type": "client_credentials", "client_id": agency_a.client_id},
                  cert=pkit["a"].pair).json()["access_token"]
    info = _post(pkit, proxy + "/introspect", {"token": token, "client_id": agency_a.client_id},
                 cert=pkit["a"].pair).json()
    assert info["active"] is True and info["cnf"] == {"x5t#S256": _x5t(pkit["a"].cert)}


# ------------------------------------------------------------ discovery, registration


def test_discovery_names_mtls_when_configured(mtls_app, web):
    doc = mtls_app.test_client().get("/.well-known/openid-configuration").get_json()
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["mtls_endpoint_aliases"]["token_endpoint"] == "https://mtls.idp.test/token"  # noqa: S105
    plain = web.get("/.well-known/openid-configuration").get_json()
    assert "tls_client_auth" not in plain["token_endpoint_auth_methods_supported"]
    assert "mtls_endpoint_aliases" not in plain


@pytest.mark.parametrize("kw, message", [
    ({"auth_method": "tls_client_auth"}, "exactly one"),
    ({"auth_method": "tls_client_auth", "tls_subject_dn": "CN=a", "tls_san_dns": "a.example"}, "exactly one"),
    ({"auth_method": "tls_client_auth", "tls_subject_dn": "not a dn"}, "RFC 4514"),
    ({"auth_method": "client_secret_basic", "tls_subject_dn": "CN=a"}, "tls_client_auth"),
    ({"auth_method": "self_signed_tls_client_auth"}, "--tls-certificate"),
    ({"auth_method": "self_signed_tls_client_auth", "tls_certificates": ["not a pem"]}, "PEM"),
])
def test_mtls_registration_is_checked(idp_services, kw, message):
    from idp.errors import InvalidInput

    with pytest.raises(InvalidInput, match=message):
        make_rp(idp_services, name="X", grant_types=("client_credentials",), scopes=(), **kw)


def test_cli_registers_tls_client_auth(yiwang_env, pkit):
    from click.testing import CliRunner

    from idp.cli import cli

    env = {**yiwang_env, "YIWANG_ISSUER": "http://127.0.0.1:5000"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(cli, ["clients", "add", "--name", "Agency A", "--grant-type", "client_credentials",
                                 "--auth-method", "tls_client_auth", "--tls-subject-dn", pkit["a"].dn, "--json"],
                           env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["token_endpoint_auth_method"] == "tls_client_auth"  # noqa: S105
    assert data["attributes"]["tls_client_auth_subject_dn"] == pkit["a"].dn
    assert data["attributes"]["tls_client_certificate_bound_access_tokens"] is True
    assert data["client_secret"] is None
