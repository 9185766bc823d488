"""The authorization matrix, endpoint half (docs/design.md "The matrix proves it"; issue 11).

Every route certstore registers (``app.url_map``), plus the idp's userinfo and
introspection endpoints, × every kind of token:

============== ======================================================================
agency_a       client credentials of demo-psb (issuer A, JZZM; on the lookup allow-list)
agency_b       client credentials of demo-amr (issuer B, YYZZ; holds certs:lookup, not allowed)
citizen        a portal's token for the citizen (``openid certs:read``, aud certstore)
wallet         certstore's own sign-in token for the citizen (``openid profile id_number``)
revoked        agency A's token, revoked at the idp (RFC 7009)
expired        agency A's token as the idp signs it, past its ``exp``
other_audience a portal's token for itself (``openid profile``, aud portal)
none           no Authorization header
============== ======================================================================

The rows are keyed by ``METHOD endpoint`` and the test fails on a route
without a row (a new endpoint must say who may call it) and on a row without
a route. Cells are asserted exactly; A-vs-B cells also check that B sees
nothing of A's certificate. One world (idp + certstore in-process) serves the
whole matrix, so it runs in a few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from keys.jws import encode_jws
from keys.keyring import open_keyring
from tests.idp.oidc_helpers import ISSUER, authorize_code
from tests.keys.dpop_client import DPoPKey
from tests.support.tls_proxy import self_signed_pem

from .conftest import DEMO_REQUESTS
from .idp_world import *  # noqa: F403 (the world fixture)
from .idp_world import CS_URL, World, expired_token

KINDS = ("agency_b", "citizen", "wallet", "revoked", "expired", "other_audience", "none", "agency_a")
"""agency_a last: its cells may change the certificate a row works on."""

_REFUSED = {"revoked": 401, "expired": 401, "other_audience": 401, "none": 401}


def agency(ok: int, *, b: int) -> dict[str, int]:
    """An agency API: only agency A on its own certificates; B as stated; citizens' tokens lack the scope."""
    return {"agency_a": ok, "agency_b": b, "citizen": 403, "wallet": 403, **_REFUSED}


def public(status: int) -> dict[str, int]:
    """Open to anyone; a token, good or bad, changes nothing."""
    return dict.fromkeys(KINDS, status)


@dataclass
class Row:
    method: str
    path: Callable[[World, str], str]
    """``(world, certificate) -> URL``; ``certificate`` is A's (fresh for a row that changes it)."""
    expect: dict[str, int]
    body: Callable[[World, str], Any] | None = None
    data: Callable[[World, str], dict[str, str]] | None = None
    fresh: bool = False
    """Work on a certificate of its own (the row changes it)."""
    a_only: bool = field(default=False)
    """B's answer must not mention A's certificate."""


def _cert(suffix: str = "") -> Callable[[World, str], str]:
    return lambda w, c: f"/api/v1/certificates/{c}{suffix}"


def _fixed(url: str) -> Callable[[World, str], str]:
    return lambda w, c: url


def _qr_text(w: World, c: str) -> dict[str, str]:
    return {"text": w.cs_services.certificates.get(c).qr_text}


def _verify_form(w: World, c: str) -> dict[str, str]:
    """The public verify page's form: its CSRF pair (cookie + field) and the QR text."""
    page = w.cs.get("/verify").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf, "no CSRF field on the verify page"
    return {"csrf": csrf.group(1), **_qr_text(w, c)}


def _status_list(w: World, c: str) -> str:
    from certstore.models import StatusListRow

    with w.cs_services.sessions() as s:
        list_id = s.scalar(sa.select(StatusListRow.id).limit(1))
    return f"/status-lists/{list_id}"


_WALLET_PAGE = {"/wallet/certificates/{}/pdf", "/wallet/certificates/{}/qr", "/wallet/certificates/{}/qr.svg"}

ROWS: dict[str, Row] = {
    # -- agency APIs: bound to the caller's own issuer -------------------------------------------
    "POST api.issue_certificate": Row(
        "POST", _fixed("/api/v1/certificates"), agency(201, b=403),
        body=lambda w, c: {**DEMO_REQUESTS["JZZM"]["body"], "issuer": DEMO_REQUESTS["JZZM"]["issuer"]},
    ),
    "GET api.list_certificates": Row("GET", _fixed("/api/v1/certificates"), agency(200, b=200), a_only=True),
    "GET api.get_certificate": Row("GET", _cert(), agency(200, b=404), a_only=True),
    "GET api.certificate_pdf": Row("GET", _cert("/pdf"), agency(200, b=404), a_only=True),
    "GET api.certificate_qr_png": Row("GET", _cert("/qr.png"), agency(200, b=404), a_only=True),
    "GET api.certificate_qr_svg": Row("GET", _cert("/qr.svg"), agency(200, b=404), a_only=True),
    "POST lifecycle.change_status": Row(
        "POST", _cert("/status"), agency(200, b=403), body=lambda w, c: {"action": "suspend", "reason": "matrix"},
        fresh=True, a_only=True,
    ),
    "POST lifecycle.new_version": Row(
        "POST", _cert("/versions"), agency(201, b=403), body=lambda w, c: DEMO_REQUESTS["JZZM"]["body"],
        fresh=True, a_only=True,
    ),
    # -- lookup: certstore's allow-list (A), not the scope (B holds it too) ----------------------
    "POST wallet_api.lookup": Row(
        "POST", _fixed("/api/v1/lookup"), agency(200, b=403),
        body=lambda w, c: {"id_number": DEMO_REQUESTS["JZZM"]["body"]["holder_code"], "purpose": "matrix"},
        a_only=True,
    ),
    # -- consented sharing: the citizen's token with certs:read only -----------------------------
    "GET wallet_api.my_certificates": Row(
        "GET", _fixed("/api/v1/me/certificates"),
        {"citizen": 200, "agency_a": 403, "agency_b": 403, "wallet": 403, **_REFUSED},
    ),
    # -- public: verification, status and trust lists, pages, static files -----------------------
    "POST api.verify": Row("POST", _fixed("/api/v1/verify"), public(200), body=_qr_text),
    "GET lifecycle.status_list": Row("GET", _status_list, public(200)),
    "GET lifecycle.signed_trust_list": Row("GET", _fixed("/trust-list.jwt"), public(200)),
    "GET public.trust_list": Row("GET", _fixed("/trust-list"), public(200)),
    "GET public.openapi": Row("GET", _fixed("/openapi.json"), public(200)),
    "GET health.healthz": Row("GET", _fixed("/healthz"), public(200)),
    "GET health.readyz": Row("GET", _fixed("/readyz"), public(200)),
    "GET public.issuing_crl": Row("GET", _fixed("/pki/crl/issuing.crl"), public(200)),
    "GET public.verify_page": Row("GET", _fixed("/verify"), public(200)),
    "POST public.verify_submit": Row("POST", _fixed("/verify"), public(200), data=_verify_form),
    "GET static": Row("GET", _fixed("/static/yiwang.css"), public(200)),
    "GET public.static": Row("GET", _fixed("/static/yiwang.css"), public(200)),
    "GET offline.page": Row("GET", _fixed("/verify/offline/"), public(200)),
    "GET offline.service_worker": Row("GET", _fixed("/verify/offline/sw.js"), public(200)),
    "GET offline.trust_json": Row("GET", _fixed("/verify/offline/trust.json"), public(200)),
    "GET offline.jsqr": Row("GET", _fixed("/verify/offline/vendor/jsQR.js"), public(200)),
    "GET offline.style": Row("GET", _fixed("/verify/offline/verify.css"), public(200)),
    "GET offline.script": Row("GET", _fixed("/verify/offline/verify.js"), public(200)),
    # -- the wallet: a session cookie, never a Bearer token ---------------------------------------
    "GET wallet.home": Row("GET", _fixed("/wallet"), public(302)),
    "GET wallet.login": Row("GET", _fixed("/wallet/login"), public(302)),
    "GET wallet.callback": Row("GET", _fixed("/wallet/callback?code=c&state=s"), public(400)),
    "POST wallet.logout": Row("POST", _fixed("/wallet/logout"), public(302)),
    "POST wallet.backchannel_logout": Row("POST", _fixed("/wallet/backchannel-logout"), public(400)),
    "GET wallet.pdf": Row("GET", lambda w, c: f"/wallet/certificates/{c}/pdf", public(401)),
    "GET wallet.qr": Row("GET", lambda w, c: f"/wallet/certificates/{c}/qr", public(302)),  # signed out: to sign-in, and back
    "GET wallet.qr_svg": Row("GET", lambda w, c: f"/wallet/certificates/{c}/qr.svg", public(401)),
    "GET wallet.static": Row("GET", _fixed("/wallet/static/wallet_signout.js"), public(200)),
    # -- operators and integrators (issue 18): the scrape answers loopback callers; the API reference
    "GET metrics.metrics": Row("GET", _fixed("/metrics"), public(200)),
    "GET apidocs.page": Row("GET", _fixed("/api/docs"), public(200)),
    "GET apidocs.init_js": Row("GET", _fixed("/api/docs/init.js"), public(200)),
    "GET apidocs.asset": Row("GET", _fixed("/api/docs/assets/swagger-ui.css"), public(200)),
    # -- OpenID4VCI issuer (issue 15 §1): offers by the issuing agency; credentials for a citizen's token
    "POST vci.create_offer": Row("POST", _cert("/credential-offer"), agency(201, b=404), a_only=True),
    "GET vci.issued_credentials": Row("GET", _cert("/credentials"), agency(200, b=404), a_only=True),
    "POST vci.credential": Row(
        "POST", _fixed("/vci/credential"),
        # a portal's certs:read token: not a wallet on certstore's allow-list; others lack the scope
        {"citizen": 403, "agency_a": 403, "agency_b": 403, "wallet": 403, **_REFUSED},
        body=lambda w, c: {"credential_configuration_id": "JZZM_sd_jwt"},
    ),
    "GET vci.issuer_metadata": Row("GET", _fixed("/.well-known/openid-credential-issuer"), public(200)),
    "GET vci.as_metadata": Row("GET", _fixed("/.well-known/oauth-authorization-server"), public(200)),
    "GET vci.vct": Row("GET", _fixed("/vct/JZZM"), public(200)),
    "POST vci.nonce": Row("POST", _fixed("/vci/nonce"), public(200)),
    "POST vci.token": Row("POST", _fixed("/vci/token"), public(400), data=lambda w, c: {"grant_type": "x"}),
    "GET vci.offer": Row("GET", _fixed("/vci/offers/no-such-offer"), public(404)),
    "GET vci.signin_offer": Row("GET", _fixed("/vci/signin-offers/JZZM"), public(200)),
    # -- issue 15 §2: the OpenID4VP verifier ------------------------------------------------------
    # any agency signs its own requests (its own key); a wallet needs no token; the counter page only
    # where YIWANG_CERTSTORE_VP_COUNTER_AGENCY is set (not here); a result only for its view key
    "POST vp_api.api_create": Row("POST", _fixed("/api/v1/vp/requests"), agency(201, b=201),
                                  body=lambda w, c: {"type": "JZZM", "claims": ["address"]}),
    "GET vp_api.api_result": Row("GET", _fixed("/api/v1/vp/requests/x/result"), agency(404, b=404)),
    "GET vp.request_object": Row("GET", _fixed("/vp/requests/no-such"), public(404)),
    "POST vp.response_uri": Row("POST", _fixed("/vp/responses/no-such"), public(400),
                                data=lambda w, c: {"vp_token": "{}", "state": "s"}),
    "GET vp.result": Row("GET", _fixed("/vp/results/no-such"), public(404)),
    "GET vp.counter": Row("GET", _fixed("/vp/counter"), public(404)),
    "POST vp.counter_create": Row("POST", _fixed("/vp/counter"), public(404), data=lambda w, c: {"csrf": "x"}),
    # our wallet as a holder: pages without sign-in (the credentials live in the browser); the request check
    # refuses anything but this service's own verifier requests
    "GET vp_holder.holder": Row("GET", _fixed("/wallet/holder"), public(200)),
    "GET vp_holder.present": Row("GET", _fixed("/wallet/present"), public(200)),
    "GET vp_holder.present_request": Row("GET", _fixed("/wallet/present/request?client_id=x&request_uri=y"), public(422)),
    # the holder receiving by sign-in (holder_issue.py): no holder client configured here (404: not enabled); the forwarder
    # needs the kept token's cookie, which only the callback sets
    "GET holder_issue.signin": Row("GET", _fixed("/wallet/vci/signin?type=JZZM"), public(404)),
    "GET holder_issue.callback": Row("GET", _fixed("/wallet/vci/callback?code=c&state=s"), public(404)),
    "POST holder_issue.credential": Row("POST", _fixed("/wallet/vci/credential"), public(401),
                                        body=lambda w, c: {"proof": "x.y.z"}),
}


# -- token kinds (issue 14) -------------------------------------------------------------------
# Every cell runs with each kind of token: "bearer" as before, "dpop" (the idp bound the token to
# a DPoP key; each request is `Authorization: DPoP` with a fresh proof: RFC 9449 §7). The cells
# are the same: binding changes who can use a token, never what it may do. The mTLS helper adds
# "mtls" (a certificate-bound token, the certificate forwarded by the TLS proxy).
TOKEN_KINDS = ("bearer", "dpop", "mtls")
_DPOP_KEY = DPoPKey()
# "mtls": the agencies' tokens carry cnf.x5t#S256 of this certificate (signed with the idp's key, as
# its token endpoint does after tls_client_auth); the citizens' are the idp's unbound tokens. Every
# request presents the certificate through the "TLS proxy" (the test client, trusted for the test).
_MTLS_PEM = self_signed_pem("matrix-agency")
_MTLS_X5T = base64.urlsafe_b64encode(hashlib.sha256(ssl.PEM_cert_to_DER_cert(_MTLS_PEM)).digest()).rstrip(b"=").decode()


def _bound_agency_token(w: World, client_id: str, scope: str, *, expired: bool = False) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": client_id, "aud": "certstore", "client_id": client_id, "scope": scope,
              "jti": f"mtls-{client_id}-{now}-{expired}-{time.monotonic_ns()}", "iat": now - (3600 if expired else 0),
              "exp": now - 1800 if expired else now + 300, "cnf": {"x5t#S256": _MTLS_X5T}}
    keyring = open_keyring(w.idp_services.settings.common.keys)
    return encode_jws(keyring.keyset("idp-token").active(), claims, typ="at+jwt")


def _trust_the_test_clients_as_tls_proxy(w: World, on: bool) -> None:
    """For "mtls", certstore and the idp believe their test clients (127.0.0.1) as the TLS proxy."""
    import dataclasses
    import ipaddress

    from idp.oauth.mtls import ForwardedCertificate, MtlsConfig

    proxies = (ipaddress.ip_network("127.0.0.1/32"),) if on else ()
    w.cs_services.settings = dataclasses.replace(w.cs_services.settings, mtls_proxies=proxies)
    edge = w.idp_app.wsgi_app
    if isinstance(edge, ForwardedCertificate):
        w.idp_app.wsgi_app = ForwardedCertificate(edge.app, MtlsConfig(proxies=proxies))


def _client_token(w: World, client_id: str, scope: str, how: str) -> str:
    if how == "mtls":
        return _bound_agency_token(w, client_id, scope)
    if how == "bearer":
        return w.client_token(client_id, scope)
    resp = w.idp.post("/token", data={"grant_type": "client_credentials", "scope": scope},
                      headers={**w.basic(client_id), "DPoP": _DPOP_KEY.proof("POST", f"{ISSUER}/token")})
    assert (resp.status_code, resp.get_json().get("token_type")) == (200, "DPoP"), resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def _citizen_token(w: World, rp: Any, scope: str, how: str, **kw: Any) -> str:
    if how in ("bearer", "mtls"):
        return str(w.citizen_tokens(rp, scope, **kw)["access_token"])
    query, verifier = authorize_code(w.idp, rp, scope=scope, **kw)
    resp = w.idp.post("/token", data={"grant_type": "authorization_code", "code": query["code"],
                                      "redirect_uri": rp.redirect_uri, "code_verifier": verifier},
                      headers={**rp.basic(), "DPoP": _DPOP_KEY.proof("POST", f"{ISSUER}/token")})
    assert (resp.status_code, resp.get_json().get("token_type")) == (200, "DPoP"), resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def _expired(w: World, client_id: str, scope: str, how: str) -> str:
    if how == "mtls":
        return _bound_agency_token(w, client_id, scope, expired=True)
    if how == "bearer":
        return expired_token(w, client_id, scope)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": client_id, "aud": "certstore", "client_id": client_id, "scope": scope,
              "jti": f"expired-dpop-{now}", "iat": now - 3600, "exp": now - 1800, "cnf": {"jkt": _DPOP_KEY.jkt}}
    keyring = open_keyring(w.idp_services.settings.common.keys)
    return encode_jws(keyring.keyset("idp-token").active(), claims, typ="at+jwt")


def _presenting(token: str | None, how: str, method: str, url: str) -> dict[str, str]:
    """The headers that present ``token`` to ``url`` (an absolute URL of the idp or certstore)."""
    if not token:
        return {}
    if how == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if how == "mtls":
        return {"Authorization": f"Bearer {token}", "X-Client-Cert": quote(_MTLS_PEM, safe="")}
    return {"Authorization": f"DPoP {token}", "DPoP": _DPOP_KEY.proof(method, url, access_token=token)}


def _tokens(w: World, how: str = "bearer") -> dict[str, str | None]:
    _trust_the_test_clients_as_tls_proxy(w, how == "mtls")
    both = "certs:issue certs:lookup"
    revoked = _client_token(w, "demo-psb", both, how)
    w.revoke("demo-psb", revoked)
    return {
        "agency_a": _client_token(w, "demo-psb", both, how),
        "agency_b": _client_token(w, "demo-amr", both, how),
        "citizen": _citizen_token(w, w.portal, "openid certs:read", how),
        "wallet": _citizen_token(w, w.wallet_rp, "openid profile id_number", how, share_id_number=True),
        "revoked": revoked,
        "expired": _expired(w, "demo-psb", both, how),
        "other_audience": _citizen_token(w, w.portal, "openid profile", how),
        "none": None,
    }


def _routes(app: Any) -> set[str]:
    return {
        f"{m} {rule.endpoint}"
        for rule in app.url_map.iter_rules()
        for m in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_row(world: World) -> None:
    routes = _routes(world.cs_app)
    assert routes - set(ROWS) == set(), "a route without a row in the matrix: say who may call it"
    assert set(ROWS) - routes == set(), "a row for a route that no longer exists"


@pytest.mark.parametrize("token_kind", TOKEN_KINDS)
def test_certstore_endpoints_by_token_kind(world: World, token_kind: str) -> None:
    tokens = _tokens(world, token_kind)
    failures: list[str] = []
    for name, row in sorted(ROWS.items()):
        assert set(row.expect) == set(KINDS), name
        cert = world.issue_for_a() if row.fresh else world.a_certificate
        url = row.path(world, cert)
        for kind in KINDS:
            headers = _presenting(tokens[kind], token_kind, row.method, CS_URL + url)
            kw: dict[str, Any] = {"headers": headers}
            if row.body is not None:
                kw["json"] = row.body(world, cert)
            if row.data is not None:
                kw["data"] = row.data(world, cert)
            resp = world.cs.open(url, method=row.method, **kw)
            text = resp.get_data().decode("utf-8", "replace")
            if resp.status_code != row.expect[kind]:
                failures.append(f"{name} as {kind}: {resp.status_code}, expected {row.expect[kind]} {text[:160]}")
            if resp.status_code >= 400 and resp.mimetype not in ("application/problem+json", "application/json", "text/html"):
                failures.append(f"{name} as {kind}: error answered as {resp.mimetype}")
            if row.a_only and kind == "agency_b" and cert in text:
                failures.append(f"{name} as agency_b: the answer names A's certificate")
            json_ok = resp.status_code == 200 and "json" in resp.mimetype
            if row.a_only and kind == "agency_a" and json_ok and row.method == "GET" and cert not in text:
                failures.append(f"{name} as agency_a: A's own certificate is missing")
        if row.fresh:
            # B's attempts changed nothing; A's own call did.
            status = world.cs_services.certificates.get(cert).status
            expected = "01" if row.expect["agency_a"] >= 400 else ("02" if "status" in name else "04")
            if status != expected:
                failures.append(f"{name}: certificate status {status}, expected {expected}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("token_kind", TOKEN_KINDS)
def test_idp_userinfo_and_introspection_by_token_kind(world: World, token_kind: str) -> None:
    tokens = _tokens(world, token_kind)
    userinfo = {"agency_a": 403, "agency_b": 403, "citizen": 200, "wallet": 200, "other_audience": 200,
                "revoked": 401, "expired": 401, "none": 401}
    # RFC 7662 §2.2: certstore learns about tokens meant for it (aud certstore, or its own), nothing else
    active = {"agency_a": True, "agency_b": True, "citizen": True, "wallet": True, "other_audience": False,
              "revoked": False, "expired": False}
    failures = []
    for kind in KINDS:
        token = tokens[kind]
        headers = _presenting(token, token_kind, "GET", f"{ISSUER}/userinfo")
        resp = world.idp.get("/userinfo", headers=headers)
        if resp.status_code != userinfo[kind]:
            failures.append(f"userinfo as {kind}: {resp.status_code}, expected {userinfo[kind]}")
        if resp.status_code == 200 and kind != "wallet" and "id_number" in resp.get_json():
            failures.append(f"userinfo as {kind}: released the ID number")
        resp = world.idp.post("/introspect", data={"token": token} if token else {}, headers=world.basic("certstore"))
        if token is None:
            if resp.status_code != 400:
                failures.append(f"introspect without a token: {resp.status_code}, expected 400")
            continue
        got = resp.get_json() if resp.status_code == 200 else None
        if got is None or got.get("active") is not active[kind]:
            failures.append(f"introspect {kind}: {resp.status_code} {got}, expected active={active[kind]}")
        elif not active[kind] and set(got) != {"active"}:
            failures.append(f"introspect {kind}: an inactive answer says more than active=false: {sorted(got)}")
    # and nobody introspects without authenticating as a client
    resp = world.idp.post("/introspect", data={"token": tokens["agency_a"]})
    if resp.status_code != 401:
        failures.append(f"introspect without client authentication: {resp.status_code}, expected 401")
    assert not failures, "\n".join(failures)


def test_rows_cover_every_api_path_of_the_openapi_document(world: World) -> None:
    """The OpenAPI document's bearer-protected operations are the matrix's agency and citizen rows."""
    doc = world.cs.get("/openapi.json").get_json()
    secured = {
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and op.get("security") and path.startswith("/api/")
    }
    rows = {
        (row.method, re.sub(r"/certificates/[^/]+", "/certificates/x", row.path(world, "x")).split("?")[0])
        for row in ROWS.values()
        if row.expect["none"] == 401 and row.expect["agency_a"] != 401
    }
    assert secured <= rows, sorted(secured - rows)
