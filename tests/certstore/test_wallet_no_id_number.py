"""The citizen's ID number never reaches a URL the wallet emits or a value it writes to Redis (issue 11.4).

The wallet gets the number from the idp's userinfo endpoint with the access
token, keeps only its blind index, and signs out with ``client_id`` +
``post_logout_redirect_uri`` (RP-Initiated Logout 1.0 §2), adding
``id_token_hint`` only for an ID token that carries no number. These tests
look for the number in clear, URL-encoded, and inside every base64/base64url
segment (JWTs, Flask's signed cookie, JSON in Redis), decoded recursively.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from html import unescape
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.idp.oidc_helpers import csrf_of, is_login_page, login

from .conftest import PERSON_ID
from .idp_world import *  # noqa: F403 (the world fixture)
from .idp_world import CS_URL, World
from .test_wallet import _FakeOAuth
from .test_wallet_logout import continue_url

_SEGMENT = re.compile(r"[A-Za-z0-9_\-+/]{12,}={0,2}")


def _decodings(text: str, depth: int = 0) -> list[str]:
    """``text`` and everything base64-looking inside it, decoded (and inflated), recursively."""
    out = [text, unquote(text), unescape(text)]
    if depth >= 3:
        return out
    for m in _SEGMENT.finditer(unquote(text)):
        seg = m.group().rstrip("=")
        for alt in (seg.replace("-", "+").replace("_", "/"),):
            try:
                raw = base64.b64decode(alt + "=" * (-len(alt) % 4), validate=False)
            except (binascii.Error, ValueError):
                continue
            for data in (raw, _inflate(raw)):
                if data:
                    out.extend(_decodings(data.decode("utf-8", "ignore"), depth + 1))
    return out


def _inflate(raw: bytes) -> bytes:
    try:
        return zlib.decompress(raw)
    except zlib.error:
        return b""


def carries_number(text: str) -> bool:
    needles = (PERSON_ID, PERSON_ID.lower(), PERSON_ID[:17])
    return any(n in d for d in _decodings(text) for n in needles)


def test_the_detector_finds_the_number_when_it_is_there() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"id_number": PERSON_ID}).encode()).rstrip(b"=").decode()
    assert carries_number(f"https://idp.test/logout?id_token_hint=eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln")
    assert carries_number(json.dumps({"id_token": f"e30.{claims}.c2ln"}))
    inflated = base64.urlsafe_b64encode(zlib.compress(json.dumps({"n": PERSON_ID}).encode())).decode()
    assert carries_number(f".{inflated}.abc.def")
    assert not carries_number("https://idp.test/logout?client_id=certstore")


def _wallet_redis(w: World) -> list[str]:
    """Every value the wallet holds in Redis (strings and set members), with its key."""
    store = w.cs_app.extensions["certstore.wallet_sessions"]
    out = []
    for key in store.client.scan_iter(match=store.prefix + "*", count=1000):
        kind = store.client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        values = [store.client.get(key)] if kind == "string" else list(store.client.smembers(key))
        out += [f"{key!r} {v.decode() if isinstance(v, bytes) else v}" for v in values]
    return out


def _links(html: str) -> list[str]:
    return [unescape(u) for u in re.findall(r'(?:href|src|action)="([^"]+)"', html)]


class _AtPublicUrl:
    """certstore's test client as the browser reaches it, at its public URL (the registered redirect URI)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, base_url=CS_URL, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, base_url=CS_URL, **kw)


def test_the_wallet_never_puts_the_id_number_in_a_url_or_redis(world: World) -> None:
    cs, idp = _AtPublicUrl(world.cs), world.idp
    emitted: list[str] = []  # every URL the wallet sends the browser to, or links from its pages

    resp = cs.get("/wallet/login")
    assert resp.status_code == 302
    emitted.append(resp.headers["Location"])
    # the browser at the idp: sign in, consent to releasing the number to the wallet
    loc = resp.headers["Location"]
    resp = idp.get(urlsplit(loc).path, query_string=urlsplit(loc).query)
    for _ in range(8):
        if is_login_page(resp):
            resp = login(idp, resp)
            continue
        loc = resp.headers["Location"]
        if loc.startswith(f"{CS_URL}/wallet/callback"):
            break
        if urlsplit(loc).path == "/consent":
            page = idp.get(loc)
            resp = idp.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow",
                                       "share_id_number": "yes"})
        else:
            resp = idp.get(loc)
    calls_before = list(world.adapter.calls)
    resp = cs.get(urlsplit(loc).path, query_string=urlsplit(loc).query)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    emitted.append(resp.headers["Location"])
    # the number came from userinfo, asked with the access token
    assert ("GET", "/userinfo") in world.adapter.calls[len(calls_before):] or (
        "POST", "/userinfo") in world.adapter.calls[len(calls_before):]
    emitted += [c for c in resp.headers.getlist("Set-Cookie")]

    page = cs.get("/wallet")
    assert page.status_code == 200 and world.a_certificate in page.get_data(as_text=True)
    for link in _links(page.get_data(as_text=True)):
        emitted.append(link)
        if link.startswith("/wallet/certificates/"):
            sub = cs.get(link)
            assert sub.status_code == 200
            emitted += _links(sub.get_data(as_text=True)) if sub.mimetype == "text/html" else []
    stored = _wallet_redis(world)
    assert stored, "the wallet session is in Redis"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    out = cs.post("/wallet/logout", data={"csrf": csrf})
    logout_url = continue_url(out)
    emitted.append(logout_url)
    query = dict(p.split("=", 1) for p in urlsplit(logout_url).query.split("&"))
    # RP-Initiated Logout 1.0 §2: client_id names the wallet without an ID token
    assert logout_url.startswith(f"{world.idp_services.settings.issuer}/logout?")
    assert query["client_id"] == "certstore" and unquote(query["post_logout_redirect_uri"]) == f"{CS_URL}/verify"

    for url in emitted:
        assert not carries_number(url), url
    for value in stored:
        assert not carries_number(value), value
    # the idp accepts the sign-out URL as it is
    end = idp.get(urlsplit(logout_url).path, query_string=urlsplit(logout_url).query)
    assert end.status_code in (200, 302, 303), end.get_data(as_text=True)[:300]


def test_an_id_token_carrying_the_number_is_neither_kept_nor_sent(app: Any, client: Any, services: Any) -> None:
    """Even if an idp still put the number in the ID token, the wallet drops that token."""
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "pw", "sid": "s1", "id_number": PERSON_ID}).encode())
    id_token = "eyJhbGciOiJFUzI1NiJ9." + payload.rstrip(b"=").decode() + ".c2ln"
    fake = _FakeOAuth({"sub": "pw", "id_number": PERSON_ID, "name": "张三"})
    fake.idp.authorize_access_token = lambda: {  # type: ignore[method-assign]
        "access_token": "at", "id_token": id_token, "userinfo": {"sub": "pw", "sid": "s1", "id_number": PERSON_ID},
    }
    fake.idp.load_server_metadata = lambda: {"end_session_endpoint": "http://idp.test/logout"}  # type: ignore[attr-defined]
    app.extensions["certstore.oauth"] = fake
    resp = client.get("/wallet/callback?code=c&state=s")
    assert resp.status_code == 302
    store = app.extensions["certstore.wallet_sessions"]
    for key in store.client.scan_iter(match=store.prefix + "s:*"):
        assert not carries_number(store.client.get(key).decode())
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/wallet").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    services.settings = services.settings.with_(client_id="certstore")
    out = client.post("/wallet/logout", data={"csrf": csrf})
    target = continue_url(out)
    assert target.startswith("http://idp.test/logout?client_id=certstore&") and "id_token_hint" not in target
    assert not carries_number(target)


class _NumberOnlyInUserinfo:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    def authorize_access_token(self) -> dict[str, Any]:
        return {"access_token": "at-1", "userinfo": {"sub": "pw"}}

    def userinfo(self, token: Any) -> dict[str, str]:
        self.asked.append(token)
        return {"sub": "pw", "id_number": PERSON_ID, "name": "张三"}


def test_the_number_comes_from_userinfo_with_the_access_token(app: Any, client: Any) -> None:
    idp = _NumberOnlyInUserinfo()
    app.extensions["certstore.oauth"] = type("O", (), {"idp": idp})()
    assert client.get("/wallet/callback?code=c&state=s").status_code == 302
    assert idp.asked and idp.asked[0]["access_token"] == "at-1"  # noqa: S105 - a test token
    # a userinfo answer about someone else than the ID token is refused
    idp.authorize_access_token = lambda: {"access_token": "at-2", "userinfo": {"sub": "other"}}  # type: ignore[method-assign]
    assert client.get("/wallet/callback?code=c&state=s").status_code == 400
