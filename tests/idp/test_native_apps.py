"""Native apps (issue 21 §2, RFC 8252): loopback and private-use scheme redirects, PKCE, the system browser.

A Python script plays the app: it listens on an ephemeral loopback port
(RFC 8252 §7.3), makes a PKCE pair and opens the authorization URL in the
"system browser" (Chromium through Playwright), which signs in and lands on
the app's listener; the app exchanges the code. A private-use scheme
(``cn.gov.example.app:/cb``, §7.1) is a redirect target only for the client
that registered it, and only as the reverse of a domain the client
registers.
"""

from __future__ import annotations

import contextlib
import http.server
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from idp.clients import ClientSpec
from idp.errors import InvalidInput
from tests.idp.oidc_helpers import *  # noqa: F403 - the idp_services fixture
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, pkce_pair
from tests.idp.test_e2e_browser import _idp, serving
from tests.support.browser import chromium, local_server, prepared_idp, sign_in

SCHEME_URI = "cn.gov.example.app:/cb"


# ------------------------------------------------------------- registration rules


def _add(services, *redirects: str, **kw):
    return services.clients.add(ClientSpec(name="App", public=True, redirect_uris=list(redirects), **kw))[0]


def test_a_private_scheme_must_reverse_a_domain_the_client_registers(idp_services) -> None:
    app = _add(idp_services, SCHEME_URI, sector_identifier="example.gov.cn")
    assert app.check_redirect_uri(SCHEME_URI)
    _add(idp_services, "cn.gov.example:/cb", sector_identifier="example.gov.cn")  # the domain itself
    _add(idp_services, SCHEME_URI, "https://app.example.gov.cn/cb")  # a claimed https redirect's host
    for scheme in ("cn.gov.other.app:/cb", "cn.gov.app:/cb", "cn.gov.examplex.app:/cb", "gov.cn.example.app:/cb"):
        with pytest.raises(InvalidInput, match="reverse of a domain"):
            _add(idp_services, scheme, sector_identifier="example.gov.cn")
    with pytest.raises(InvalidInput, match="reverse domain"):
        _add(idp_services, "exampleapp:/cb")  # RFC 8252 §7.1: at least one dot
    with pytest.raises(InvalidInput, match="public"):
        idp_services.clients.add(ClientSpec(name="Web", redirect_uris=[SCHEME_URI], sector_identifier="example.gov.cn"))


def test_private_schemes_match_exactly_and_loopback_on_any_port_for_public_clients_only(idp_services) -> None:
    app = _add(idp_services, SCHEME_URI, "http://127.0.0.1/callback", sector_identifier="example.gov.cn")
    for wrong in ("cn.gov.example.app:/cb/", "cn.gov.example.app:/cb?x=1", "cn.gov.example.app://cb",
                  "CN.gov.example.app:/cb", "cn.gov.example.app:/other", "http://127.0.0.1:5000/other"):
        assert not app.check_redirect_uri(wrong), wrong
    assert app.check_redirect_uri("http://127.0.0.1:49152/callback")
    web = idp_services.clients.add(ClientSpec(name="Web", redirect_uris=["http://127.0.0.1/callback"]))[0]
    assert not web.check_redirect_uri("http://127.0.0.1:49152/callback")


# ------------------------------------------------------------- the app and the system browser


@contextlib.contextmanager
def loopback_listener() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """The app's redirect listener (RFC 8252 §7.3): 127.0.0.1, a port the system picks."""
    received: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            received.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
            body = "登录完成，请回到应用 / Signed in: return to the app".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with local_server(Handler) as server:
        yield server.server_address[1], received


@pytest.mark.browser
@pytest.mark.slow
def test_a_native_app_signs_in_through_the_system_browser(yiwang_env, tmp_path) -> None:
    port, issuer, env = prepared_idp(yiwang_env, {ID_NUMBER: "张三"}, password=PASSWORD)
    app = json.loads(_idp(env, "clients", "add", "--name", "政务App", "--public", "--first-party",
                          "--redirect-uri", "http://127.0.0.1/callback", "--redirect-uri", SCHEME_URI,
                          "--sector-identifier", "example.gov.cn", "--scope", "openid", "--scope", "profile",
                          "--json"))
    other = json.loads(_idp(env, "clients", "add", "--name", "Other app", "--public", "--first-party",
                            "--redirect-uri", "cn.gov.other.app:/cb", "--sector-identifier", "other.gov.cn",
                            "--scope", "openid", "--json"))

    def authorize_url(client_id: str, redirect_uri: str, challenge: str | None) -> str:
        q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "scope": "openid profile", "state": "s-1"}
        if challenge:
            q |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return issuer + "/authorize?" + urlencode(q)

    def exchange(code: str, redirect_uri: str, verifier: str) -> dict:
        resp = requests.post(issuer + "/token", timeout=5, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier, "client_id": app["client_id"]})
        assert resp.status_code == 200, resp.text
        return resp.json()

    with serving(env, port, tmp_path / "idp.log"), chromium() as browser, loopback_listener() as (app_port, got):
        # The app: a loopback redirect on the port it was given, and PKCE.
        redirect = f"http://127.0.0.1:{app_port}/callback"
        verifier, challenge = pkce_pair()
        page = browser.new_page(locale="zh-CN")
        page.goto(authorize_url(app["client_id"], redirect, challenge))
        sign_in(page, ID_NUMBER, PASSWORD)
        page.wait_for_url(redirect + "*")
        assert "return to the app" in page.content()
        assert got and got[0]["state"] == "s-1" and got[0]["iss"] == issuer
        tokens = exchange(got[0]["code"], redirect, verifier)
        info = requests.get(issuer + "/userinfo", timeout=5,
                            headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
        assert info["name"] == "张三"

        # The same browser, signed in: the idp sends the code to the private-use scheme
        # of the app that registered it (a navigation Chromium cannot follow; read here).
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(issuer))
        signed_in = {"Cookie": cookie}
        verifier, challenge = pkce_pair()
        resp = requests.get(authorize_url(app["client_id"], SCHEME_URI, challenge), headers=signed_in,
                            allow_redirects=False, timeout=5)
        assert resp.status_code in (302, 303), resp.text[:300]
        location = resp.headers["Location"]
        assert location.startswith(SCHEME_URI + "?")
        exchange(parse_qs(urlsplit(location).query)["code"][0], SCHEME_URI, verifier)
        # Another app may not name it: an error page, no redirect.
        resp = requests.get(authorize_url(other["client_id"], SCHEME_URI, challenge), headers=signed_in,
                            allow_redirects=False, timeout=5)
        assert resp.status_code == 400 and "Location" not in resp.headers
        # PKCE is required of a native (public) client: an error back to the app, no code.
        resp = requests.get(authorize_url(app["client_id"], SCHEME_URI, None), headers=signed_in,
                            allow_redirects=False, timeout=5)
        query = parse_qs(urlsplit(resp.headers.get("Location", "")).query)
        assert resp.status_code in (302, 303) and query.get("error") == ["invalid_request"]
        assert "code" not in query
