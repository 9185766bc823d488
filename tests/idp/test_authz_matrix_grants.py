"""The authorization matrix, grant half (issue 11, docs/design.md "Boundaries: the matrix proves it").

grant type × registered client × requested scope set, each cell asserted:

- grant types are read from the running server (``registered_grant_types``):
  a grant registered without a driver here fails ``test_every_grant_has_rows``;
- clients are the registrations themselves: the demo data of ``idp init
  --demo`` (portals, the certstore wallet, the agencies) plus the public app
  and the kiosk of the other idp tests, read back from the database;
- scope sets are generated from each registration: what it registered, plus
  a known scope it did not register, plus an unknown scope, plus the
  privileged scopes (``id_number``, ``certs:lookup``, ``certs:issue``).

The expected answer comes from :func:`expected`, the rule of docs/design.md written
out independently of ``idp.oauth.scopes`` (so widening the policy fails here).
One application serves the whole module: in-process Flask test clients, no
browser; each cell starts a fresh "browser" and sign-in.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import pytest

from idp.cli.init import _seed_demo
from idp.clients import ClientSpec
from idp.oauth.mtls import ForwardedCertificate, MtlsConfig
from idp.oauth.server import registered_grant_types
from idp.services import Services
from idp.settings import IdpSettings
from idp.staff.portal import is_staff_portal
from tests.idp.conftest import private_idp
from tests.idp.oidc_helpers import (
    ID_NUMBER,
    PASSWORD,
    csrf_of,
    login,
    pkce_pair,
    widen_registration,
)
from tests.keys.dpop_client import DPoPKey
from tests.support.tls_proxy import self_signed_pem as _self_signed_pem

AUTH_CODE = "authorization_code"
REFRESH = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
CIBA = "urn:openid:params:grant-type:ciba"

# docs/design.md, the rule the idp must implement (stated here, not imported).
CITIZEN_SCOPES = {"openid", "profile", "phone", "email", "offline_access", "id_number", "certs:read"}
CITIZEN_TYPED = re.compile(r"certs:read:[0-9A-Z]{2,24}")
AGENCY_SCOPES = {"certs:issue", "certs:lookup"}
PRIVILEGED = ("id_number", "certs:lookup", "certs:issue")
UNKNOWN = "anything:else"
STRICT = {CLIENT_CREDENTIALS, DEVICE, REFRESH, CIBA}
"""Refuse with invalid_scope; /authorize drops instead (docs/rp-integration.md, "Scopes")."""


def may_have(client: Any, grant: str, scope: str) -> bool:
    if scope not in client.scopes:
        return False
    if grant == CLIENT_CREDENTIALS:
        return scope in AGENCY_SCOPES and not client.is_public
    if scope == "id_number":
        return bool(client.may_receive_id_number)
    return scope in CITIZEN_SCOPES or bool(CITIZEN_TYPED.fullmatch(scope))


@dataclass(frozen=True)
class Outcome:
    granted: tuple[str, ...] | None = None
    error: str | None = None

    def __str__(self) -> str:
        return f"error {self.error}" if self.error else f"granted {' '.join(self.granted or ()) or '(none)'}"


def expected(client: Any, grant: str, requested: list[str]) -> Outcome:
    if grant not in client.grant_types:
        return Outcome(error="unauthorized")
    ok = [s for s in dict.fromkeys(requested) if may_have(client, grant, s)]
    if grant in STRICT and len(ok) != len(set(requested)):
        return Outcome(error="invalid_scope")
    if grant == REFRESH:
        original = _original_scope(client)
        if not set(requested) <= set(original):
            return Outcome(error="invalid_scope")  # RFC 6749 §6: never wider than the grant
    return Outcome(granted=tuple(ok))


def _original_scope(client: Any) -> list[str]:
    """What the refresh cells start from: the registration, through the grant that issues refresh tokens."""
    first = _first_grant(client)
    return [s for s in client.scopes if may_have(client, first, s)]


def _first_grant(client: Any) -> str:
    """The grant the refresh cells get their first refresh token from."""
    return next(g for g in (AUTH_CODE, DEVICE, CIBA) if g in client.grant_types)


def scope_sets(client: Any) -> dict[str, list[str]]:
    registered = list(client.scopes)
    # a known scope of the registration's own kind that it did not register
    own = AGENCY_SCOPES if set(registered) <= AGENCY_SCOPES else CITIZEN_SCOPES
    known = sorted(own - set(registered)) or sorted((CITIZEN_SCOPES | AGENCY_SCOPES) - set(registered))
    return {
        "registered": registered,
        "unregistered": registered + known[:1],
        "unknown": registered + [UNKNOWN],
        "privileged": registered + [s for s in PRIVILEGED if s not in registered],
    }


# ------------------------------------------------------------ the world

_CLERK = "\0clerk"


@dataclass
class World:
    app: Any
    services: Services
    clients: dict[str, Any]
    secrets: dict[str, str | None]
    clerk: dict[str, str] = field(default_factory=dict)
    """The demo clerk (``idp init --demo``): username, password, TOTP secret."""
    staff_browser: list[Any] = field(default_factory=list)
    """One browser with a staff session: a TOTP code counts once, so the clerk signs in once."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # A loopback issuer: plain http is allowed without the opt-in (issue 19 §9).
    with private_idp(tmp_path_factory.mktemp("matrix"), issuer="http://127.0.0.1:5000") as idp:
        secrets = _register(idp.settings, idp.services)
        clients = {c.client_id: c for c in idp.services.clients.list()}
        yield World(idp.app, idp.services, clients, secrets, clerk=dict(secrets.pop(_CLERK) or {}))


def _register(settings: IdpSettings, services: Services) -> dict[str, str | None]:
    """The registrations: ``idp init --demo``'s, and the public app and kiosk of the other tests."""
    demo = _seed_demo(settings, services)
    secrets: dict[str, Any] = {cid: c["client_secret"] for cid, c in demo["clients"].items()}
    secrets[demo["counter"]["client_id"]] = demo["counter"]["client_secret"]
    secrets[_CLERK] = demo["staff"]
    secrets |= {cid: c["client_secret"] for cid, c in demo["agencies"].items()}
    secrets[demo["certstore"]["client_id"]] = demo["certstore"]["client_secret"]
    _, secret = services.clients.add(ClientSpec(
        name="App", client_id="matrix-public-app", public=True, redirect_uris=["cn.gov.app:/cb"],
        grant_types=(AUTH_CODE, REFRESH), scopes=("openid", "profile", "phone", "email", "offline_access")))
    secrets["matrix-public-app"] = secret
    _, secret = services.clients.add(ClientSpec(
        name="政务自助终端", client_id="matrix-kiosk", redirect_uris=["https://kiosk.example.cn/cb"],
        grant_types=(DEVICE, REFRESH), scopes=("openid", "profile"), first_party=True))
    secrets["matrix-kiosk"] = secret
    # A counter system (OpenID CIBA): the citizen approves on their own device.
    _, secret = services.clients.add(ClientSpec(
        name="市民服务窗口", client_id="matrix-counter", grant_types=(CIBA, REFRESH),
        scopes=("openid", "profile", "phone", "offline_access")))
    secrets["matrix-counter"] = secret
    # A registration mistake the policy must contain: agency scopes and an
    # unknown scope on a portal that also has client credentials.
    # `idp clients add` refuses such scopes, so the row is widened in the database.
    _, secret = services.clients.add(ClientSpec(
        name="登记有误的门户", client_id="matrix-misregistered", redirect_uris=["https://mis.example.cn/cb"],
        grant_types=(AUTH_CODE, REFRESH, CLIENT_CREDENTIALS), scopes=("openid", "profile", "certs:read:BYZS")))
    widen_registration(services, "matrix-misregistered",
                       ("openid", "profile", "certs:lookup", "certs:issue", "certs:read:BYZS", "made:up"))
    secrets["matrix-misregistered"] = secret
    # A CAS service (issue 21 §3): a client with no grant at all, in every grant's rows below.
    _, secret = services.clients.add(ClientSpec(
        name="CAS 门户", client_id="matrix-cas-service", cas_service_url=CAS_SERVICE,
        scopes=("openid", "profile"), first_party=True))
    secrets["matrix-cas-service"] = secret
    # the demo citizen (the ID number of the other tests), with the tests' password
    assert demo["citizen"]["id_number"] == ID_NUMBER
    services.accounts.set_password(ID_NUMBER, PASSWORD)
    return secrets


# ------------------------------------------------------------ the drivers


def _auth(world: World, client: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, form fields) that authenticate ``client`` at the token endpoint."""
    secret = world.secrets.get(client.client_id)
    if client.is_public or not secret:
        return {}, {"client_id": client.client_id}
    raw = f"{client.client_id}:{secret}".encode()
    if client.token_endpoint_auth_method == "client_secret_post":  # noqa: S105 - a method name
        return {}, {"client_id": client.client_id, "client_secret": secret}
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, {}


# ------------------------------------------------------------ token kinds (issue 14)
# Every row runs once per kind of token: "bearer" (no proof), "dpop" (a DPoP proof at the
# token endpoint: RFC 9449), "mtls" (a client certificate forwarded by the TLS proxy: RFC 8705).
TOKEN_KINDS = ("bearer", "dpop", "mtls")
_KIND = {"now": "bearer"}
_DPOP_KEY = DPoPKey()
_CLIENT_CERT = quote(_self_signed_pem(), safe="")


def _trust_the_test_client_as_tls_proxy(world: World, on: bool) -> None:
    """For "mtls", the world's idp believes its test client (127.0.0.1) as the TLS proxy (RFC 8705).

    None of the matrix's clients registered mTLS, so a certificate must change nothing: the
    same cells, unbound Bearer tokens (``_check_binding``).
    """
    edge = world.app.wsgi_app
    if isinstance(edge, ForwardedCertificate):
        proxies = (ipaddress.ip_network("127.0.0.1/32"),) if on else ()
        world.app.wsgi_app = ForwardedCertificate(edge.app, MtlsConfig(proxies=proxies))


def _binding_headers() -> dict[str, str]:
    """The proof-of-possession headers of the token kind being driven (none for bearer)."""
    if _KIND["now"] == "dpop":
        return {"DPoP": _DPOP_KEY.proof("POST", "http://127.0.0.1:5000/token")}  # the world's issuer
    if _KIND["now"] == "mtls":
        return {"X-Client-Cert": _CLIENT_CERT}
    return {}


def _check_binding(body: dict[str, Any], claims: dict[str, Any]) -> None:
    kind = body["token_type"]
    if _KIND["now"] == "dpop":
        assert kind == "DPoP" and claims.get("cnf") == {"jkt": _DPOP_KEY.jkt}, kind
    else:
        assert kind == "Bearer" and "cnf" not in claims, kind


def _token(world: World, client: Any, data: dict[str, str]) -> Any:
    headers, form = _auth(world, client)
    return world.app.test_client().post("/token", data={**data, **form}, headers={**headers, **_binding_headers()})


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _answer(resp: Any) -> Outcome | dict[str, Any]:
    body = resp.get_json(silent=True) or {}
    if resp.status_code != 200:
        err = body.get("error", f"http {resp.status_code}")
        return Outcome(error="unauthorized" if err in ("unauthorized_client", "invalid_client") else err)
    return body


def _granted(world: World, client: Any, body: dict[str, Any]) -> Outcome:
    scope = tuple(body.get("scope", "").split())
    claims = _claims(body["access_token"])
    assert tuple(claims.get("scope", "").split()) == scope, "the token's scope differs from the response's"
    assert claims["client_id"] == client.client_id
    _check_binding(body, claims)
    if "id_token" in body:  # issue 11 §4: never the ID number in an ID token
        assert "id_number" not in _claims(body["id_token"])
    return Outcome(granted=scope)


def _sign_in_and_authorize(world: World, client: Any, scope: list[str], *, par: bool) -> Outcome | tuple[str, str]:
    """/authorize (or PAR then /authorize) → login → consent (all allowed, ID number ticked) → code."""
    web = world.app.test_client()
    redirect_uri = (client.redirect_uris or ["https://unregistered.example.cn/cb"])[0]
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
              "scope": " ".join(scope), "state": "s", "nonce": "n", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    if par:
        headers, form = _auth(world, client)
        pushed = web.post("/par", data={**params, **form}, headers=headers)
        if pushed.status_code != 201:
            return _answer(pushed)  # type: ignore[return-value]
        params = {"client_id": client.client_id, "request_uri": pushed.get_json()["request_uri"]}
    if is_staff_portal(client):  # its sign-in is the clerk's, never the citizen's (issue 13 §1)
        web = _staff_browser(world)
    resp = web.get("/authorize", query_string=params)
    for _ in range(8):
        if resp.status_code == 200 and 'id="login-form"' in resp.get_data(as_text=True):
            resp = login(web, resp)
            continue
        if resp.status_code == 200 and 'id="staff-login-form"' in resp.get_data(as_text=True):
            resp = _staff_login(world, web, resp)
            continue
        if resp.status_code not in (302, 303):
            return Outcome(error="unauthorized" if resp.status_code == 400 else f"http {resp.status_code}")
        loc = resp.headers["Location"]
        if loc.startswith(redirect_uri):
            q = {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}
            if "code" not in q:
                return Outcome(error="unauthorized" if q.get("error") == "unauthorized_client" else q.get("error"))
            return q["code"], verifier
        if urlsplit(loc).path == "/consent":
            page = web.get(loc).get_data(as_text=True)
            assert "scope_" not in page.replace("scope_id_number", ""), "a scope shown by its raw key"
            resp = web.post(loc, data={"csrf_token": csrf_of(page), "decision": "allow", "share_id_number": "yes"})
        else:
            resp = web.get(loc)
    raise AssertionError("the authorization flow did not end")


def _staff_browser(world: World) -> Any:
    if not world.staff_browser:
        world.staff_browser.append(world.app.test_client())
    return world.staff_browser[0]


def _staff_login(world: World, web: Any, page: Any) -> Any:
    """The demo clerk signs in on the staff page (once per world: the staff session answers after that)."""
    html = page.get_data(as_text=True)
    where = page.request.path + ("?" + page.request.query_string.decode() if page.request.query_string else "")
    return web.post(where, data={"csrf_token": csrf_of(html), "username": world.clerk["username"],
                                 "password": world.clerk["password"],
                                 "code": pyotp.TOTP(world.clerk["totp_secret"]).now()})


def _actor_token(world: World, client: Any) -> str:
    """A clerk's ID token from a staff sign-in through ``client`` (its CIBA requests must carry one)."""
    got = _code_tokens(world, client, ["openid"])
    assert isinstance(got, dict) and "id_token" in got, f"the clerk's sign-in through {client.client_id}: {got}"
    return str(got["id_token"])


def _code_tokens(world: World, client: Any, scope: list[str], *, par: bool = False) -> Outcome | dict[str, Any]:
    got = _sign_in_and_authorize(world, client, scope, par=par)
    if isinstance(got, Outcome):
        return got
    code, verifier = got
    return _answer(_token(world, client, {"grant_type": AUTH_CODE, "code": code, "code_verifier": verifier,
                                          "redirect_uri": client.redirect_uris[0]}))


def _device_tokens(world: World, client: Any, scope: list[str]) -> Outcome | dict[str, Any]:
    headers, form = _auth(world, client)
    kiosk = world.app.test_client()
    started = kiosk.post("/device/authorize", data={"scope": " ".join(scope), **form}, headers=headers)
    if started.status_code != 200:
        return _answer(started)
    data = started.get_json()
    phone = world.app.test_client()
    first = phone.get("/device", query_string={"user_code": data["user_code"]})
    page = phone.get(login(phone, first.headers["Location"]).headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "scope_" not in html, "the approval page shows a raw scope key"
    done = phone.post("/device", data={"csrf_token": csrf_of(html), "user_code": data["user_code"],
                                       "decision": "approve", "share_id_number": "yes"})
    assert done.status_code == 200
    return _answer(kiosk.post("/token", data={"grant_type": DEVICE, "device_code": data["device_code"], **form},
                              headers={**headers, **_binding_headers()}))


def _ciba_tokens(world: World, client: Any, scope: list[str]) -> Outcome | dict[str, Any]:
    """CIBA: the counter asks (login_hint), the citizen approves on their own session, the counter polls."""
    headers, form = _auth(world, client)
    counter = world.app.test_client()
    acting = {"actor_token": _actor_token(world, client)} if client.attributes.get("acting") else {}
    started = counter.post("/bc-authorize", data={"scope": " ".join(scope), "login_hint": ID_NUMBER, **form,
                                                  **acting}, headers=headers)
    if started.status_code != 200:
        return _answer(started)
    rid = started.get_json()["auth_req_id"]
    phone = world.app.test_client()
    first = phone.get("/account")
    login(phone, first.headers["Location"])
    [pending] = [p for p in phone.get("/ciba/pending").get_json()["pending"]]
    page = phone.get(pending["url"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "scope_" not in html, "the approval page shows a raw scope key"
    done = phone.post(pending["url"], data={"csrf_token": csrf_of(html), "decision": "approve",
                                            "share_id_number": "yes"})
    assert done.status_code == 200, done.data[:300]
    return _answer(counter.post("/token", data={"grant_type": CIBA, "auth_req_id": rid, **form},
                                headers={**headers, **_binding_headers()}))


def drive_ciba(world: World, client: Any, scope: list[str]) -> Outcome:
    got = _ciba_tokens(world, client, scope)
    return got if isinstance(got, Outcome) else _granted(world, client, got)


def drive_authorization_code(world: World, client: Any, scope: list[str]) -> Outcome:
    front = _code_tokens(world, client, scope)
    out = front if isinstance(front, Outcome) else _granted(world, client, front)
    if not client.is_public and AUTH_CODE in client.grant_types:
        pushed = _code_tokens(world, client, scope, par=True)  # RFC 9126: the same policy
        pushed_out = pushed if isinstance(pushed, Outcome) else _granted(world, client, pushed)
        assert pushed_out == out, f"PAR gave {pushed_out}, the front channel {out}"
    return out


def drive_client_credentials(world: World, client: Any, scope: list[str]) -> Outcome:
    hot = _answer(_token(world, client, {"grant_type": CLIENT_CREDENTIALS, "scope": " ".join(scope)}))
    out = hot if isinstance(hot, Outcome) else _granted(world, client, hot)
    # The same request through Flask's view (a query string keeps it off the hot path).
    headers, form = _auth(world, client)
    flask = _answer(world.app.test_client().post("/token?via=flask", headers={**headers, **_binding_headers()}, data={
        "grant_type": CLIENT_CREDENTIALS, "scope": " ".join(scope), **form}))
    flask_out = flask if isinstance(flask, Outcome) else _granted(world, client, flask)
    assert flask_out == out, f"Flask gave {flask_out}, the hot path {out}"
    return out


def drive_refresh_token(world: World, client: Any, scope: list[str]) -> Outcome:
    if REFRESH not in client.grant_types:
        return _answer(_token(world, client, {"grant_type": REFRESH, "refresh_token": "x" * 43,
                                              "scope": " ".join(scope)}))  # type: ignore[return-value]
    original = _original_scope(client)
    first = {AUTH_CODE: _code_tokens, DEVICE: _device_tokens, CIBA: _ciba_tokens}[_first_grant(client)](
        world, client, original)
    assert isinstance(first, dict) and "refresh_token" in first, f"no refresh token to start from: {first}"
    got = _answer(_token(world, client, {"grant_type": REFRESH, "refresh_token": first["refresh_token"],
                                         "scope": " ".join(scope)}))
    return got if isinstance(got, Outcome) else _granted(world, client, got)


def drive_device_code(world: World, client: Any, scope: list[str]) -> Outcome:
    got = _device_tokens(world, client, scope)
    return got if isinstance(got, Outcome) else _granted(world, client, got)


DRIVERS: dict[str, Callable[[World, Any, list[str]], Outcome]] = {
    AUTH_CODE: drive_authorization_code,
    REFRESH: drive_refresh_token,
    CLIENT_CREDENTIALS: drive_client_credentials,
    DEVICE: drive_device_code,
    CIBA: drive_ciba,
}


# ------------------------------------------------------------ the tests


def test_every_grant_has_rows(world: World) -> None:
    served = set(registered_grant_types(world.app.extensions["yiwang"].server))
    assert served == set(DRIVERS), f"grants without matrix rows: {served - set(DRIVERS)}"


def test_every_client_kind_is_in_the_matrix(world: World) -> None:
    c = world.clients.values()
    kinds = {
        "confidential agency": [x for x in c if x.grant_types == [CLIENT_CREDENTIALS] and not x.is_public],
        "public app": [x for x in c if x.is_public],
        "kiosk": [x for x in c if DEVICE in x.grant_types and AUTH_CODE not in x.grant_types],
        "counter (CIBA)": [x for x in c if CIBA in x.grant_types],
        "wallet": [x for x in c if x.may_receive_id_number],
        "portal": [x for x in c if AUTH_CODE in x.grant_types and not x.first_party],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}


# ------------------------------------------------------------ CAS rows (issue 21 §3)

CAS_SERVICE = "https://cas.matrix.example.cn/cas/callback"


def test_a_cas_service_gets_no_oauth_grant_and_an_oauth_client_no_cas_ticket(world: World) -> None:
    cas = world.clients["matrix-cas-service"]
    assert cas.grant_types == [] and all(expected(cas, g, list(cas.scopes)) == Outcome(error="unauthorized")
                                         for g in DRIVERS)  # test_matrix drives those cells
    web = world.app.test_client()
    # signed in, the CAS service gets a ticket (the positive control) ...
    first = web.get("/cas/login", query_string={"service": CAS_SERVICE})
    back = web.get(login(web, first.headers["Location"]).headers["Location"])
    assert back.headers["Location"].startswith(CAS_SERVICE + "?ticket=ST-")
    # ... and in the same session no OAuth client's redirect URI is a CAS service
    rows = []
    for client in sorted(world.clients.values(), key=lambda c: c.client_id):
        for uri in client.redirect_uris:
            resp = web.get("/cas/login", query_string={"service": uri})
            if resp.status_code != 400 or "Location" in resp.headers:
                rows.append(f"{client.client_id}: /cas/login for {uri} gave {resp.status_code}")
    assert not rows, "\n" + "\n".join(rows)


@pytest.mark.parametrize("token_kind", TOKEN_KINDS)
@pytest.mark.parametrize("grant", list(DRIVERS))
def test_matrix(world: World, grant: str, token_kind: str) -> None:
    _KIND["now"] = token_kind
    _trust_the_test_client_as_tls_proxy(world, token_kind == "mtls")  # noqa: S105 - a kind name
    rows = []
    for client in sorted(world.clients.values(), key=lambda c: c.client_id):
        for name, scope in scope_sets(client).items():
            want = expected(client, grant, scope)
            got = DRIVERS[grant](world, client, scope)
            if got != want:
                rows.append(f"{client.client_id:>22} | {name:<12} | asked {' '.join(scope)}: got {got}, want {want}")
    assert not rows, "\n" + "\n".join(rows)


# ------------------------------------------------------------ browser origins (issue 21 §1)
# endpoint × Origin (the client's own registered origin, another client's, one nobody
# registered): the answer is the same for every origin; only the client's own origin
# may read it (Access-Control-Allow-Origin), a preflight is answered for any
# registered origin, and credentials are never allowed.

SPA_ORIGIN, OTHER_SPA_ORIGIN, NOBODYS_ORIGIN = "https://spa.example.cn", "https://other-spa.example.cn", "https://evil.example.com"
ORIGINS = {"own": SPA_ORIGIN, "other client's": OTHER_SPA_ORIGIN, "unregistered": NOBODYS_ORIGIN}


@pytest.fixture(scope="module")
def spa_clients(world: World) -> tuple[Any, str]:
    for cid, origin in (("matrix-spa", SPA_ORIGIN), ("matrix-other-spa", OTHER_SPA_ORIGIN)):
        world.services.clients.add(ClientSpec(
            name="单页应用", client_id=cid, public=True, redirect_uris=[origin + "/cb"],
            grant_types=(AUTH_CODE, REFRESH), scopes=("openid", "profile"), web_origins=[origin]))
    spa = world.services.clients.show("matrix-spa")
    body = _code_tokens(world, spa, ["openid", "profile"])
    assert isinstance(body, dict), body
    return spa, body["access_token"]


def _browser_call(world: World, endpoint: str, origin: str, access_token: str) -> Any:
    web = world.app.test_client()
    headers = {"Origin": origin}
    if endpoint == "/userinfo":
        return web.get("/userinfo", headers={**headers, "Authorization": "Bearer " + access_token})
    data = {"client_id": "matrix-spa"}
    data |= {"/token": {"grant_type": REFRESH, "refresh_token": "not-a-token"},
             "/revoke": {"token": access_token},
             "/par": {"response_type": "code", "redirect_uri": SPA_ORIGIN + "/cb"}}[endpoint]
    return web.post(endpoint, data=data, headers=headers)


@pytest.mark.parametrize("endpoint", ["/token", "/userinfo", "/revoke", "/par"])
def test_browser_origin_matrix(world: World, spa_clients: tuple[Any, str], endpoint: str) -> None:
    _, access_token = spa_clients
    rows = []
    answers = set()
    for kind, origin in ORIGINS.items():
        resp = _browser_call(world, endpoint, origin, access_token)
        answers.add((resp.status_code, (resp.get_json(silent=True) or {}).get("error")))
        got = resp.headers.get("Access-Control-Allow-Origin")
        want = origin if kind == "own" else None
        preflight = world.app.test_client().open(endpoint, method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"}).headers.get("Access-Control-Allow-Origin")
        want_preflight = None if kind == "unregistered" else origin
        if got != want or preflight != want_preflight or "Access-Control-Allow-Credentials" in resp.headers:
            rows.append(f"{endpoint} | {kind}: ACAO {got!r} (want {want!r}), preflight {preflight!r} "
                        f"(want {want_preflight!r})")
    assert len(answers) == 1, f"{endpoint}: the origin changed the answer: {answers}"
    assert not rows, "\n" + "\n".join(rows)
