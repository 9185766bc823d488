"""CAS 3.0 interoperability: python-cas, a client library nobody here wrote, against a real ``idp serve``.

Issue 21 §3, must show: ``CASClientV3`` builds the login URL, a cookie-keeping
HTTP session fills the idp's login form (as a browser does), and the library
validates the ticket at ``/cas/p3/serviceValidate``; the ticket replayed, used
for another service, or used after its lifetime is refused. Single logout
both ways runs against the same server (its in-process job worker delivers):
signing out at an OpenID portal POSTs the CAS ``LogoutRequest`` to the
service, and ``/cas/logout`` ends the SSO session for the OpenID portal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from cas import CASClientV3

from idp.cas.slo import logout_request
from tests.idp.logout_helpers import wait_until
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD
from tests.idp.test_cas import CasReceiver
from tests.idp.test_e2e_browser import _free_port, _idp, serving

pytestmark = [pytest.mark.slow]

TICKET_SECONDS = 3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def receiver() -> Iterator[CasReceiver]:
    r = CasReceiver()
    yield r
    r.stop()


@pytest.fixture
def served(yiwang_env: dict[str, str], tmp_path: Any, receiver: CasReceiver) -> Iterator[dict[str, Any]]:
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, **yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "1024",
           "YIWANG_IDP_CAS_TICKET_SECONDS": str(TICKET_SECONDS), "YIWANG_IDP_INPROCESS_WORKER": "true"}
    env = {k: v for k, v in env.items() if not k.startswith("YIWANG_TEST_")}
    _idp(env, "db", "upgrade")
    _idp(env, "users", "add", "--id-number", ID_NUMBER, "--name", "张三", "--password-stdin", stdin=PASSWORD + "\n")
    service = f"http://127.0.0.1:{_free_port()}/cas/callback"
    other = f"http://127.0.0.1:{_free_port()}/cas/callback"
    _idp(env, "clients", "add", "--name", "省级政务门户", "--cas-service", service, "--cas-logout-url", receiver.url,
         "--scope", "profile", "--first-party", "--json")
    _idp(env, "clients", "add", "--name", "另一门户", "--cas-service", other, "--first-party", "--json")
    rp_redirect = f"http://127.0.0.1:{_free_port()}/cb"
    rp = json.loads(_idp(env, "clients", "add", "--name", "OpenID 门户", "--redirect-uri", rp_redirect,
                         "--scope", "openid", "--first-party", "--json"))
    with serving(env, port, tmp_path / "idp.log"):
        yield {"issuer": issuer, "service": service, "other": other, "rp": rp, "rp_redirect": rp_redirect}


_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
_ACTION = re.compile(r'<form method="post" action="([^"]+)" id="login-form"')


def _follow_to(browser: requests.Session, url: str, stop: str) -> str:
    """Follow redirects by hand (the service and portal are not listening); fill the login form when shown."""
    for _ in range(10):
        if url.startswith(stop):
            return url
        resp = browser.get(url, allow_redirects=False, timeout=10)
        if resp.status_code in (302, 303):
            url = urljoin(url, resp.headers["Location"])
            continue
        assert resp.status_code == 200, (resp.status_code, resp.text[:300])
        action = _ACTION.search(resp.text)
        assert action, "neither a redirect nor the login form"
        posted = browser.post(urljoin(url, unescape(action.group(1))), allow_redirects=False, timeout=10,
                              data={"csrf_token": _CSRF.search(resp.text).group(1),  # type: ignore[union-attr]
                                    "id_number": ID_NUMBER, "password": PASSWORD})
        assert posted.status_code == 303, posted.text[:300]
        url = urljoin(url, posted.headers["Location"])
    raise AssertionError("did not reach " + stop)


def _ticket(url: str) -> str:
    return parse_qs(urlsplit(url).query)["ticket"][0]


def test_python_cas_signs_in_and_validates(served: dict[str, Any]) -> None:
    server_url = served["issuer"] + "/cas/"
    client = CASClientV3(service_url=served["service"], server_url=server_url)
    browser = requests.Session()
    back = _follow_to(browser, client.get_login_url(), served["service"])
    ticket = _ticket(back)
    user, attributes, pgtiou = client.verify_ticket(ticket)
    assert user and pgtiou is None
    assert attributes["name"] == "张三" and attributes["isFromNewLogin"] == "true"
    assert "id_number" not in attributes
    # replayed: refused
    assert client.verify_ticket(ticket)[0] is None
    # used for another service: refused, and consumed
    second = _ticket(_follow_to(browser, client.get_login_url(), served["service"]))  # SSO: no password
    other = CASClientV3(service_url=served["other"], server_url=server_url)
    assert other.verify_ticket(second)[0] is None
    assert client.verify_ticket(second)[0] is None
    # the other service validates a ticket of its own
    theirs = _ticket(_follow_to(browser, other.get_login_url(), served["other"]))
    assert other.verify_ticket(theirs)[0]
    # after its lifetime: refused
    late = _ticket(_follow_to(browser, client.get_login_url(), served["service"]))
    time.sleep(TICKET_SECONDS + 0.5)
    assert client.verify_ticket(late)[0] is None
    # renew: the library's login URL with renew asks for the password, and its ticket is fresh
    renewing = CASClientV3(service_url=served["service"], server_url=server_url, renew=True)
    first = browser.get(renewing.get_login_url(), allow_redirects=False, timeout=10)
    assert urlsplit(first.headers["Location"]).path == "/login"
    user2, attrs2, _ = renewing.verify_ticket(_ticket(_follow_to(browser, renewing.get_login_url(),
                                                                 served["service"])))
    assert user2 == user and attrs2["isFromNewLogin"] == "true"
    # the minimal service of docs/rp-integration.md ("CAS portals") works as written
    doc = _documented_example(served["issuer"], served["service"])
    user3 = doc["callback"](_ticket(_follow_to(browser, doc["login_url"], served["service"])))
    assert user3 is not None and user3["user"] == user and user3["name"] == "张三"
    sessions = {user3["ticket"]: "local session"}
    doc["slo"](logout_request(user3["ticket"], request_id="LR-1", issued=dt.datetime.now(dt.UTC)), sessions)
    assert sessions == {}
    assert doc["logout_url"] == served["issuer"] + "/cas/logout?" + urlencode({"service": served["service"]})


def _documented_example(issuer: str, service: str) -> dict[str, Any]:
    text = (ROOT / "docs" / "rp-integration.md").read_text(encoding="utf-8")
    code = text.split("## CAS portals", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = re.sub(r'^ISSUER = ".*"$', f"ISSUER = {issuer!r}", code, flags=re.M)
    code = re.sub(r'^SERVICE = ".*"  #.*$', f"SERVICE = {service!r}", code, flags=re.M)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/rp-integration.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def _authorize(browser: requests.Session, served: dict[str, Any]) -> str:
    rp = served["rp"]
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": served["rp_redirect"],
              "scope": "openid", "state": "s", "nonce": "n", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
              "code_challenge_method": "S256"}
    url = served["issuer"] + "/authorize?" + requests.compat.urlencode(params)  # type: ignore[attr-defined]
    return _follow_to(browser, url, served["rp_redirect"])


def test_single_logout_both_ways(served: dict[str, Any], receiver: CasReceiver) -> None:
    client = CASClientV3(service_url=served["service"], server_url=served["issuer"] + "/cas/")
    browser = requests.Session()
    assert "code=" in _authorize(browser, served)  # signed in at the OpenID portal
    ticket = _ticket(_follow_to(browser, client.get_login_url(), served["service"]))
    assert client.verify_ticket(ticket)[0]
    # 1. sign out at the OpenID portal (end session, confirmed on the idp's page): the CAS service is told
    page = browser.get(served["issuer"] + "/logout", timeout=10)
    browser.post(served["issuer"] + "/logout", timeout=10, allow_redirects=False,
                 data={"csrf_token": _CSRF.search(page.text).group(1), "decision": "logout"})  # type: ignore[union-attr]
    request = wait_until(lambda: next((r for r in receiver.requests if client.verify_logout_request(r, ticket)), None))
    assert request
    # 2. sign in again, sign out at the CAS service: the OpenID portal's next authorize asks for the password
    assert "code=" in _authorize(browser, served)
    browser.get(client.get_logout_url(), timeout=10, allow_redirects=False)
    rp = served["rp"]
    again = browser.get(served["issuer"] + "/authorize", allow_redirects=False, timeout=10, params={
        "response_type": "code", "client_id": rp["client_id"], "redirect_uri": served["rp_redirect"],
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    assert again.status_code == 200 and 'id="login-form"' in again.text
