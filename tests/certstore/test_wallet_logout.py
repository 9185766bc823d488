"""The wallet in single sign-out: server-side sessions, back-channel logout, sign-out that sticks."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from certstore.settings import CertstoreSettings
from certstore.wallet import StaticResolver, WalletService
from certstore.web import CSP
from keys.config import CommonSettings
from keys.jws import encode_jws
from keys.keyring import open_keyring

from .conftest import ISSUER_URL, PERSON_ID, make_settings, populate
from .test_wallet import _FakeOAuth

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def services(tmp_path: Path, database_url: str, redis_url: str | None, redis_prefix: str, jwks_source: Any) -> Iterator[Any]:
    from certstore.wiring import build_services

    values: dict[str, Any] = {"HOME": tmp_path / "home", "DATABASE_URL": database_url, "ISSUER": ISSUER_URL,
                              "REDIS_PREFIX": redis_prefix}
    if redis_url:
        values["REDIS_URL"] = redis_url
    common = CommonSettings.from_values(values, default_issuer=ISSUER_URL)
    settings = CertstoreSettings(common=common, client_id="certstore")
    svc = build_services(settings, jwks_source=jwks_source)
    populate(svc)
    yield svc
    svc.close()


@pytest.fixture
def wallet(app: Any, services: Any) -> WalletService:
    svc = WalletService(services.certificates, StaticResolver())
    app.extensions["certstore.wallet"] = svc
    return svc


def _sign_in(app: Any, client: Any, *, sid: str, sub: str = "pairwise-wallet") -> str:
    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": sub, "sid": sid, "id_number": PERSON_ID, "name": "张三丰"})
    resp = client.get("/wallet/callback?code=c&state=s")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wallet")
    assert client.get("/wallet").status_code == 200
    return str(client.get_cookie("yw_wallet", path="/wallet").value)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER_URL, "aud": "certstore", "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex,
              "events": {EVENT: {}}, "sid": "sid-1", "sub": "pairwise-wallet"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _post(client: Any, token: str) -> Any:
    return client.post("/wallet/backchannel-logout", data={"logout_token": token})


def _signed_out(client: Any) -> bool:
    resp = client.get("/wallet")
    return resp.status_code == 302 and resp.headers["Location"].endswith("/wallet/login")


def test_the_cookie_is_opaque(app: Any, client: Any, wallet: WalletService) -> None:
    value = _sign_in(app, client, sid="sid-1")
    raw = client.get_cookie("yw_wallet", path="/wallet")
    assert raw.http_only
    for part in value.split("."):
        try:
            decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except ValueError:
            continue
        assert wallet.holder_index(PERSON_ID).encode() not in decoded and "张三丰".encode() not in decoded
    # Flask's own signed cookie carries nothing about the holder any more
    with client.session_transaction() as sess:
        assert dict(sess) == {}


def test_a_valid_logout_token_ends_the_wallet_session(app: Any, client: Any, wallet: WalletService, idp_keys: Any) -> None:
    _sign_in(app, client, sid="sid-1")
    other = app.test_client()
    _sign_in(app, other, sid="sid-2")  # another idp session of the same citizen stays
    resp = _post(client, encode_jws(idp_keys.active(), _claims(sid="sid-1"), typ="logout+jwt"))
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert _signed_out(client)
    assert other.get("/wallet").status_code == 200

    # sub only (no sid): every session of that subject ends
    resp = _post(client, encode_jws(idp_keys.active(), _claims(sid=None), typ=None))
    assert resp.status_code == 200
    assert _signed_out(other)


def test_a_replayed_logout_token_does_nothing_twice(app: Any, client: Any, wallet: WalletService, idp_keys: Any) -> None:
    token = encode_jws(idp_keys.active(), _claims(sid="sid-r"), typ="logout+jwt")
    _sign_in(app, client, sid="sid-r")
    assert _post(client, token).status_code == 200 and _signed_out(client)
    _sign_in(app, client, sid="sid-r")
    assert _post(client, token).status_code == 200  # a retried delivery is acknowledged ...
    assert client.get("/wallet").status_code == 200  # ... but the jti was spent


class _Renamed:
    """A foreign key that claims the idp's key id."""

    def __init__(self, signer: Any, kid: str) -> None:
        self._signer, self.kid, self.algorithm = signer, kid, signer.algorithm

    def sign(self, data: bytes) -> bytes:
        return bytes(self._signer.sign(data))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_bad_logout_tokens_are_refused_and_end_nothing(
    app: Any, client: Any, wallet: WalletService, idp_keys: Any, tmp_path: Path
) -> None:
    _sign_in(app, client, sid="sid-1")
    good = idp_keys.active()
    foreign = open_keyring(make_settings(tmp_path / "evil", "sqlite://").common.keys).keyset("idp-token").active()
    bad = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'logout+jwt', 'kid': good.kid})}.{_b64(_claims())}.",
        "foreign key": encode_jws(foreign, _claims(), typ="logout+jwt"),
        "foreign key, idp kid": encode_jws(_Renamed(foreign, good.kid), _claims(), typ="logout+jwt"),
        "tampered": re.sub(r"\.([^.]+)\.", "." + _b64(_claims(sid="sid-1", extra=1)) + ".",
                           encode_jws(good, _claims(sid="other"), typ="logout+jwt")),
        "other audience": encode_jws(good, _claims(aud="portal-housing"), typ="logout+jwt"),
        "other issuer": encode_jws(good, _claims(iss="http://evil.test"), typ="logout+jwt"),
        "no events": encode_jws(good, _claims(events=None), typ="logout+jwt"),
        "wrong event": encode_jws(good, _claims(events={"urn:other": {}}), typ="logout+jwt"),
        "nonce": encode_jws(good, _claims(nonce="n"), typ="logout+jwt"),
        "no jti": encode_jws(good, _claims(jti=None), typ="logout+jwt"),
        "no iat": encode_jws(good, _claims(iat=None), typ="logout+jwt"),
        "stale iat": encode_jws(good, _claims(iat=int(time.time()) - 3600, exp=None), typ="logout+jwt"),
        "neither sid nor sub": encode_jws(good, _claims(sid=None, sub=None), typ="logout+jwt"),
        "an access token": encode_jws(good, _claims(), typ="at+jwt"),
        "an ID token": encode_jws(good, _claims(), typ="JWT"),
        "garbage": "not-a-token",
    }
    for name, token in bad.items():
        resp = _post(client, token)
        assert resp.status_code == 400, name
        assert resp.get_json()["error"] == "invalid_request", name
        assert client.get("/wallet").status_code == 200, name
    assert client.post("/wallet/backchannel-logout").status_code == 400


def test_a_copied_cookie_dies_with_sign_out(app: Any, client: Any, wallet: WalletService) -> None:
    value = _sign_in(app, client, sid="sid-1")
    thief = app.test_client()
    thief.set_cookie("yw_wallet", value, path="/wallet")
    assert thief.get("/wallet").status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/wallet").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    resp = client.post("/wallet/logout", data={"csrf": csrf})
    assert resp.status_code == 302
    assert _signed_out(client)
    assert _signed_out(thief)
    assert app.extensions["certstore.wallet_sessions"].get(value) is None


def continue_url(resp: Any) -> str:
    """The URL the sign-out page's GET form sends the browser to (what Chromium builds on submit)."""
    assert resp.status_code == 200 and resp.mimetype == "text/html", resp.status_code
    html = resp.get_data(as_text=True)
    form = re.search(r'<form id="end-session" method="get" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form, html
    fields = [(unescape(k), unescape(v)) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2))]
    return f"{unescape(form.group(1))}?{urlencode(fields)}"


def test_sign_out_continues_at_the_idp(app: Any, client: Any, wallet: WalletService) -> None:
    fake = _FakeOAuth({"sub": "pw", "sid": "sid-9", "id_number": PERSON_ID, "name": "张三丰"})
    id_token = f"e30.{_b64({'sub': 'pw', 'sid': 'sid-9'})}.c2ln"  # an ID token without the number
    token = {"access_token": "x", "id_token": id_token, "userinfo": {"sub": "pw", "sid": "sid-9"}}
    fake.idp.authorize_access_token = lambda: token  # type: ignore[method-assign]
    fake.idp.load_server_metadata = lambda: {"end_session_endpoint": f"{ISSUER_URL}/logout"}  # type: ignore[attr-defined]
    app.extensions["certstore.oauth"] = fake
    client.get("/wallet/callback?code=c&state=s")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/wallet").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    resp = client.post("/wallet/logout", data={"csrf": csrf})
    # Not a redirect: Chromium holds a 302 after a form POST to the page's form-action 'self' (issue 18 §1).
    assert "Location" not in resp.headers
    target = continue_url(resp)
    assert target.startswith(f"{ISSUER_URL}/logout?") and f"id_token_hint={id_token}" in target
    assert "client_id=certstore" in target
    assert "post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5100%2Fverify" in target
    # only this page's form may leave for the idp; everything else stays as strict as the app's CSP
    csp = resp.headers["Content-Security-Policy"]
    assert f"form-action 'self' {ISSUER_URL};" in csp and csp.replace(f" {ISSUER_URL}", "") == CSP
    assert 'src="/wallet/static/wallet_signout.js"' in resp.get_data(as_text=True)
    assert "<script>" not in resp.get_data(as_text=True)
    assert client.get("/wallet").headers["Content-Security-Policy"] == CSP
    assert "yw_wallet=;" in resp.headers["Set-Cookie"] or "Max-Age=0" in resp.headers["Set-Cookie"]
    assert _signed_out(client)


def test_sign_out_needs_the_sessions_form_token(app: Any, client: Any, wallet: WalletService) -> None:
    """A sibling page cannot sign the citizen out: POST only, with the session's token."""
    value = _sign_in(app, client, sid="sid-c")
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}):
        resp = client.post("/wallet/logout", data=data)
        assert resp.status_code == 400 and "Location" not in resp.headers
        assert "end-session" not in resp.get_data(as_text=True)
    assert client.get("/wallet/logout").status_code == 405
    assert app.extensions["certstore.wallet_sessions"].get(value) is not None
    assert client.get("/wallet").status_code == 200
