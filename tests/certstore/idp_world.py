"""An idp and a certstore in one process, joined as in production: over HTTP (``requests``).

certstore talks to the idp only through ``requests`` (discovery, JWKS,
token, userinfo, introspection); :class:`WsgiAdapter` answers those calls
from the idp's WSGI app, so tests exercise the real idp — its scope policy,
its revocation, its introspection — without a server or a socket.

Import the fixtures into a test module with
``from .idp_world import world, World  # noqa: F401``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from certstore.service import IssueRequest
from certstore.settings import CertstoreSettings
from certstore.tokens import HttpIntrospector, HttpJwksSource, IntrospectionCache
from certstore.wallet import IntrospectionResolver, WalletService
from keys.config import CommonSettings
from keys.jws import encode_jws
from keys.keyring import open_keyring
from tests.conftest import private_database
from tests.idp.oidc_helpers import (
    FAST_HASH,
    ID_NUMBER,
    ISSUER,
    PASSWORD,
    RP,
    authorize_code,
    exchange,
)

from .conftest import DEMO_REQUESTS, populate

__all__ = ["World", "WsgiAdapter", "world", "CS_URL", "CACHE_SECONDS"]

CS_URL = "http://127.0.0.1:5100"
CACHE_SECONDS = 30
LOOKUP_TYPES = frozenset({"JZZM", "BYZS"})


class WsgiAdapter(BaseAdapter):
    """A ``requests`` transport that hands each request to a Flask app's test client."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.client = app.test_client()
        self.calls: list[tuple[str, str]] = []

    def send(self, request: Any, **kwargs: Any) -> requests.Response:  # noqa: ARG002
        parts = urlsplit(request.url)
        self.calls.append((request.method, parts.path))
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = self.client.open(
            parts.path, method=request.method, query_string=parts.query, headers=dict(request.headers), data=body
        )
        resp = requests.Response()
        resp.status_code = answer.status_code
        resp.headers = CaseInsensitiveDict(answer.headers)
        resp._content = answer.get_data()
        resp._content_consumed = True  # the body is already here: a streamed read takes it from _content
        resp.url = request.url
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    idp_app: Any
    idp: Any
    """The idp's test client."""
    idp_services: Any
    cs_app: Any
    cs: Any
    """certstore's test client."""
    cs_services: Any
    adapter: WsgiAdapter
    clock: FakeClock
    """The introspection cache's clock (advance ``clock.now`` to pass the bound)."""
    secrets: dict[str, str]
    portal: RP
    wallet_rp: RP
    tokens: dict[str, str | None] = field(default_factory=dict)
    a_certificate: str = ""
    """A JZZM certificate issued by agency A (the PSB), of the demo citizen."""

    def client_token(self, client_id: str, scope: str) -> str:
        resp = self.idp.post(
            "/token", data={"grant_type": "client_credentials", "scope": scope}, headers=self.basic(client_id)
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return str(resp.get_json()["access_token"])

    def citizen_tokens(self, rp: RP, scope: str, **kw: Any) -> dict[str, Any]:
        query, verifier = authorize_code(self.idp, rp, scope=scope, **kw)
        resp = exchange(self.idp, rp, query["code"], verifier)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return dict(resp.get_json())

    def basic(self, client_id: str) -> dict[str, str]:
        raw = f"{client_id}:{self.secrets[client_id]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def revoke(self, client_id: str, token: str) -> None:
        resp = self.idp.post("/revoke", data={"token": token}, headers=self.basic(client_id))
        assert resp.status_code == 200, resp.get_data(as_text=True)

    def issue_for_a(self) -> str:
        req = DEMO_REQUESTS["JZZM"]
        view = self.cs_services.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"])
        return str(view.certificate.identifier)


def _idp_client(svc: Any, **kw: Any) -> str:
    from idp.clients import ClientSpec

    _client, secret = svc.clients.add(ClientSpec(**kw))
    return str(secret)


@pytest.fixture
def world(
    tmp_path: Path, yiwang_env: dict[str, str], redis_url: str | None, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    from certstore.web import create_app as create_certstore
    from certstore.wiring import build_services
    from idp.services import Services
    from idp.settings import IdpSettings
    from idp.web import create_app as create_idp

    idp_settings = IdpSettings.from_env(dict(yiwang_env, YIWANG_ISSUER=ISSUER)).with_(**FAST_HASH)
    keyring = open_keyring(idp_settings.common.keys)
    idp_services = Services.build(idp_settings, pii=keyring.pii(), keyring=keyring)
    idp_services.db.create_all()
    idp_app = create_idp(idp_settings, services=idp_services)
    idp_app.config["TESTING"] = False
    adapter = WsgiAdapter(idp_app)
    original = requests.Session.get_adapter

    def get_adapter(self: requests.Session, url: str) -> Any:
        return adapter if url.startswith(ISSUER + "/") else original(self, url)

    # Every HTTP call certstore (and Authlib inside it) makes to the idp lands in the idp app.
    monkeypatch.setattr(requests.Session, "get_adapter", get_adapter)

    idp_services.accounts.add(ID_NUMBER, "张三", PASSWORD)
    secrets = {
        cid: _idp_client(
            idp_services, name=cid, client_id=cid, grant_types=["client_credentials"],
            scopes=["certs:issue", "certs:lookup"],
        )
        for cid in ("demo-psb", "demo-amr")
    }
    secrets["certstore"] = _idp_client(
        idp_services, name="certstore wallet", client_id="certstore",
        redirect_uris=[f"{CS_URL}/wallet/callback"], post_logout_redirect_uris=[f"{CS_URL}/verify"],
        grant_types=["authorization_code"], scopes=["openid", "profile", "id_number"],
        first_party=True, may_receive_id_number=True,
    )
    secrets["portal"] = _idp_client(
        idp_services, name="portal", client_id="portal", redirect_uris=["https://portal.example.cn/cb"],
        grant_types=["authorization_code"], scopes=["openid", "profile", "certs:read"],
    )

    with private_database(tmp_path, "certstore") as cs_db:
        values: dict[str, Any] = {
            "HOME": tmp_path / "cs-home", "DATABASE_URL": cs_db, "ISSUER": ISSUER, "REDIS_PREFIX": redis_prefix,
        }
        if redis_url:
            values["REDIS_URL"] = redis_url
        settings = CertstoreSettings(
            common=CommonSettings.from_values(values, default_issuer=ISSUER),
            public_url=CS_URL,
            client_id="certstore",
            client_secret=secrets["certstore"],
            introspection_cache_seconds=CACHE_SECONDS,
            lookup_clients={"demo-psb": LOOKUP_TYPES},
        )
        cs_services = build_services(settings, jwks_source=HttpJwksSource(ISSUER))
        clock = FakeClock()
        assert cs_services.tokens.introspection is not None
        cs_services.tokens.introspection = IntrospectionCache(
            HttpIntrospector(f"{ISSUER}/introspect", "certstore", secrets["certstore"]),
            positive_ttl=CACHE_SECONDS, clock=clock,
        )
        populate(cs_services)
        cs_app = create_certstore(services=cs_services)
        cs_app.extensions["certstore.wallet"] = WalletService(
            cs_services.certificates,
            IntrospectionResolver(f"{ISSUER}/introspect", "certstore", secrets["certstore"], session=requests.Session()),
        )
        w = World(
            idp_app=idp_app, idp=idp_app.test_client(), idp_services=idp_services,
            cs_app=cs_app, cs=cs_app.test_client(), cs_services=cs_services,
            adapter=adapter, clock=clock, secrets=secrets,
            portal=RP("portal", secrets["portal"], "https://portal.example.cn/cb"),
            wallet_rp=RP("certstore", secrets["certstore"], f"{CS_URL}/wallet/callback"),
        )
        w.a_certificate = w.issue_for_a()
        try:
            yield w
        finally:
            cs_services.close()
            runtime = idp_app.extensions["yiwang"]
            if runtime.logout is not None:
                runtime.logout.close()
            idp_services.close()


def expired_token(world: World, client_id: str, scope: str) -> str:
    """A token the idp really signed, as its token endpoint would, whose ``exp`` has passed."""
    now = int(time.time())
    keyring = open_keyring(world.idp_services.settings.common.keys)
    claims = {
        "iss": ISSUER, "sub": client_id, "aud": "certstore", "client_id": client_id, "scope": scope,
        "jti": f"expired-{now}", "iat": now - 3600, "exp": now - 1800,
    }
    return encode_jws(keyring.keyset("idp-token").active(), claims, typ="at+jwt")
