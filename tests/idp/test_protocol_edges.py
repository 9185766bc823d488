"""The idp's protocol edges: malformed client credentials, redirect matching, revocation,
client assertions, unsupported authorization parameters, error pages, logout URIs.

Issue 11 findings 5, 8, 10, 11 and issue 19 findings 5, 6, 7, 10.
"""

from __future__ import annotations

import base64
import logging
import re
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ISSUER, make_rp, pkce_pair, query_of

# ------------------------------------------------------------ fixtures / helpers


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records of errors logged as unexpected (a traceback in the log)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


_ENDPOINTS = [
    ("/token", {"grant_type": "client_credentials"}),
    ("/introspect", {"token": "x"}),
    ("/revoke", {"token": "x"}),
    ("/par", {"response_type": "code", "redirect_uri": "https://portal.example.cn/cb"}),
    ("/device_authorization", {"scope": "openid"}),
    ("/device/authorize", {"scope": "openid"}),
]

_MALFORMED = {
    "not-utf8": "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "not-utf8-id": "Basic " + base64.b64encode(b"client\xc3:secret").decode(),
    "bad-base64": "Basic !!!not base64!!!",
    "bad-padding": "Basic YWJj",
    "no-colon": "Basic " + base64.b64encode(b"justaclientid").decode(),
    "empty-secret": "Basic " + base64.b64encode(b"client:").decode(),
    "bad-percent": "Basic " + base64.b64encode(b"%ff%fe:x").decode(),
    "non-ascii-header": "Basic \u00e9\u00e9\u00e9\u00e9",
    "huge": "Basic " + "A" * 6000,
}


# ------------------------------------------------ 11.5: malformed Basic credentials


@pytest.mark.parametrize("hot", [True, False], ids=["hot-path", "flask"])
@pytest.mark.parametrize("path,data", _ENDPOINTS, ids=[p for p, _ in _ENDPOINTS])
@pytest.mark.parametrize("kind", list(_MALFORMED))
def test_malformed_basic_credentials_are_invalid_client(web, rp, caplog, hot, path, data, kind):
    # A query string sends even the hot endpoints through Flask.
    resp = web.post(path, data=data, headers={"Authorization": _MALFORMED[kind]},
                    query_string=None if hot else "x=1")
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert "Traceback" not in resp.get_data(as_text=True)
    assert _unhandled(caplog) == []


@pytest.mark.parametrize("hot", [True, False], ids=["hot-path", "flask"])
@pytest.mark.parametrize("path,data", _ENDPOINTS, ids=[p for p, _ in _ENDPOINTS])
def test_a_nul_in_a_form_client_id_is_a_4xx(web, caplog, hot, path, data):
    # PostgreSQL refuses U+0000 in a text value; it must never get that far.
    resp = web.post(path, data={**data, "client_id": "a\x00b", "client_secret": "x"},
                    query_string=None if hot else "x=1")
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.get_json()["error"] in ("invalid_client", "invalid_request")
    assert _unhandled(caplog) == []


@pytest.mark.parametrize("url", ["/authorize?client_id=a%00b&response_type=code", "/consents/a%00b/revoke",
                                 "/device?user_code=a%00b"])
def test_a_nul_in_a_path_or_query_is_a_4xx(web, caplog, url):
    resp = web.post(url) if "revoke" in url else web.get(url)
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)[:300]
    assert _unhandled(caplog) == []


@pytest.mark.parametrize("hot", [True, False], ids=["hot-path", "flask"])
def test_basic_credentials_are_form_urlencoded(web, idp_services, hot):
    # RFC 6749 §2.3.1: client id and secret are form-urlencoded, then put in Basic.
    rp = make_rp(idp_services, client_id="agency.a~b")

    def encoded(text: str) -> str:  # every octet percent-encoded, as a strict encoder may do
        return "".join(f"%{b:02X}" for b in text.encode())

    raw = f"{encoded(rp.client_id)}:{encoded(rp.secret)}".encode()
    resp = web.post("/token", data={"grant_type": "client_credentials"},
                    headers=_basic(raw), query_string=None if hot else "x=1")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    wrong = web.post("/token", data={"grant_type": "client_credentials"},
                     headers=_basic(f"{rp.client_id}:{rp.secret}x".encode()))
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"


def test_unknown_client_and_wrong_secret_answer_alike(web, rp):
    unknown = web.post("/token", data={"grant_type": "client_credentials"}, headers=_basic(b"nobody:secret"))
    wrong = web.post("/token", data={"grant_type": "client_credentials"},
                     headers=_basic(f"{rp.client_id}:wrong".encode()))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()


# ------------------------------------------- 11.10: revoking another client's token


def _cc_token(web, rp) -> str:
    resp = web.post("/token", data={"grant_type": "client_credentials"}, headers=rp.basic())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["access_token"]


def _active(web, rp, token: str) -> bool:
    resp = web.post("/introspect", data={"token": token}, headers=rp.basic())
    assert resp.status_code == 200
    return bool(resp.get_json()["active"])


def test_revoking_another_clients_access_token_is_a_silent_no_op(web, idp_services):
    owner, other = make_rp(idp_services, name="A"), make_rp(idp_services, name="B")
    token = _cc_token(web, owner)
    for hint in (None, "access_token"):
        data = {"token": token, **({"token_type_hint": hint} if hint else {})}
        resp = web.post("/revoke", data=data, headers=other.basic())
        # RFC 7009 §2.2: the same answer as for an unknown token, which says nothing.
        unknown = web.post("/revoke", data={**data, "token": "not-a-token"}, headers=other.basic())
        assert resp.status_code == unknown.status_code == 200
        assert resp.get_data() == unknown.get_data()
    assert _active(web, owner, token)  # and the token was left alone
    assert web.post("/revoke", data={"token": token}, headers=owner.basic()).status_code == 200
    assert not _active(web, owner, token)


def test_revoking_another_clients_refresh_token_is_a_silent_no_op(web, idp_services, citizen):
    from tests.idp.oidc_helpers import authorize_code, exchange

    owner, other = make_rp(idp_services, name="A"), make_rp(idp_services, name="B")
    q, verifier = authorize_code(web, owner, scope="openid offline_access")
    tokens = exchange(web, owner, q["code"], verifier).get_json()
    refresh = tokens["refresh_token"]
    resp = web.post("/revoke", data={"token": refresh, "token_type_hint": "refresh_token"}, headers=other.basic())
    assert resp.status_code == 200 and resp.get_json() == {}
    assert _active(web, owner, refresh) and _active(web, owner, tokens["access_token"])


# ------------------------------- 11.8: loopback port wildcard for native apps only


def test_loopback_redirect_port_is_exact_for_a_confidential_client(idp_services):
    rp = make_rp(idp_services, redirect_uri="http://127.0.0.1:5201/callback")
    client = idp_services.clients.get(rp.client_id)
    assert client.check_redirect_uri("http://127.0.0.1:5201/callback")
    for other in ("http://127.0.0.1:9999/callback", "http://127.0.0.1/callback"):
        assert not client.check_redirect_uri(other)


def test_loopback_redirect_port_may_vary_for_a_native_app(idp_services):
    rp = make_rp(idp_services, name="App", public=True, grant_types=("authorization_code",),
                 redirect_uri="http://127.0.0.1/callback")
    client = idp_services.clients.get(rp.client_id)
    assert client.check_redirect_uri("http://127.0.0.1:53011/callback")  # RFC 8252 §7.3
    assert not client.check_redirect_uri("http://127.0.0.1:53011/other")
    assert not client.check_redirect_uri("http://localhost:53011/callback")


def test_authorize_refuses_another_loopback_port_for_a_web_client(web, idp_services):
    rp = make_rp(idp_services, redirect_uri="http://127.0.0.1:5201/callback")
    _v, challenge = pkce_pair()
    resp = web.get("/authorize", query_string={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": "http://127.0.0.1:9999/callback",
        "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert resp.status_code == 400 and "Location" not in resp.headers


# ----------------------------------------------------------- /authorize: helpers


def _auth_params(rp, **kw):
    _v, challenge = pkce_pair()
    p = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
         "scope": "openid profile", "state": "st", "code_challenge": challenge, "code_challenge_method": "S256"}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def _page_text(resp) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


# ----------------------------- 19.6: non-ASCII authorization parameters are a 400 page


@pytest.mark.parametrize("field,value", [
    ("response_type", "cöde"),
    ("redirect_uri", "https://evil.example/ü"),
    ("redirect_uri", "https://portal.example.cn/cb\u202e"),
    ("scope", "openid 档案"),
    ("client_id", "客户端"),
    ("response_mode", "quéry"),
    ("code_challenge_method", "S256\u00a0"),
])
def test_non_ascii_authorization_parameter_is_a_400_page(web, rp, caplog, field, value):
    resp = web.get("/authorize", query_string=_auth_params(rp, **{field: value}))
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert resp.mimetype == "text/html"
    assert value not in resp.get_data(as_text=True)
    assert _unhandled(caplog) == []


# --------------------------------- 19.10: the error page shows fixed, translated texts

_SPOOF = "https://evil.example/Call_+86-400-000-0000_to_unlock_your_account"


@pytest.mark.parametrize("lang,expected", [
    ("zh-CN", "此登录请求要求返回一个未登记的地址"),
    ("en", "asks to return to an address that is not registered"),
])
def test_unregistered_redirect_uri_page_is_fixed_text(web, rp, caplog, lang, expected):
    caplog.set_level(logging.INFO, logger="idp.web.responses")
    resp = web.get("/authorize", query_string={**_auth_params(rp, redirect_uri=_SPOOF), "lang": lang})
    assert resp.status_code == 400 and "Location" not in resp.headers
    text = _page_text(resp)  # what the citizen reads (the language link's href keeps the query)
    assert expected in text
    assert "evil.example" not in text and "Call_" not in text and "not supported by client" not in text
    assert any("evil.example" in r.getMessage() for r in caplog.records)  # the detail is in the log


@pytest.mark.parametrize("lang,expected", [
    ("zh-CN", "发起登录的应用未在本平台登记"),
    ("en", "is not registered with us"),
])
def test_unknown_client_page_is_fixed_text(web, rp, lang, expected):
    resp = web.get("/authorize", query_string={**_auth_params(rp, client_id="Call-400-000-0000-now"), "lang": lang})
    assert resp.status_code == 400
    text = _page_text(resp)
    assert expected in text
    assert "Call-400" not in text and "does not exist" not in text


def test_error_page_detail_is_never_rendered(web, rp):
    # Any refusal without a usable redirect URI: a duplicated parameter, a stale request_uri.
    for query in (f"client_id={rp.client_id}&client_id=x_Call_4000000000", "request_uri=urn:ietf:params:oauth:request_uri:Call_4000000000"):
        resp = web.get("/authorize?" + query)
        assert resp.status_code == 400
        assert "Call_4000000000" not in _page_text(resp)
        assert 'class="detail"' not in resp.get_data(as_text=True)


# ----------------------------- 19.5: the language link never leads to another host


@pytest.mark.parametrize("path", [
    "/%5Cevil.example/login", "/%5C%5Cevil.example/", "//evil.example/login", "/%2F%2Fevil.example/x",
    "/%09/evil.example", "/%5C%09evil.example", "/\\evil.example/login",
])
def test_language_link_on_error_page_stays_on_the_idp(web, path):
    resp = web.get(path)
    body = resp.get_data(as_text=True)
    links = re.findall(r'class="lang" href="([^"]*)"', body)
    assert links, body[:500]
    for href in links:
        href = unescape(href)
        assert href.startswith("/") and href[1:2] not in ("/", "\\")
        assert "evil.example" not in href
        assert all(c.isprintable() for c in href)
        # As a browser resolves it (WHATWG URL: a backslash is a slash in http URLs).
        assert urlsplit(urljoin(ISSUER + "/", href.replace("\\", "/"))).netloc == urlsplit(ISSUER).netloc


def test_language_link_keeps_the_page_and_its_query(web, rp):
    resp = web.get("/authorize", query_string=_auth_params(rp, redirect_uri="https://other.example/cb"))
    assert resp.status_code == 400
    href = unescape(re.findall(r'class="lang" href="([^"]*)"', resp.get_data(as_text=True))[0])
    assert urlsplit(href).path == "/authorize"
    assert query_of(href)["client_id"] == rp.client_id and query_of(href)["lang"] == "en"


# ------------------- 11.11: request, request_uri, response_mode are refused, not ignored


def _refused_with(resp, rp, error: str) -> dict[str, str]:
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    loc = resp.headers["Location"]
    assert loc.startswith(rp.redirect_uri)
    q = query_of(loc)
    assert q["error"] == error and q["state"] == "st" and q["iss"] == ISSUER and "code" not in q
    return q


def test_request_object_is_refused(web, rp, citizen):
    resp = web.get("/authorize", query_string=_auth_params(rp, request="eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."))
    _refused_with(resp, rp, "request_not_supported")  # OIDC Core §6.1


def test_request_uri_outside_par_is_refused(web, rp):
    resp = web.get("/authorize", query_string=_auth_params(rp, request_uri="https://rp.example/request.jwt"))
    _refused_with(resp, rp, "request_uri_not_supported")  # OIDC Core §6.2


@pytest.mark.parametrize("mode", ["fragment", "form_post", "query.jwt", "web_message"])
def test_unsupported_response_mode_is_refused(web, rp, mode):
    resp = web.get("/authorize", query_string=_auth_params(rp, response_mode=mode))
    _refused_with(resp, rp, "invalid_request")


def test_response_mode_query_is_honoured(web, rp):
    resp = web.get("/authorize", query_string=_auth_params(rp, response_mode="query"))
    assert resp.status_code == 200 and "Location" not in resp.headers  # the login form


def test_par_refuses_a_request_object_and_an_unsupported_response_mode(web, rp):
    base = {k: v for k, v in _auth_params(rp).items() if k != "client_id"}
    for extra in ({"request": "eyJhbGciOiJub25lIn0.e30."}, {"response_mode": "form_post"}):
        resp = web.post("/par", data={**base, **extra}, headers=rp.basic())
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert web.post("/par", data=base, headers=rp.basic()).status_code == 201


def test_discovery_tells_what_is_supported(web):
    doc = web.get("/.well-known/openid-configuration").get_json()
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert doc["claims_parameter_supported"] is False
    assert doc["response_modes_supported"] == ["query"]


# ------------------------ 11.11: private_key_jwt assertions are short-lived and capped

_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def pk_client(idp_services):
    from joserfc import jwk

    key = jwk.ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"}, private=True)
    pub = key.as_dict(private=False)
    pub.update(alg="ES256", use="sig")
    rp = make_rp(idp_services, name="PKJWT", auth_method="private_key_jwt", jwks={"keys": [pub]})
    return rp, key


def _assertion_token(web, pk_client, **claims):
    import time
    import uuid

    from joserfc import jwt

    rp, key = pk_client
    now = int(time.time())
    body = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER + "/token", "jti": uuid.uuid4().hex,
            "iat": now, "exp": now + 60}
    body.update({k: (now + v if isinstance(v, int) and k in ("exp", "iat") else v) for k, v in claims.items()})
    body = {k: v for k, v in body.items() if v is not None}
    assertion = jwt.encode({"alg": "ES256", "kid": "rp-key-1"}, body, key)
    return web.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": _JWT_BEARER,
                                    "client_assertion": assertion})


@pytest.mark.parametrize("claims", [
    {"exp": 48 * 3600},                 # outlives the replay cache
    {"exp": 400 * 24 * 3600},
    {"exp": 3600, "iat": None},         # an hour ahead, no iat
    {"exp": None},                      # no exp at all
    {"exp": "soon"},
    {"iat": 3600, "exp": 3660},         # issued in the future
    {"iat": -600, "exp": 200},          # lives 800 s in all
], ids=["48h", "400d", "1h-no-iat", "no-exp", "exp-not-a-number", "iat-future", "lifetime-800s"])
def test_long_lived_client_assertion_is_refused(web, pk_client, claims):
    resp = _assertion_token(web, pk_client, **claims)
    assert resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client", resp.get_data(as_text=True)


@pytest.mark.parametrize("claims", [{}, {"exp": 300}, {"exp": 300, "iat": None}, {"iat": 10, "exp": 290}])
def test_short_lived_client_assertion_is_accepted(web, pk_client, claims):
    resp = _assertion_token(web, pk_client, **claims)
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_client_assertion_jti_is_remembered_while_it_is_valid(web, idp_services, pk_client):
    import time
    import uuid

    from joserfc import jwt

    rp, key = pk_client
    now = int(time.time())
    jti = uuid.uuid4().hex
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER + "/token", "jti": jti, "exp": now + 300}
    data = {"grant_type": "client_credentials", "client_assertion_type": _JWT_BEARER,
            "client_assertion": jwt.encode({"alg": "ES256", "kid": "rp-key-1"}, claims, key)}
    assert web.post("/token", data=data).status_code == 200
    assert web.post("/token", data=data).get_json()["error"] == "invalid_client"
    keys = [k for k in idp_services.redis.scan_iter(match=f"*jti:{rp.client_id}:{jti}")]
    assert len(keys) == 1
    assert idp_services.redis.ttl(keys[0]) >= 300  # at least the assertion's remaining life


# ---------------------- 19.7: logout URIs never point the idp at internal services

_INTERNAL = [
    "http://127.0.0.1:9/backchannel-logout",
    "https://127.0.0.1/backchannel-logout",
    "https://127.1/backchannel-logout",             # resolves to 127.0.0.1
    "https://2130706433/backchannel-logout",        # ditto, as one decimal number
    "https://localhost:8443/bc",
    "https://[::1]/bc",
    "https://[::ffff:127.0.0.1]/bc",
    "https://10.0.0.5/bc",
    "https://192.168.1.1/bc",
    "https://172.16.0.1/bc",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/bc",
    "https://[fd00::1]/bc",
    "https://0.0.0.0/bc",
    "https://224.0.0.1/bc",
    "https://100.64.0.1/bc",
    "http://portal.example.cn/bc",                  # plain http to a real host
    "https://user:pw@portal.example.cn/bc",
]


def _portal_spec(**kw):
    from idp.clients import ClientSpec

    return ClientSpec(name="Portal", redirect_uris=["https://portal.example.cn/cb"], **kw)


@pytest.mark.parametrize("uri", _INTERNAL)
def test_internal_backchannel_logout_uri_is_refused(idp_services, uri):
    from idp.errors import InvalidInput

    with pytest.raises(InvalidInput, match="back-channel logout URI"):
        idp_services.clients.add(_portal_spec(backchannel_logout_uri=uri))


@pytest.mark.parametrize("uri", ["https://127.0.0.1/fc", "https://10.0.0.5/fc", "http://127.0.0.1:5201/fc"])
def test_internal_frontchannel_logout_uri_is_refused(idp_services, uri):
    from idp.clients import ClientSpec
    from idp.errors import InvalidInput

    origin = uri.rsplit("/", 1)[0]
    with pytest.raises(InvalidInput, match="front-channel logout URI"):
        idp_services.clients.add(ClientSpec(name="P", redirect_uris=[origin + "/cb"], frontchannel_logout_uri=uri))


def test_a_name_resolving_to_an_internal_address_is_refused(idp_services):
    from idp.clients import ClientService
    from idp.errors import InvalidInput

    resolved = {"internal.example.cn": ["93.184.215.14", "10.1.2.3"], "portal.example.cn": ["93.184.215.15"]}
    service = ClientService(idp_services.db, resolve=lambda host: resolved.get(host, []))
    with pytest.raises(InvalidInput, match="resolves to 10.1.2.3"):
        service.add(_portal_spec(backchannel_logout_uri="https://internal.example.cn/bc"))
    client, _secret = service.add(_portal_spec(backchannel_logout_uri="https://portal.example.cn/bc"))
    assert client.backchannel_logout_uri == "https://portal.example.cn/bc"


def test_public_https_logout_uris_are_accepted(idp_services):
    client, _secret = idp_services.clients.add(_portal_spec(
        backchannel_logout_uri="https://portal.example.cn/bc", frontchannel_logout_uri="https://portal.example.cn/fc"))
    assert client.backchannel_logout_uri == "https://portal.example.cn/bc"


def test_loopback_logout_uri_only_with_the_demo_setting(idp_services):
    from idp.clients import ClientService, ClientSpec
    from idp.errors import InvalidInput

    demo = ClientService(idp_services.db, allow_loopback_callbacks=True)
    client, _secret = demo.add(ClientSpec(
        name="Demo portal", redirect_uris=["http://127.0.0.1:5201/callback"],
        backchannel_logout_uri="http://127.0.0.1:5201/backchannel-logout"))
    assert client.backchannel_logout_uri == "http://127.0.0.1:5201/backchannel-logout"
    for uri in ("https://10.0.0.5/bc", "https://169.254.169.254/bc", "http://192.168.1.1/bc"):
        with pytest.raises(InvalidInput):  # loopback only, never the private network
            demo.add(_portal_spec(backchannel_logout_uri=uri))


@pytest.mark.parametrize("issuer,explicit,allowed", [
    ("http://127.0.0.1:5000", None, True),       # the embedded demo
    ("http://localhost:5000", None, True),
    ("https://idp.gov.cn", None, False),
    ("https://idp.gov.cn", "true", True),
    ("http://127.0.0.1:5000", "false", False),
])
def test_loopback_callbacks_setting(yiwang_env, issuer, explicit, allowed):
    from idp.settings import IdpSettings

    env = dict(yiwang_env, YIWANG_ISSUER=issuer)
    if explicit is not None:
        env["YIWANG_IDP_ALLOW_LOOPBACK_CALLBACKS"] = explicit
    assert IdpSettings.from_env(env).loopback_callbacks_allowed is allowed


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("path", ["/%5Cevil.example/login", "/%5C%5Cevil.example/x", "/%2F%2Fevil.example/x"])
def test_language_link_click_stays_on_the_idp_in_chromium(app, path):
    import threading
    from pathlib import Path

    from werkzeug.serving import make_server

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    server = make_server("127.0.0.1", 0, app, threaded=True)
    here = f"127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    requested: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()

                def watch(route):
                    requested.append(route.request.url)
                    if urlsplit(route.request.url).netloc == here:
                        route.continue_()
                    else:
                        route.abort()

                page.route("**/*", watch)
                page.goto(f"http://{here}{path}")
                with page.expect_request(lambda r: True, timeout=10_000):
                    page.click("a.lang")
                page.wait_for_load_state()
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert len(requested) >= 2  # the page and the click
    assert all(urlsplit(u).netloc == here for u in requested), requested


def test_claims_parameter_is_ignored_as_discovery_says(web, rp, citizen):
    import json as _json

    from tests.idp.oidc_helpers import authorize_code, exchange

    wanted = {"id_token": {"id_number": {"essential": True}, "phone_number": None},
              "userinfo": {"id_number": {"essential": True}}}
    q, verifier = authorize_code(web, rp, scope="openid", extra={"claims": _json.dumps(wanted)})
    body = exchange(web, rp, q["code"], verifier).get_json()
    payload = body["id_token"].split(".")[1]
    claims = _json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "id_number" not in claims and "phone_number" not in claims  # OIDC Core §5.5: not supported
    info = web.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    assert "id_number" not in info and set(info) == {"sub"}
