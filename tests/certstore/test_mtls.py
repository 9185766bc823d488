"""certstore as an RFC 8705 resource server: a certificate-bound token needs its certificate.

certstore runs behind the TLS-terminating proxy of tests/support/tls_proxy.py,
which verifies the agency's TLS client certificate (keys.pki, issued by the
region's issuing CA) and forwards it from 127.0.0.2; the token carries
``cnf.x5t#S256`` of that certificate (as the idp issues it after
``tls_client_auth``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keys import pki
from tests.support.tls_proxy import (
    PROXY_SOURCE,
    TlsProxy,
    make_server_certificate,
    self_signed_client,
    serve_wsgi,
)

PSB = "111101050000000017"  # demo-psb's agency


def _x5t(cert: Any) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _tls_client(tmp: Path, keyring: Any, uscc: str, name: str) -> tuple[tuple[str, str], Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = pki.issue_tls_client(keyring, uscc=uscc, name=name, public_key_pem=pub)
    cert_path, key_path = tmp / f"{uscc}.pem", tmp / f"{uscc}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return (str(cert_path), str(key_path)), cert


@pytest.fixture
def mtls_services(services: Any) -> Any:
    from dataclasses import replace

    services.settings = replace(services.settings, mtls_proxies=(ipaddress.ip_network(PROXY_SOURCE + "/32"),))
    return services


@pytest.fixture
def stack(mtls_services: Any, tmp_path: Path) -> Any:
    from certstore.web import create_app

    app = create_app(services=mtls_services)
    ca = pki.region_ca(mtls_services.keyring)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(ca.issuing.public_bytes(serialization.Encoding.PEM) + ca.root.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = make_server_certificate(tmp_path)
    other, _, _ = self_signed_client(tmp_path, "stranger")
    mine, mine_cert = _tls_client(tmp_path, mtls_services.keyring, PSB, "Agency PSB")
    theirs, _ = _tls_client(tmp_path, mtls_services.keyring, "11110105000000002A", "Agency B")
    with serve_wsgi(app) as (host, port), TlsProxy((host, port), server_cert=server_cert, server_key=server_key,
                                                   ca_files=[chain, other]) as proxy:
        yield {"proxy": proxy.url, "direct": f"http://{host}:{port}", "verify": str(server_cert),
               "mine": mine, "mine_cert": mine_cert, "theirs": theirs,
               "stranger": (str(other), str(tmp_path / "stranger.key"))}


def _list(stack: dict[str, Any], token: str, cert: Any = None, *, direct: bool = False,
          headers: dict[str, str] | None = None) -> requests.Response:
    base = stack["direct"] if direct else stack["proxy"]
    return requests.get(base + "/api/v1/certificates", cert=cert, verify=stack["verify"], timeout=10,
                        headers={"Authorization": f"Bearer {token}", **(headers or {})})


def test_a_certificate_bound_token_is_honoured_with_its_certificate(stack, mint):
    token = mint(cnf={"x5t#S256": _x5t(stack["mine_cert"])})
    resp = _list(stack, token, stack["mine"])
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("which", ["theirs", "stranger", None])
def test_another_certificate_or_none_is_401_invalid_token(stack, mint, which):
    token = mint(cnf={"x5t#S256": _x5t(stack["mine_cert"])})
    resp = _list(stack, token, stack[which] if which else None)
    assert resp.status_code == 401 and resp.json()["code"] == "invalid_token", resp.text


def test_the_header_from_a_direct_caller_is_ignored(stack, mint):
    token = mint(cnf={"x5t#S256": _x5t(stack["mine_cert"])})
    pem = stack["mine_cert"].public_bytes(serialization.Encoding.PEM).decode()
    resp = _list(stack, token, direct=True, headers={"X-Client-Cert": quote(pem, safe="")})
    assert resp.status_code == 401 and resp.json()["code"] == "invalid_token", resp.text


def test_an_unbound_token_needs_no_certificate(stack, mint):
    assert _list(stack, mint()).status_code == 200
    assert _list(stack, mint(), direct=True).status_code == 200
