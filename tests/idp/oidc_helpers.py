"""Fixtures for the OpenID Connect tests: an app on a fresh database and Redis prefix.

Import into a test module with ``from tests.idp.oidc_helpers import *  # noqa: F403``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from idp.clients import ClientSpec
from idp.services import Services
from idp.settings import IdpSettings
from keys.identifiers import resident_id_check_character
from keys.keyring import open_keyring

__all__ = [
    "idp_settings", "idp_services", "app", "web", "citizen", "rp", "public_rp", "first_party_rp",
    "ISSUER", "PASSWORD", "ID_NUMBER", "make_id", "pkce_pair", "csrf_of", "login", "login_action", "is_login_page", "authorize_code",
    "query_of", "exchange", "RP", "make_rp",
]

ISSUER = "http://idp.test"
PASSWORD = "correct horse battery"  # noqa: S105 - test account
ID_NUMBER = "11010519491231002" + resident_id_check_character("11010519491231002")
FAST_HASH = {"password_hash_memory_kib": 64, "password_hash_iterations": 1}


def make_id(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


@pytest.fixture
def idp_settings(yiwang_env: dict[str, str]) -> IdpSettings:
    env = dict(yiwang_env, YIWANG_ISSUER=ISSUER)
    return IdpSettings.from_env(env).with_(**FAST_HASH)


@pytest.fixture
def idp_services(idp_settings: IdpSettings) -> Iterator[Services]:
    keyring = open_keyring(idp_settings.common.keys)
    svc = Services.build(idp_settings, pii=keyring.pii(), keyring=keyring)
    svc.db.create_all()
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def app(idp_settings: IdpSettings, idp_services: Services) -> Any:
    from idp.web import create_app

    application = create_app(idp_settings, services=idp_services)
    application.config["TESTING"] = False  # error handlers behave as in production
    yield application
    runtime = application.extensions["yiwang"]
    if runtime.logout is not None:
        runtime.logout.close()


@pytest.fixture
def web(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def citizen(idp_services: Services) -> Any:
    return idp_services.accounts.add(ID_NUMBER, "张三", PASSWORD, phone="+8613800000000", email="zs@example.cn")


@dataclass
class RP:
    client_id: str
    secret: str | None
    redirect_uri: str

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def make_rp(services: Services, **kw: Any) -> RP:
    redirect = kw.pop("redirect_uri", "https://portal.example.cn/cb")
    spec = ClientSpec(name=kw.pop("name", "办事大厅"), redirect_uris=[redirect],
                      grant_types=kw.pop("grant_types", ("authorization_code", "refresh_token", "client_credentials")),
                      scopes=kw.pop("scopes", ("openid", "profile", "phone", "email", "offline_access")),
                      **kw)
    client, secret = services.clients.add(spec)
    return RP(client.client_id, secret, redirect)


def widen_registration(services: Services, client_id: str, scopes: Any) -> None:
    """Give a client scopes that ``idp clients add`` refuses (a row edited in the database, or
    registered before registration checked scopes): the scope policy must still contain it."""
    import sqlalchemy as sa

    from idp.models import Client

    with services.db.session() as s:
        s.execute(sa.update(Client).where(Client.client_id == client_id).values(scopes=list(scopes)))


@pytest.fixture
def rp(idp_services: Services) -> RP:
    return make_rp(idp_services)


@pytest.fixture
def public_rp(idp_services: Services) -> RP:
    return make_rp(idp_services, name="App", public=True, grant_types=("authorization_code", "refresh_token"),
                   redirect_uri="cn.gov.app:/cb")


@pytest.fixture
def first_party_rp(idp_services: Services) -> RP:
    return make_rp(idp_services, name="政务门户", first_party=True, redirect_uri="https://gov.example.cn/cb")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def authorize_params(rp: RP, **kw: str) -> dict[str, str]:
    """A code + PKCE (S256) authorization request of ``rp`` for ``openid profile``, state ``s``; ``kw`` adds or overrides."""
    _v, challenge = pkce_pair()
    return {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
            "scope": "openid profile", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
            **kw}


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)" id="login-form"')


def is_login_page(resp: Any) -> bool:
    """``/authorize`` answers with the login form itself when nobody is signed in."""
    return resp.status_code == 200 and 'id="login-form"' in resp.get_data(as_text=True)


def login_action(page: Any) -> str:
    """The address a login page's form posts to (``/login?flow=…``)."""
    m = _FORM_ACTION.search(page.get_data(as_text=True))
    assert m, "no login form in the page"
    return unescape(m.group(1))


def login(web: Any, where: Any, *, id_number: str = ID_NUMBER, password: str = PASSWORD) -> Any:
    """Fill the login form: ``where`` is its URL, or a response that is the page; returns the POST response."""
    page = web.get(where) if isinstance(where, str) else where
    assert page.status_code == 200, page.data[:300]
    html = page.get_data(as_text=True)
    return web.post(login_action(page), data={"csrf_token": csrf_of(html), "id_number": id_number,
                                                 "password": password})


def authorize_code(web: Any, rp: RP, *, scope: str = "openid profile", consent: bool = True,
                   extra: dict[str, str] | None = None, share_id_number: bool = False) -> tuple[dict[str, str], str]:
    """Drive /authorize → login → consent → redirect; returns (redirect query, code_verifier)."""
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
              "scope": scope, "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256", **(extra or {})}
    resp = web.get("/authorize", query_string=params)
    for _ in range(8):
        if is_login_page(resp):
            resp = login(web, resp)
            continue
        assert resp.status_code in (302, 303), (resp.status_code, resp.data[:500])
        loc = resp.headers["Location"]
        if loc.startswith(rp.redirect_uri):
            return query_of(loc), verifier
        path = urlsplit(loc).path
        if path == "/login":
            resp = login(web, loc)
        elif path == "/consent":
            page = web.get(loc)
            data = {"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow" if consent else "deny"}
            if share_id_number:
                data["share_id_number"] = "yes"
            resp = web.post(loc, data=data)
        else:
            resp = web.get(loc)
    raise AssertionError("the flow did not end at the redirect URI")


def exchange(web: Any, rp: RP, code: str, verifier: str | None) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    headers = rp.basic() if rp.secret else {}
    if not rp.secret:
        data["client_id"] = rp.client_id
    return web.post("/token", data=data, headers=headers)
