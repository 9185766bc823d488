"""Helpers for the CIBA tests: a CIBA client, the backchannel request, the citizen's approval, polling."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from idp.ciba.registration import CibaRegistration
from idp.clients import ClientSpec
from tests.idp.oidc_helpers import ISSUER, RP, csrf_of, login

CIBA = "urn:openid:params:grant-type:ciba"


class ClientKey:
    """A client's ES256 key: its JWKS to register, and JWTs signed with it."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.kid = secrets.token_hex(4)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.key.as_dict(private=False), "kid": self.kid, "use": "sig"}]}

    def sign(self, claims: dict[str, Any], alg: str = "ES256") -> str:
        return jose_jwt.encode({"alg": alg, "kid": self.kid}, claims, self.key)

    def request_object(self, client_id: str, params: dict[str, Any], *, now: int | None = None,
                       lifetime: int = 300, jti: str | None = None, **over: Any) -> str:
        now = int(time.time()) if now is None else now
        claims = {"iss": client_id, "aud": ISSUER, "iat": now, "nbf": now, "exp": now + lifetime,
                  "jti": secrets.token_urlsafe(12) if jti is None else jti, **params, **over}
        return self.sign(claims)


def make_ciba_rp(services: Any, *, name: str = "市民服务窗口", reg: CibaRegistration | None = None,
                 grant_types: tuple[str, ...] = (CIBA, "refresh_token"), **kw: Any) -> RP:
    spec = ClientSpec(name=name, redirect_uris=["https://counter.example.cn/cb"], grant_types=grant_types,
                      scopes=kw.pop("scopes", ("openid", "profile", "phone", "offline_access")), ciba=reg, **kw)
    client, secret = services.clients.add(spec)
    return RP(client.client_id, secret, "https://counter.example.cn/cb")


def start(web: Any, rp: RP, **params: Any) -> Any:
    data = {"scope": "openid profile", **params}
    return web.post("/bc-authorize", data={k: v for k, v in data.items() if v is not None}, headers=rp.basic())


def poll(web: Any, rp: RP, auth_req_id: str) -> Any:
    return web.post("/token", data={"grant_type": CIBA, "auth_req_id": auth_req_id}, headers=rp.basic())


def approval_page(phone: Any, display_id: str) -> Any:
    """The citizen's phone opens the approval page, signing in first if it has no session."""
    resp = phone.get(f"/ciba/{display_id}")
    if resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/login":
        resp = login(phone, resp.headers["Location"])
        assert resp.status_code == 303, resp.data[:300]
        resp = phone.get(resp.headers["Location"])
    return resp


def pending_ids(phone: Any) -> list[str]:
    resp = phone.get("/ciba/pending")
    assert resp.status_code == 200, resp.data
    return [p["id"] for p in resp.get_json()["pending"]]


def decide(phone: Any, display_id: str, decision: str = "approve", **extra: str) -> Any:
    page = approval_page(phone, display_id)
    assert page.status_code == 200, page.data[:400]
    html = page.get_data(as_text=True)
    return phone.post(f"/ciba/{display_id}", data={"csrf_token": csrf_of(html), "decision": decision, **extra})


def signed_in_phone(app: Any) -> Any:
    """A browser with the citizen signed in (the account page reached)."""
    phone = app.test_client()
    first = phone.get("/account")
    assert first.status_code == 303
    resp = login(phone, first.headers["Location"])
    assert resp.status_code in (302, 303), resp.data[:300]
    return phone


def claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
