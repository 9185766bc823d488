"""The Flask-free hot paths against Flask alone, request for request (issue 16 review).

:mod:`idp.web.hotpaths` promises the Flask views' answers: every request here
is sent twice over the same application, once through the full WSGI stack
(the hot layer in front of Flask) and once with the hot layer taken out of it
(``CorsLayer`` wired straight to Flask's ``wsgi_app``), and the two answers must
match: status, headers (``Location`` with every parameter, caching, challenges,
cookies, CSP) and body. One-time values (codes, tokens, jtis, flow ids, CSRF
tokens, nonces) are compared by shape: a JWT by its header and its stable
claims, a random string as ``<R>``.

State that a request changes (a code, a refresh token, a session) is built
afresh for each of the two runs by the same scenario function.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from idp.web.hotpaths import HotPaths
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    ISSUER,
    RP,
    authorize_code,
    csrf_of,
    login,
    make_rp,
    pkce_pair,
    query_of,
)
from tests.idp.test_mtls import agency_a, mtls_app, pkit  # noqa: F401 - fixtures
from tests.keys.dpop_client import DPoPKey

FORM = "application/x-www-form-urlencoded"
DUMP = False
_IGNORED_HEADERS = {"x-request-id", "content-length", "date"}
"""X-Request-Id: the request log's, outside both; Content-Length: the WSGI server adds it to the hot
path's answers (a cosmetic difference, recorded in /work/notes/perf-review.md)."""
_VOLATILE = {"iat", "exp", "nbf", "jti", "auth_time", "at_hash", "c_hash", "s_hash", "sid"}
_RANDOM = re.compile(r"(?:(?=[\w\-]*\d)|(?=[\w\-]*[A-Z])(?=[\w\-]*[a-z]))[A-Za-z0-9_\-]{20,}")
"""A one-time value: 20 or more URL-safe characters with a digit, or with upper and lower case
letters (an error code has neither; a random one lacks both about once in 250,000)."""
_COOKIE_DATE = re.compile(r"(Expires=)[^;]+")


# ------------------------------------------------------------------ the two stacks


class Stacks:
    """The app's WSGI chain, with the hot layer in it or taken out of it."""

    def __init__(self, app: Any) -> None:
        node = app.wsgi_app
        for _ in range(10):
            for attr in ("app", "_app"):
                nxt = getattr(node, attr, None)
                if isinstance(nxt, HotPaths):
                    self.parent, self.attr, self.hot = node, attr, nxt
                    return
            node = getattr(node, "app", None) or node._app
        raise AssertionError("no HotPaths in the WSGI chain")

    @contextlib.contextmanager
    def flask_only(self) -> Iterator[None]:
        setattr(self.parent, self.attr, self.hot._flask)
        try:
            yield
        finally:
            setattr(self.parent, self.attr, self.hot)

    def both(self, scenario: Callable[[str], list[Any]]) -> tuple[list[Any], list[Any]]:
        hot = scenario("hot")
        with self.flask_only():
            flask = scenario("flask")
        return hot, flask


@pytest.fixture
def stacks(app: Any) -> Stacks:
    return Stacks(app)


@pytest.fixture
def authorize_reached(app: Any) -> list[str]:
    """Requests that reached the Flask view of ``/authorize``."""
    seen: list[str] = []
    original = app.view_functions["oauth.authorize"]

    def tripwire(*a: Any, **kw: Any) -> Any:
        seen.append("authorize")
        return original(*a, **kw)

    app.view_functions["oauth.authorize"] = tripwire
    return seen


# ------------------------------------------------------------------ normalising


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def shape(value: Any) -> Any:
    """``value`` with its one-time parts replaced by what they look like."""
    if isinstance(value, dict):
        return {k: ("<v>" if k in _VOLATILE and v is not None else shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) == 3 and all(parts[:2]) and len(value) > 40:
            try:
                return {"JWT": shape(_b64json(parts[0])), "claims": shape(_b64json(parts[1]))}
            except ValueError:
                pass
        return _RANDOM.sub("<R>", value)
    return value


def _location(value: str) -> Any:
    parts = urlsplit(value)
    return (parts.scheme, parts.netloc, parts.path,
            [(k, shape(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
            [(k, shape(v)) for k, v in parse_qsl(parts.fragment, keep_blank_values=True)])


def answer(resp: Any) -> dict[str, Any]:
    """Status, headers and body of a test-client response, one-time values by shape."""
    headers: dict[str, Any] = {}
    for name in sorted({k.lower() for k, _ in resp.headers.items()} - _IGNORED_HEADERS):
        values = resp.headers.getlist(name)
        if name == "location":
            headers[name] = [_location(v) for v in values]
        elif name == "set-cookie":
            headers[name] = sorted(_RANDOM.sub("<R>", _COOKIE_DATE.sub(r"\1<date>", v)) for v in values)
        else:
            headers[name] = [shape(v) for v in values]
    data = resp.get_data()
    body: Any
    if resp.mimetype in ("application/json", "application/problem+json"):
        body = shape(json.loads(data)) if data else None
    elif resp.mimetype in ("application/jwt",) and data:
        body = shape(data.decode())
    else:
        body = _RANDOM.sub("<R>", data.decode("utf-8", "replace"))
    return {"status": resp.status, "headers": headers, "body": body}


def assert_same(hot: list[Any], flask: list[Any], labels: list[str] | None = None) -> None:
    assert len(hot) == len(flask)
    for i, (h, f) in enumerate(zip(hot, flask, strict=True)):
        label = labels[i] if labels else str(i)
        a, b = answer(h), answer(f)
        if a != b:
            ra, rb = repr(a), repr(b)
            at = next((j for j, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y), min(len(ra), len(rb)))
            raise AssertionError(f"case {label}: hot ...{ra[max(0, at - 200):at + 300]}\n"
                                 f"!= flask ...{rb[max(0, at - 200):at + 300]}")


# ------------------------------------------------------------------ helpers


def raw(web: Any, method: str, path: str, body: bytes | None = None, *, content_type: str | None = FORM,
        headers: dict[str, str] | None = None, environ: dict[str, Any] | None = None) -> Any:
    """A request with exactly this body and content type (none when ``None``)."""
    kw: dict[str, Any] = {"method": method, "headers": dict(headers or {}), "environ_overrides": environ or {}}
    if body is not None:
        kw["data"] = body
    if content_type is not None:
        kw["content_type"] = content_type
    return web.open(path, **kw)


def basic(client_id: str, secret: str, *, encode: bool = False) -> dict[str, str]:
    if encode:  # RFC 6749 §2.3.1: each form-urlencoded before Basic
        client_id, secret = quote(client_id, safe=""), quote(secret, safe="")
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def signed_in(web: Any, rp: RP, **kw: Any) -> None:
    """Sign the test client's browser in and give ``rp`` its consent (the hot path's precondition)."""
    authorize_code(web, rp, scope=kw.pop("scope", "openid profile offline_access"), **kw)


def code_for(web: Any, rp: RP, **extra: str) -> tuple[str, str]:
    q, verifier = authorize_code(web, rp, scope="openid profile offline_access", extra=extra or None)
    return q["code"], verifier


def redeem(web: Any, rp: RP, code: str, verifier: str | None, *, headers: dict[str, str] | None = None,
           redirect_uri: str | None = None) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or rp.redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    return web.post("/token", data=data, headers={**rp.basic(), **(headers or {})})


@pytest.fixture
def other_rp(idp_services: Any) -> RP:
    return make_rp(idp_services, name="另一个", redirect_uri="https://other.example.cn/cb")


# ------------------------------------------------------------------ POST /token: parsing


def _cc(extra: str = "") -> bytes:
    return ("grant_type=client_credentials" + extra).encode()


def test_token_request_parsing_oddities_answer_as_flask(web, rp, stacks, flask_reached):
    cases: list[tuple[str, dict[str, Any]]] = [
        ("plain", {"body": _cc()}),
        ("duplicate grant_type", {"body": _cc("&grant_type=client_credentials")}),
        ("duplicate scope", {"body": _cc("&scope=&scope=openid")}),
        ("duplicate, differing", {"body": b"grant_type=password&grant_type=client_credentials"}),
        ("query and body", {"path": "/token?grant_type=client_credentials", "body": _cc()}),
        ("only the query", {"path": "/token?grant_type=client_credentials", "body": b""}),
        ("no content type", {"body": _cc(), "content_type": None}),
        ("text/plain", {"body": _cc(), "content_type": "text/plain"}),
        ("json", {"body": b'{"grant_type":"client_credentials"}', "content_type": "application/json"}),
        ("upper case type", {"body": _cc(), "content_type": FORM.upper()}),
        ("charset utf-8", {"body": _cc(), "content_type": FORM + "; charset=utf-8"}),
        ("charset latin-1, é", {"body": _cc("&scope=%E9"), "content_type": FORM + "; charset=ISO-8859-1"}),
        ("charset utf-16", {"body": _cc(), "content_type": FORM + ";charset=UTF-16"}),
        ("type with spaces", {"body": _cc(), "content_type": "  " + FORM + " ;x=y"}),
        ("form-urlencodedx", {"body": _cc(), "content_type": FORM + "x"}),
        ("raw 0xff", {"body": _cc("&scope=\xff").replace(b"\xc3\xbf", b"\xff")}),
        ("%ff", {"body": _cc("&scope=%ff")}),
        ("overlong utf-8 %c0%af", {"body": _cc("&scope=%c0%af")}),
        ("surrogate %ed%a0%80", {"body": _cc("&scope=%ed%a0%80")}),
        ("%00 in value", {"body": _cc("&scope=a%00b")}),
        ("%00 in name", {"body": _cc("&a%00=b")}),
        ("malformed %zz and %2", {"body": _cc("&state=%zz&x=%2")}),
        ("plus and %2B", {"body": _cc("&scope=openid+profile&x=%2B")}),
        ("raw UTF-8", {"body": _cc("&scope=中文")}),
        ("encoded name", {"body": b"grant%5Ftype=client_credentials"}),
        ("semicolon separator", {"body": b"grant_type=client_credentials;scope=openid"}),
        ("empty pairs", {"body": b"&&grant_type=client_credentials&&=&x"}),
        ("value of 2048", {"body": _cc("&state=" + "x" * 2048)}),
        ("value of 2049", {"body": _cc("&state=" + "x" * 2049)}),
        ("name of 128", {"body": _cc("&" + "n" * 128 + "=1")}),
        ("name of 129", {"body": _cc("&" + "n" * 129 + "=1")}),
        ("body of 64 KiB + 1", {"body": _cc("&pad=" + "x" * (65536 - len(_cc("&pad=")) + 1))}),
        ("empty body", {"body": b""}),
        ("no body at all", {"body": None}),
        ("Content-Length shorter than the body", {"body": _cc("&scope=openid"),
                                                  "environ": {"CONTENT_LENGTH": str(len(_cc()))}}),
        ("Content-Length not a number", {"body": _cc(), "environ": {"CONTENT_LENGTH": "12a"}}),
        ("negative Content-Length", {"body": _cc(), "environ": {"CONTENT_LENGTH": "-1"}}),
        ("chunked and a length", {"body": _cc(), "headers": {"Transfer-Encoding": "chunked"}}),
        ("client_id in the body too", {"body": _cc(f"&client_id={rp.client_id}")}),
        ("secret in the body too", {"body": _cc(f"&client_id={rp.client_id}&client_secret={rp.secret}")}),
        ("another client in the body", {"body": _cc("&client_id=someone&client_secret=x")}),
        ("post only", {"body": _cc(f"&client_id={rp.client_id}&client_secret={quote(rp.secret or '', safe='')}"),
                       "headers": {"Authorization": ""}}),
        ("post, every char %-encoded", {"body": _cc("&client_id=" + "".join(f"%{b:02X}" for b in rp.client_id.encode())
                                                    + "&client_secret=" + "".join(f"%{b:02X}" for b in (rp.secret or "").encode())),
                                        "headers": {"Authorization": ""}}),
        ("basic, url-encoded", {"body": _cc(), "headers": basic(rp.client_id, rp.secret or "", encode=True)}),
        ("basic, '+' for a space", {"body": _cc(), "headers": basic(rp.client_id + "+", rp.secret or "")}),
        ("basic, %-encoded '-' in the secret", {"body": _cc(), "headers": basic(
            rp.client_id, (rp.secret or "").replace("-", "%2D").replace("_", "%5F"))}),
        ("basic, no colon", {"body": _cc(), "headers": {"Authorization": "Basic " + base64.b64encode(
            rp.client_id.encode()).decode()}}),
        ("basic, not base64", {"body": _cc(), "headers": {"Authorization": "Basic %%%"}}),
        ("basic, lower-case scheme", {"body": _cc(), "headers": {"Authorization": rp.basic()["Authorization"].replace(
            "Basic", "basic")}}),
        ("two schemes", {"body": _cc(), "headers": {"Authorization": rp.basic()["Authorization"] + ", Bearer x"}}),
    ]
    labels = [c[0] for c in cases]

    def scenario(mode: str) -> list[Any]:
        out = []
        for _, c in cases:
            headers = {**rp.basic(), **c.get("headers", {})}
            if headers.get("Authorization") == "":
                del headers["Authorization"]
            out.append(raw(web, "POST", c.get("path", "/token"), c["body"], content_type=c.get("content_type", FORM),
                           headers=headers, environ=c.get("environ")))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert hot[0].status_code == 200


def test_other_methods_and_paths_go_to_flask(web, rp, stacks):
    cases = [("HEAD", "/userinfo"), ("OPTIONS", "/token"), ("PUT", "/token"), ("GET", "/token"),
             ("POST", "/token/"), ("POST", "//token"), ("POST", "/TOKEN"), ("GET", "/introspect"),
             ("DELETE", "/userinfo"), ("POST", "/token%00"), ("POST", "/userinfo/")]

    def scenario(mode: str) -> list[Any]:
        return [raw(web, m, p, _cc() if m in ("POST", "PUT") else None, headers=rp.basic()) for m, p in cases]

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, [f"{m} {p}" for m, p in cases])


def test_an_unexpected_error_is_answered_alike(app, web, rp, stacks, monkeypatch):
    provider = app.extensions["yiwang"].provider

    def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(provider.tokens, "issue_client_credentials", broken, raising=False)
    monkeypatch.setattr(provider, "query_client", broken)

    def scenario(mode: str) -> list[Any]:
        return [raw(web, "POST", "/token", _cc(), headers=rp.basic()),
                raw(web, "POST", "/introspect", b"token=x", headers=rp.basic())]

    hot, flask = stacks.both(scenario)
    # Cosmetic, recorded: the hot path's 500 (json_reply) also says Pragma: no-cache; Flask's does not.
    assert [h.headers.get("Pragma") for h in hot] == ["no-cache", "no-cache"]
    assert [f.headers.get("Pragma") for f in flask] == [None, None]
    for h in hot:
        del h.headers["Pragma"]
    assert_same(hot, flask, ["token", "introspect"])


# ------------------------------------------------------------------ introspection and userinfo


def _tokens(web: Any, rp: RP) -> dict[str, Any]:
    code, verifier = code_for(web, rp)
    resp = redeem(web, rp, code, verifier)
    assert resp.status_code == 200, resp.data
    return resp.get_json()


@pytest.fixture
def token_set(app, web, citizen, rp) -> dict[str, str]:
    """A live, a revoked and an expired access token (and the live grant's refresh and ID tokens)."""
    signed_in(web, rp)
    live = _tokens(web, rp)
    revoked = _tokens(web, rp)
    r = web.post("/revoke", data={"token": revoked["access_token"]}, headers=rp.basic())
    assert r.status_code == 200
    tokens = app.extensions["yiwang"].provider.tokens
    real = tokens._clock
    tokens._clock = lambda: real() - 7200
    try:
        expired = _tokens(web, rp)
    finally:
        tokens._clock = real
    return {"at": live["access_token"], "rt": live["refresh_token"], "idt": live["id_token"],
            "revoked": revoked["access_token"], "expired": expired["access_token"]}


def test_introspection_cases_answer_as_flask(web, rp, other_rp, token_set, stacks, flask_reached):
    t = token_set
    mine, theirs = rp.basic(), other_rp.basic()
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("live", f"token={t['at']}".encode(), mine, "/introspect"),
        ("refresh token", f"token={t['rt']}".encode(), mine, "/introspect"),
        ("ID token", f"token={t['idt']}".encode(), mine, "/introspect"),
        ("hint refresh for an access token", f"token={t['at']}&token_type_hint=refresh_token".encode(), mine,
         "/introspect"),
        ("hint access for a refresh token", f"token={t['rt']}&token_type_hint=access_token".encode(), mine,
         "/introspect"),
        ("hint id_token", f"token={t['at']}&token_type_hint=id_token".encode(), mine, "/introspect"),
        ("revoked", f"token={t['revoked']}".encode(), mine, "/introspect"),
        ("expired", f"token={t['expired']}".encode(), mine, "/introspect"),
        ("by a client it was not issued to", f"token={t['at']}".encode(), theirs, "/introspect"),
        ("its refresh token by another client", f"token={t['rt']}".encode(), theirs, "/introspect"),
        ("no client", f"token={t['at']}".encode(), {}, "/introspect"),
        ("wrong secret", f"token={t['at']}".encode(), basic(rp.client_id, "wrong"), "/introspect"),
        ("auth in header and body", f"token={t['at']}&client_id={rp.client_id}&client_secret={rp.secret}".encode(),
         mine, "/introspect"),
        ("another client in the body", f"token={t['at']}&client_id={other_rp.client_id}"
                                       f"&client_secret={other_rp.secret}".encode(), mine, "/introspect"),
        ("garbage", b"token=a.b.c", mine, "/introspect"),
        ("empty token", b"token=", mine, "/introspect"),
        ("no token", b"", mine, "/introspect"),
        ("token twice, live first", f"token={t['at']}&token=x".encode(), mine, "/introspect"),
        ("token twice, live last", f"token=x&token={t['at']}".encode(), mine, "/introspect"),
        ("token in the query", b"", mine, f"/introspect?token={t['at']}"),
        ("token in query and body", b"token=x", mine, f"/introspect?token={t['at']}"),
    ]

    def scenario(mode: str) -> list[Any]:
        return [raw(web, "POST", path, body, headers=h) for _, body, h, path in cases]

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, [c[0] for c in cases])
    assert hot[0].get_json()["active"] is True
    assert hot[8].get_json() == {"active": False}  # the other client learns nothing
    assert hot[6].get_json() == {"active": False} and hot[7].get_json() == {"active": False}


def test_userinfo_cases_answer_as_flask(web, rp, token_set, stacks):
    t = token_set
    at = t["at"]
    cases: list[tuple[str, str, str, bytes | None, str | None, dict[str, str]]] = [
        ("header", "GET", "/userinfo", None, None, {"Authorization": "Bearer " + at}),
        ("lower-case scheme", "GET", "/userinfo", None, None, {"Authorization": "bearer " + at}),
        ("two spaces, trailing space", "GET", "/userinfo", None, None, {"Authorization": "Bearer  " + at + " "}),
        ("no token", "GET", "/userinfo", None, None, {}),
        ("empty bearer", "GET", "/userinfo", None, None, {"Authorization": "Bearer "}),
        ("Basic", "GET", "/userinfo", None, None, rp.basic()),
        ("query", "GET", "/userinfo?access_token=" + at, None, None, {}),
        ("query and header", "GET", "/userinfo?access_token=x", None, None, {"Authorization": "Bearer " + at}),
        ("body", "POST", "/userinfo", f"access_token={at}".encode(), FORM, {}),
        ("body, charset", "POST", "/userinfo", f"access_token={at}".encode(), FORM + "; charset=UTF-8", {}),
        ("body as JSON", "POST", "/userinfo", json.dumps({"access_token": at}).encode(), "application/json", {}),
        ("body without a type", "POST", "/userinfo", f"access_token={at}".encode(), None, {}),
        ("body twice", "POST", "/userinfo", f"access_token=x&access_token={at}".encode(), FORM, {}),
        ("header and body", "POST", "/userinfo", b"access_token=x", FORM, {"Authorization": "Bearer " + at}),
        ("body and bad header", "POST", "/userinfo", f"access_token={at}".encode(), FORM,
         {"Authorization": "Bearer x"}),
        ("POST with the query", "POST", "/userinfo?access_token=" + at, b"", FORM, {}),
        ("GET with a body", "GET", "/userinfo", f"access_token={at}".encode(), FORM, {}),
        ("revoked", "GET", "/userinfo", None, None, {"Authorization": "Bearer " + t["revoked"]}),
        ("expired", "GET", "/userinfo", None, None, {"Authorization": "Bearer " + t["expired"]}),
        ("refresh token", "GET", "/userinfo", None, None, {"Authorization": "Bearer " + t["rt"]}),
        ("ID token", "GET", "/userinfo", None, None, {"Authorization": "Bearer " + t["idt"]}),
        ("DPoP scheme, bearer token", "GET", "/userinfo", None, None, {"Authorization": "DPoP " + at}),
        ("DPoP proof with a bearer token", "GET", "/userinfo", None, None, {
            "Authorization": "Bearer " + at, "DPoP": DPoPKey().proof("GET", f"{ISSUER}/userinfo", access_token=at)}),
        ("a NUL in the body", "POST", "/userinfo", f"access_token={at}%00".encode(), FORM, {}),
    ]

    def scenario(mode: str) -> list[Any]:
        return [raw(web, m, p, b, content_type=ct, headers=h) for _, m, p, b, ct, h in cases]

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, [c[0] for c in cases])
    assert hot[0].status_code == 200 and hot[17].status_code == 401 and hot[18].status_code == 401


# ------------------------------------------------------------------ codes and refresh tokens


def test_code_redemption_attacks_answer_as_flask(app, web, citizen, rp, other_rp, stacks):
    signed_in(web, rp)
    signed_in(web, other_rp)
    labels = ["first", "second (replay)", "introspect first AT after the replay", "refresh of the first",
              "userinfo with the first AT", "other client's code", "the code, then by its own client",
              "wrong redirect_uri", "same code, right redirect_uri", "no verifier", "wrong verifier",
              "verifier of 43 chars", "verifier too long", "plain method verifier=challenge",
              "code in the body twice", "redirect_uri twice", "no redirect_uri", "code of 201 chars",
              "public auth on a confidential client"]

    def scenario(mode: str) -> list[Any]:
        out = []
        code, verifier = code_for(web, rp)
        first = redeem(web, rp, code, verifier)
        out += [first, redeem(web, rp, code, verifier)]
        tokens = first.get_json()
        out.append(web.post("/introspect", data={"token": tokens["access_token"]}, headers=rp.basic()))
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            headers=rp.basic()))
        out.append(web.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}))
        code, verifier = code_for(web, rp)
        out.append(web.post("/token", data={"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": rp.redirect_uri, "code_verifier": verifier},
                            headers=other_rp.basic()))
        out.append(redeem(web, rp, code, verifier))
        code, verifier = code_for(web, rp)
        out.append(redeem(web, rp, code, verifier, redirect_uri=other_rp.redirect_uri))
        out.append(redeem(web, rp, code, verifier))
        code, _ = code_for(web, rp)
        out.append(redeem(web, rp, code, None))
        code, _ = code_for(web, rp)
        out.append(redeem(web, rp, code, "x" * 43))
        code, _ = code_for(web, rp)
        out.append(redeem(web, rp, code, "A" * 43))
        code, verifier = code_for(web, rp)
        out.append(redeem(web, rp, code, verifier + "x" * 100))
        verifier, challenge = pkce_pair()
        q, _ = authorize_code(web, rp, extra={"code_challenge": verifier, "code_challenge_method": "plain"})
        out.append(redeem(web, rp, q["code"], verifier) if "code" in q else web.get("/nothing"))
        code, verifier = code_for(web, rp)
        out.append(raw(web, "POST", "/token", f"grant_type=authorization_code&code={code}&code=x&redirect_uri="
                       f"{quote(rp.redirect_uri, safe='')}&code_verifier={verifier}".encode(), headers=rp.basic()))
        code, verifier = code_for(web, rp)
        out.append(raw(web, "POST", "/token", f"grant_type=authorization_code&code={code}&redirect_uri="
                       f"{quote(rp.redirect_uri, safe='')}&redirect_uri=x&code_verifier={verifier}".encode(),
                       headers=rp.basic()))
        code, verifier = code_for(web, rp)
        out.append(web.post("/token", data={"grant_type": "authorization_code", "code": code,
                                            "code_verifier": verifier}, headers=rp.basic()))
        out.append(redeem(web, rp, "c" * 201, "x" * 43))
        code, verifier = code_for(web, rp)
        out.append(web.post("/token", data={"grant_type": "authorization_code", "code": code, "client_id": rp.client_id,
                                            "redirect_uri": rp.redirect_uri, "code_verifier": verifier}))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert hot[0].status_code == 200 and hot[1].status_code == 400
    assert hot[2].get_json() == {"active": False}  # the replay revoked what the code produced
    assert hot[3].status_code == 400 and hot[4].status_code == 401
    assert hot[5].status_code == 400 and hot[6].status_code == 400  # burnt by the other client


def test_dpop_bound_codes_and_tokens_answer_as_flask(web, citizen, rp, stacks):
    signed_in(web, rp)
    key, other = DPoPKey(), DPoPKey()
    token_url = f"{ISSUER}/token"
    labels = ["no proof", "another key", "its key", "userinfo as Bearer", "userinfo, DPoP without proof",
              "userinfo, another key", "userinfo, its key", "refresh without proof", "refresh, another key",
              "refresh, its key", "proof for another URL", "two proofs"]

    def scenario(mode: str) -> list[Any]:
        out = []
        code, verifier = code_for(web, rp, dpop_jkt=key.jkt)
        out.append(redeem(web, rp, code, verifier))
        code, verifier = code_for(web, rp, dpop_jkt=key.jkt)
        out.append(redeem(web, rp, code, verifier, headers={"DPoP": other.proof("POST", token_url)}))
        code, verifier = code_for(web, rp, dpop_jkt=key.jkt)
        ok = redeem(web, rp, code, verifier, headers={"DPoP": key.proof("POST", token_url)})
        out.append(ok)
        at, rt = ok.get_json()["access_token"], ok.get_json()["refresh_token"]
        ui = f"{ISSUER}/userinfo"
        out.append(web.get("/userinfo", headers={"Authorization": "Bearer " + at}))
        out.append(web.get("/userinfo", headers={"Authorization": "DPoP " + at}))
        out.append(web.get("/userinfo", headers={"Authorization": "DPoP " + at,
                                                 "DPoP": other.proof("GET", ui, access_token=at)}))
        out.append(web.get("/userinfo", headers={"Authorization": "DPoP " + at,
                                                 "DPoP": key.proof("GET", ui, access_token=at)}))
        data = {"grant_type": "refresh_token", "refresh_token": rt}
        out.append(web.post("/token", data=data, headers=rp.basic()))
        out.append(web.post("/token", data=data, headers={**rp.basic(), "DPoP": other.proof("POST", token_url)}))
        out.append(web.post("/token", data=data, headers={**rp.basic(), "DPoP": key.proof("POST", token_url)}))
        code, verifier = code_for(web, rp, dpop_jkt=key.jkt)
        out.append(redeem(web, rp, code, verifier, headers={"DPoP": key.proof("POST", f"{ISSUER}/par")}))
        out.append(redeem(web, rp, code, verifier, headers={
            "DPoP": key.proof("POST", token_url) + ", " + key.proof("POST", token_url)}))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert [r.status_code for r in hot[:3]] == [400, 400, 200]


def test_refresh_token_attacks_answer_as_flask(web, citizen, rp, other_rp, stacks):
    signed_in(web, rp)
    labels = ["rotate", "replay the first (the retry)", "the superseded child", "its AT",
              "the first a third time (reuse: family revoked)", "the retry's child", "the retry's AT", "another client's refresh", "then its own client",
              "scope wider than the grant", "then within it", "a refresh token of 201 chars",
              "refresh token twice in the body"]

    def scenario(mode: str) -> list[Any]:
        out = []
        tokens = _tokens(web, rp)
        rt1 = tokens["refresh_token"]
        rotated = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt1}, headers=rp.basic())
        out.append(rotated)
        rt2, at2 = rotated.get_json()["refresh_token"], rotated.get_json()["access_token"]
        retry = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt1}, headers=rp.basic())
        out.append(retry)  # within the grace window: the honest retry (issue 20 §1), the first child superseded
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt2}, headers=rp.basic()))
        out.append(web.get("/userinfo", headers={"Authorization": "Bearer " + at2}))
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt1}, headers=rp.basic()))
        rt3, at3 = retry.get_json()["refresh_token"], retry.get_json()["access_token"]
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt3}, headers=rp.basic()))
        out.append(web.get("/userinfo", headers={"Authorization": "Bearer " + at3}))
        rt = _tokens(web, rp)["refresh_token"]
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt},
                            headers=other_rp.basic()))
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=rp.basic()))
        rt = _tokens(web, rp)["refresh_token"]
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                            "scope": "openid profile phone"}, headers=rp.basic()))
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt, "scope": "openid"},
                            headers=rp.basic()))
        out.append(web.post("/token", data={"grant_type": "refresh_token", "refresh_token": "r" * 201},
                            headers=rp.basic()))
        rt = _tokens(web, rp)["refresh_token"]
        out.append(raw(web, "POST", "/token", f"grant_type=refresh_token&refresh_token=x&refresh_token={rt}".encode(),
                       headers=rp.basic()))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert [r.status_code for r in hot[:7]] == [200, 200, 400, 401, 400, 400, 401]


def test_dpop_nonces_answer_as_flask(app_with, citizen, rp):
    app = app_with(dpop_nonce_endpoints=("token", "userinfo"))
    web, stacks = app.test_client(), Stacks(app)
    key = DPoPKey()
    token_url, ui = f"{ISSUER}/token", f"{ISSUER}/userinfo"
    signed_in(web, rp)

    def scenario(mode: str) -> list[Any]:
        out = [web.post("/token", data={"grant_type": "client_credentials"},
                        headers={**rp.basic(), "DPoP": key.proof("POST", token_url)})]
        nonce = out[0].headers["DPoP-Nonce"]
        out.append(web.post("/token", data={"grant_type": "client_credentials"},
                            headers={**rp.basic(), "DPoP": key.proof("POST", token_url, nonce="made-up")}))
        code, verifier = code_for(web, rp)
        ok = redeem(web, rp, code, verifier, headers={"DPoP": key.proof("POST", token_url, nonce=nonce)})
        out.append(ok)
        at = ok.get_json()["access_token"]
        out.append(web.get("/userinfo", headers={"Authorization": "DPoP " + at,
                                                 "DPoP": key.proof("GET", ui, access_token=at)}))
        nonce = out[-1].headers["DPoP-Nonce"]
        out.append(web.get("/userinfo", headers={"Authorization": "DPoP " + at,
                                                 "DPoP": key.proof("GET", ui, access_token=at, nonce=nonce)}))
        out.append(web.get("/userinfo", headers={"Authorization": "Bearer " + at}))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, ["token, no nonce", "token, made-up nonce", "code with a nonce", "userinfo, no nonce",
                             "userinfo with the nonce", "userinfo as Bearer"])
    assert [r.status_code for r in hot] == [400, 400, 200, 401, 200, 401]


# ------------------------------------------------------------------ GET /authorize with a session


def _auth(rp: RP, **extra: str | None) -> dict[str, str]:
    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
              "scope": "openid profile", "state": "st-3", "nonce": "n-3", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)  # type: ignore[arg-type]
    return {k: v for k, v in params.items() if v is not None}


def _unsigned_request_object(rp: RP) -> str:
    enc = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    return enc({"alg": "none"}) + "." + enc({**_auth(rp), "iss": rp.client_id, "aud": ISSUER}) + "."


OTHER_PASSWORD = "another password here"  # noqa: S105 - test account


def _id_token_of_another(app: Any, idp_services: Any, rp: RP) -> str:
    """An ID token ``rp`` got for another citizen, signed in on another browser."""
    from tests.idp.oidc_helpers import make_id

    other_id = make_id("11010519800101003")
    idp_services.accounts.add(other_id, "李四", OTHER_PASSWORD, phone="+8613900000000")
    other = app.test_client()
    verifier, challenge = pkce_pair()
    resp = login(other, other.get("/authorize", query_string=_auth(rp, code_challenge=challenge)),
                 id_number=other_id, password=OTHER_PASSWORD)
    for _ in range(6):
        loc = resp.headers.get("Location", "")
        if loc.startswith(rp.redirect_uri):
            return str(redeem(other, rp, query_of(loc)["code"], verifier).get_json()["id_token"])
        if "/consent" in loc:
            page = other.get(loc)
            resp = other.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
        else:
            resp = other.get(loc)
    raise AssertionError("no code for the other citizen")


def test_authorize_with_a_session_answers_as_flask(app, web, idp_services, citizen, rp, other_rp, stacks,
                                                   authorize_reached):
    from tests.idp.test_fapi import FapiClient

    signed_in(web, rp, scope="openid profile")
    mine = redeem(web, rp, *code_for(web, rp)).get_json()["id_token"]
    theirs_rp = make_rp(idp_services, name="未同意", redirect_uri="https://new.example.cn/cb")
    fapi = FapiClient(idp_services)
    theirs = _id_token_of_another(app, idp_services, rp)
    cases: list[tuple[str, dict[str, str]]] = [
        ("silent SSO", _auth(rp)),
        ("prompt=none", _auth(rp, prompt="none")),
        ("prompt=login", _auth(rp, prompt="login")),
        ("prompt=consent", _auth(rp, prompt="consent")),
        ("prompt=select_account", _auth(rp, prompt="select_account")),
        ("prompt=none login", _auth(rp, prompt="none login")),
        ("prompt=bogus", _auth(rp, prompt="bogus")),
        # max_age=0 depends on the second the session began in: test_max_age_after_a_while
        ("max_age=-1", _auth(rp, max_age="-1")),
        ("max_age=abc", _auth(rp, max_age="abc")),
        ("max_age=99999", _auth(rp, max_age="99999")),
        ("acr above the session", _auth(rp, acr_values="urn:yiwang:acr:2fa")),
        ("acr above the session, prompt=none", _auth(rp, acr_values="urn:yiwang:acr:passkey", prompt="none")),
        ("acr unknown", _auth(rp, acr_values="urn:other:acr")),
        ("claims asking an essential acr", _auth(rp, claims=json.dumps(
            {"id_token": {"acr": {"essential": True, "values": ["urn:yiwang:acr:2fa"]}}}))),
        ("id_token_hint of this citizen", _auth(rp, id_token_hint=mine, prompt="none")),
        ("id_token_hint of someone else", _auth(rp, id_token_hint=theirs, prompt="none")),
        ("id_token_hint of someone else, no prompt", _auth(rp, id_token_hint=theirs)),
        ("id_token_hint garbage", _auth(rp, id_token_hint="a.b.c")),  # noqa: S106
        ("login_hint", _auth(rp, login_hint="someone")),
        ("request object", {"client_id": rp.client_id, "request": _unsigned_request_object(rp)}),
        ("request object beside the parameters", _auth(rp, request=_unsigned_request_object(rp))),
        ("request_uri https", _auth(rp, request_uri="https://rp.example.cn/req.jwt")),
        ("request_uri unknown urn", {"client_id": rp.client_id,
                                     "request_uri": "urn:ietf:params:oauth:request_uri:nope"}),
        ("response_mode query", _auth(rp, response_mode="query")),
        ("response_mode fragment", _auth(rp, response_mode="fragment")),
        ("response_mode form_post", _auth(rp, response_mode="form_post")),
        ("response_mode query.jwt", _auth(rp, response_mode="query.jwt")),
        ("response_mode jwt", _auth(rp, response_mode="jwt")),
        ("response_mode bogus", _auth(rp, response_mode="bogus")),
        ("response_type token", _auth(rp, response_type="token")),
        ("response_type code id_token", _auth(rp, response_type="code id_token")),
        ("no response_type", _auth(rp, response_type=None)),
        ("unregistered redirect_uri", _auth(rp, redirect_uri="https://evil.example/cb")),
        ("redirect_uri with a query", _auth(rp, redirect_uri=rp.redirect_uri + "?x=1")),
        ("redirect_uri with a fragment", _auth(rp, redirect_uri=rp.redirect_uri + "#f")),
        ("redirect_uri, upper-case host", _auth(rp, redirect_uri=rp.redirect_uri.replace("portal", "PORTAL"))),
        ("no redirect_uri", _auth(rp, redirect_uri=None)),
        ("another client's redirect_uri", _auth(rp, redirect_uri=other_rp.redirect_uri)),
        ("unknown client", _auth(rp, client_id="nobody")),
        ("no client", _auth(rp, client_id=None)),
        ("a client without consent, prompt=none", _auth(theirs_rp, prompt="none")),
        ("a client without consent", _auth(theirs_rp)),
        ("no PKCE", _auth(rp, code_challenge=None, code_challenge_method=None)),
        ("PKCE plain", _auth(rp, code_challenge="x" * 43, code_challenge_method="plain")),
        ("PKCE short", _auth(rp, code_challenge="x" * 10)),
        ("PKCE bogus method", _auth(rp, code_challenge_method="S512")),
        ("no nonce", _auth(rp, nonce=None)),
        ("no state", _auth(rp, state=None)),
        ("state with specials", _auth(rp, state="a b&c=d/é?#%+")),
        ("state non-ASCII", _auth(rp, state="状态")),
        ("scope without openid", _auth(rp, scope="profile")),
        ("scope unknown", _auth(rp, scope="openid profile admin")),
        ("scope beyond consent", _auth(rp, scope="openid profile phone")),
        ("empty scope", _auth(rp, scope="")),
        ("dpop_jkt malformed", _auth(rp, dpop_jkt="nope")),
        ("dpop_jkt well formed", _auth(rp, dpop_jkt="A" * 43)),
        ("resource", _auth(rp, resource="https://api.example.cn/")),
        ("ui_locales", _auth(rp, ui_locales="en")),
        ("lang", _auth(rp, lang="en")),
        ("an empty parameter", _auth(rp, display="")),
        ("FAPI client, plain request", {**_auth(rp), "client_id": fapi.client_id, "redirect_uri": fapi.redirect_uri}),
    ]
    raw_cases: list[tuple[str, str]] = [
        ("a repeated scope", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp).items()) + "&scope=openid"),
        ("'+' for spaces", "/authorize?" + "&".join(f"{k}={quote(v).replace('%20', '+')}" for k, v in _auth(
            rp, scope="openid profile").items())),
        ("%-encoded names", "/authorize?" + "&".join(f"{quote(k).replace('_', '%5F')}={quote(v)}"
                                                      for k, v in _auth(rp).items())),
        ("lower-case %-escapes", "/authorize?" + "&".join(f"{k}={re.sub('%[0-9A-F]{2}', lambda m: m[0].lower(), quote(v, safe=''))}"
                                                          for k, v in _auth(rp, state="é/?").items())),
        ("invalid UTF-8 in the state", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp).items())
         + "&x=%ff"),
        ("%00", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp, state="a\x00").items())),
        ("raw non-ASCII", "/authorize?" + "&".join(f"{k}={v}" for k, v in _auth(rp, state="状态").items())),
        ("'#' in the query", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp).items()) + "&x=%23"),
        ("a name without '='", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp).items()) + "&flag"),
        ("semicolons", "/authorize?" + ";".join(f"{k}={quote(v)}" for k, v in _auth(rp).items())),
        ("a value of 2049", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(
            rp, login_hint="x" * 2049).items())),
    ]
    labels = [c[0] for c in cases] + [c[0] for c in raw_cases]

    from idp.web.common import LANG_COOKIE

    def get(*a: Any, **kw: Any) -> Any:
        resp = web.get(*a, **kw)
        web.delete_cookie(LANG_COOKIE)  # the lang case's cookie would change the later pages' language
        return resp

    def scenario(mode: str) -> list[Any]:
        out = [get("/authorize", query_string=params) for _, params in cases]
        out += [get(path) for _, path in raw_cases]
        # the same request with a body: Flask's
        out.append(raw(web, "GET", "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp).items()),
                       b"x=1"))
        return out

    labels.append("with a body")
    authorize_reached.clear()
    hot, flask = stacks.both(scenario)
    if DUMP:
        for label, h in zip(labels, hot, strict=True):
            print(f"{label:45} {h.status} {h.headers.get('Location', '')[:150]}")
    assert_same(hot, flask, labels)
    assert hot[0].status_code == 302 and "code" in query_of(hot[0].headers["Location"])
    assert query_of(hot[0].headers["Location"])["iss"] == ISSUER
    # the hot layer answered the plain silent sign-ins itself (the flask run reached the view every time)
    assert len(authorize_reached) < 2 * len(labels)


def test_max_age_after_a_while_answers_as_flask(app, web, citizen, rp, stacks):
    signed_in(web, rp, scope="openid profile")
    tokens = app.extensions["yiwang"].provider.tokens
    real = tokens._clock
    tokens._clock = lambda: real() + 10  # the session is 10 s old
    try:
        def scenario(mode: str) -> list[Any]:
            return [web.get("/authorize", query_string=_auth(rp, **extra)) for extra in (
                {"max_age": "0"}, {"max_age": "0", "prompt": "none"}, {"max_age": "5"}, {"max_age": "60"})]

        hot, flask = stacks.both(scenario)
    finally:
        tokens._clock = real
    assert_same(hot, flask, ["max_age=0", "max_age=0, prompt=none", "max_age=5", "max_age=60"])
    assert hot[0].status_code == 200 and query_of(hot[1].headers["Location"])["error"] == "login_required"
    assert "code" in query_of(hot[3].headers["Location"])


@pytest.mark.parametrize("require_par", [False, True])
def test_pushed_requests_answer_as_flask(app_with, citizen, rp, other_rp, require_par):
    app = app_with(require_par=require_par)
    web, stacks = app.test_client(), Stacks(app)
    _, challenge = pkce_pair()
    if require_par:  # the sign-in itself through PAR
        uri = web.post("/par", data=_auth(rp, code_challenge=challenge, scope="openid profile offline_access"),
                       headers=rp.basic()).get_json()["request_uri"]
        authorize_code(web, rp, extra={"request_uri": uri})
    else:
        signed_in(web, rp)
    labels = ["pushed", "the same request_uri again", "pushed, another client_id", "pushed, no client_id",
              "pushed, plus parameters", "plain request", "unknown urn"]

    def scenario(mode: str) -> list[Any]:
        out = []
        uri = web.post("/par", data=_auth(rp), headers=rp.basic()).get_json()["request_uri"]
        out.append(web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": uri}))
        out.append(web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": uri}))
        uri = web.post("/par", data=_auth(rp), headers=rp.basic()).get_json()["request_uri"]
        out.append(web.get("/authorize", query_string={"client_id": other_rp.client_id, "request_uri": uri}))
        uri = web.post("/par", data=_auth(rp), headers=rp.basic()).get_json()["request_uri"]
        out.append(web.get("/authorize", query_string={"request_uri": uri}))
        uri = web.post("/par", data=_auth(rp), headers=rp.basic()).get_json()["request_uri"]
        out.append(web.get("/authorize", query_string={"client_id": rp.client_id, "request_uri": uri,
                                                       "redirect_uri": "https://evil.example/cb", "state": "mine"}))
        out.append(web.get("/authorize", query_string=_auth(rp)))
        out.append(web.get("/authorize", query_string={"client_id": rp.client_id,
                                                       "request_uri": "urn:ietf:params:oauth:request_uri:x"}))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert hot[0].status_code == 302 and "code" in query_of(hot[0].headers["Location"])
    assert hot[1].status_code == 400 and hot[2].status_code == 400


def _signed_in_client(app: Any, rp: RP) -> Any:
    client = app.test_client()
    signed_in(client, rp, scope="openid profile")
    return client


def test_an_ended_session_or_a_disabled_account_answers_as_flask(app, idp_services, citizen, rp, stacks):
    from idp.web.common import SESSION_COOKIE

    runtime = app.extensions["yiwang"]

    def scenario(mode: str) -> list[Any]:
        out = []
        client = _signed_in_client(app, rp)
        cookie = client.get_cookie(SESSION_COOKIE).value
        session = runtime.sessions.get_by_cookie(cookie, touch=False)
        runtime.sessions.end(session.sid, "logout")
        out.append(client.get("/authorize", query_string=_auth(rp)))
        out.append(client.get("/authorize", query_string=_auth(rp, prompt="none")))
        client = _signed_in_client(app, rp)
        idp_services.accounts.set_disabled(ID_NUMBER, True)
        try:
            out.append(client.get("/authorize", query_string=_auth(rp)))
            out.append(client.get("/authorize", query_string=_auth(rp, prompt="none")))
        finally:
            idp_services.accounts.set_disabled(ID_NUMBER, False)
        # a cookie of nothing: a made-up value
        client.set_cookie(SESSION_COOKIE, "x" * 43)
        out.append(client.get("/authorize", query_string=_auth(rp, prompt="none")))
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, ["ended", "ended, prompt=none", "disabled", "disabled, prompt=none", "made-up cookie"])
    for r in hot:
        assert "code=" not in r.headers.get("Location", ""), r.headers.get("Location")


def test_two_session_cookies_answer_as_flask(app, web, citizen, rp, stacks):
    """Cookie tossing: a second cookie of the same name (the first one counts on both paths)."""
    from idp.web.common import SESSION_COOKIE

    signed_in(web, rp, scope="openid profile")
    good = web.get_cookie(SESSION_COOKIE).value
    path = "/authorize?" + "&".join(f"{k}={quote(v)}" for k, v in _auth(rp, prompt="none").items())

    def scenario(mode: str) -> list[Any]:
        return [raw(web, "GET", path, None, content_type=None, headers={"Cookie": f"{SESSION_COOKIE}={a}; {SESSION_COOKIE}={b}"})
                for a, b in ((good, "x.y"), ("x.y", good), (good + "x", good))]

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, ["good first", "good last", "tampered first"])


# ------------------------------------------------------------------ races the records leave open (both paths)
# Not differences between the two paths: windows in the grant itself, shown deterministically by running
# what the concurrent request does at the worst moment (just before the new records are inserted).
# Recorded in /work/notes/perf-review.md; strict xfail so that a fix shows up here.


@pytest.mark.xfail(strict=True, reason="a replay between the first redemption's consume and its INSERT "
                   "revokes nothing; the first redemption's tokens stay live (RFC 6749 §4.1.2 'should revoke')")
def test_a_replay_racing_the_first_redemption_revokes_its_tokens(app, web, citizen, rp):
    provider = app.extensions["yiwang"].provider
    store = provider.tokens.store
    signed_in(web, rp)
    code, verifier = code_for(web, rp)
    real_add = store.add

    def add_after_a_replay(rows: Any, **kw: Any) -> Any:
        # What the replaying request does (AuthorizationCodeGrant.query_authorization_code), now.
        assert provider.codes.consume(code).status == "replayed"
        provider.tokens.revoke(code_hash=provider.codes.hash_of(code))
        return real_add(rows, **kw)

    store.add = add_after_a_replay
    try:
        first = redeem(web, rp, code, verifier)
    finally:
        store.add = real_add
    assert first.status_code == 200
    at = first.get_json()["access_token"]
    assert web.post("/introspect", data={"token": at}, headers=rp.basic()).get_json() == {"active": False}


@pytest.mark.xfail(strict=True, reason="a sign-out between the refresh grant's session check and its INSERT "
                   "revokes the old records only; the new access token stays live until it expires")
def test_a_sign_out_racing_a_refresh_revokes_its_tokens(app, web, citizen, rp):
    from idp.web.common import SESSION_COOKIE

    runtime = app.extensions["yiwang"]
    store = runtime.provider.tokens.store
    signed_in(web, rp)
    rt = _tokens(web, rp)["refresh_token"]
    sid = runtime.sessions.get_by_cookie(web.get_cookie(SESSION_COOKIE).value, touch=False).sid
    real_add = store.add

    def add_after_sign_out(rows: Any, **kw: Any) -> Any:
        runtime.sessions.end(sid, "logout")  # its hooks revoke the session's tokens
        return real_add(rows, **kw)

    store.add = add_after_sign_out
    try:
        resp = web.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=rp.basic())
    finally:
        store.add = real_add
    assert resp.status_code == 200
    at = resp.get_json()["access_token"]
    assert web.get("/userinfo", headers={"Authorization": "Bearer " + at}).status_code == 401


# ------------------------------------------------------------------ RFC 8705 through the forwarded certificate


def test_certificate_bound_clients_and_tokens_answer_as_flask(mtls_app, pkit, agency_a, citizen):  # noqa: F811
    from cryptography.hazmat.primitives import serialization

    from tests.support.tls_proxy import PROXY_SOURCE

    web, stacks = mtls_app.test_client(), Stacks(mtls_app)

    def cert(name: str) -> dict[str, str]:
        return {"X-Client-Cert": quote(pkit[name].cert.public_bytes(serialization.Encoding.PEM).decode(), safe="")}

    proxy, direct = {"REMOTE_ADDR": PROXY_SOURCE}, {"REMOTE_ADDR": "127.0.0.1"}
    cc = {"grant_type": "client_credentials", "client_id": agency_a.client_id}
    signed_in(web, RP(agency_a.client_id, None, agency_a.redirect_uri))
    labels = ["cc, its certificate", "cc, from a caller that is not the proxy", "cc, another agency's",
              "cc, none", "code, its certificate", "userinfo, its certificate", "userinfo, another certificate",
              "userinfo, none", "userinfo, forged by a direct caller", "introspect, its certificate",
              "introspect, the secret-less client without a certificate"]

    def scenario(mode: str) -> list[Any]:
        out = [web.post("/token", data=cc, headers=cert("a"), environ_base=proxy),
               web.post("/token", data=cc, headers=cert("a"), environ_base=direct),
               web.post("/token", data=cc, headers=cert("b"), environ_base=proxy),
               web.post("/token", data=cc, environ_base=proxy)]
        q, verifier = authorize_code(web, RP(agency_a.client_id, None, agency_a.redirect_uri),
                                     scope="openid profile")
        ok = web.post("/token", data={"grant_type": "authorization_code", "code": q["code"], "code_verifier": verifier,
                                      "redirect_uri": agency_a.redirect_uri, "client_id": agency_a.client_id},
                      headers=cert("a"), environ_base=proxy)
        out.append(ok)
        auth = {"Authorization": "Bearer " + ok.get_json()["access_token"]}
        out += [web.get("/userinfo", headers={**auth, **cert("a")}, environ_base=proxy),
                web.get("/userinfo", headers={**auth, **cert("b")}, environ_base=proxy),
                web.get("/userinfo", headers=auth, environ_base=proxy),
                web.get("/userinfo", headers={**auth, **cert("a")}, environ_base=direct)]
        token = {"token": ok.get_json()["access_token"], "client_id": agency_a.client_id}
        out += [web.post("/introspect", data=token, headers=cert("a"), environ_base=proxy),
                web.post("/introspect", data=token, environ_base=proxy)]
        return out

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert [r.status_code for r in hot] == [200, 401, 401, 401, 200, 200, 401, 401, 401, 200, 401]


def test_private_key_jwt_answers_as_flask(web, idp_services, rp, stacks):
    from tests.idp.test_fapi import FapiClient

    client = FapiClient(idp_services, profile=None)
    labels = ["assertion", "the same assertion again", "audience the token endpoint", "audience another server",
              "assertion and Basic", "assertion and client_secret", "client_id of another client"]

    def scenario(mode: str) -> list[Any]:
        cc = {"grant_type": "client_credentials", "client_id": client.client_id}
        first = client.assertion()
        return [web.post("/token", data={**cc, **first}),
                web.post("/token", data={**cc, **first}),
                web.post("/token", data={**cc, **client.assertion(aud=f"{ISSUER}/token")}),
                web.post("/token", data={**cc, **client.assertion(aud="https://elsewhere.example")}),
                web.post("/token", data={**cc, **client.assertion()}, headers=rp.basic()),
                web.post("/token", data={**cc, **client.assertion(), "client_secret": "x"}),
                web.post("/token", data={**cc, **client.assertion(), "client_id": rp.client_id})]

    hot, flask = stacks.both(scenario)
    assert_same(hot, flask, labels)
    assert hot[0].status_code == 200 and hot[1].get_json()["error"] == "invalid_client"  # a replayed assertion


def test_discovery_and_cors_answer_as_flask(web, rp, stacks):
    paths = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
    origin = {"Origin": "https://spa.example.cn"}

    def scenario(mode: str) -> list[Any]:
        out = []
        for path in paths:
            first = web.get(path)
            out += [first, web.get(path), web.head(path), web.get(path + "?x=1"),
                    web.get(path, headers={"If-None-Match": first.headers.get("ETag", "")}),
                    web.get(path, headers=origin)]
        out += [web.post("/token", data={"grant_type": "client_credentials"}, headers={**rp.basic(), **origin}),
                web.get("/userinfo", headers={"Authorization": "Bearer x", **origin}),
                web.options("/token", headers={**origin, "Access-Control-Request-Method": "POST"})]
        return out

    hot, flask = stacks.both(scenario)
    labels = [f"{p} {k}" for p in paths for k in ("first", "again", "HEAD", "query", "If-None-Match", "Origin")]
    assert_same(hot, flask, [*labels, "token with Origin", "userinfo with Origin", "preflight"])
