"""CAS 3.0 front end (issue 21 §3), in process: login, gateway, renew, validation, attributes, logout.

The interoperability test with an independent client library (python-cas against
``idp serve``) is tests/idp/test_cas_interop.py; single logout both ways is here,
with the in-process job queue delivering to a local receiver.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from idp.cas.services import service_of
from idp.clients import ClientService, ClientSpec
from idp.errors import InvalidInput
from idp.oauth.subject import pairwise_sub
from tests.idp.logout_helpers import wait_until
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code, csrf_of, is_login_page, login, query_of

CAS = "{http://www.yale.edu/tp/cas}"
SERVICE = "https://portal.gov.example.cn/cas/callback"


class CasReceiver:
    """A CAS service's logout endpoint on 127.0.0.1: records each ``logoutRequest`` POSTed."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                receiver.requests.extend(parse_qs(body).get("logoutRequest", []))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cas-logout"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[CasReceiver]:
    r = CasReceiver()
    yield r
    r.stop()


@pytest.fixture
def cas_app(app_with: Any) -> Any:
    # Loopback logout URLs: the local receiver (the embedded demo's rule).
    return app_with(allow_loopback_callbacks=True, cas_ticket_seconds=2)


def add_service(services: Any, service: str = SERVICE, **kw: Any) -> Any:
    clients = ClientService(services.db, allow_loopback_callbacks=True)
    client, secret = clients.add(ClientSpec(name=kw.pop("name", "省级政务门户"), cas_service_url=service, **kw))
    assert secret is None
    return client


def cas_login(web: Any, service: str, **params: str) -> str:
    """/cas/login → (login page, consent page allowed) → the URL the browser is sent back to."""
    resp = web.get("/cas/login", query_string={"service": service, **params})
    for _ in range(8):
        assert resp.status_code in (302, 303), (resp.status_code, resp.get_data(as_text=True)[:300])
        loc = resp.headers["Location"]
        if loc.startswith(service):
            return str(loc)
        path = urlsplit(loc).path
        if path == "/login":
            resp = login(web, loc)
        elif path == "/cas/consent":
            page = web.get(loc)
            resp = web.post(loc, data={"csrf_token": csrf_of(page.get_data(as_text=True)), "decision": "allow"})
        else:
            resp = web.get(loc)
    raise AssertionError("the CAS login did not come back to the service")


def validate(web: Any, service: str, ticket: str, *, p3: bool = True, **extra: str) -> ET.Element:
    path = "/cas/p3/serviceValidate" if p3 else "/cas/serviceValidate"
    resp = web.get(path, query_string={"service": service, "ticket": ticket, **extra})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert resp.headers["Cache-Control"] == "no-store"
    return ET.fromstring(resp.get_data(as_text=True))  # noqa: S314 - our own server's answer


def failure_code(root: ET.Element) -> str | None:
    failure = root.find(f"{CAS}authenticationFailure")
    return None if failure is None else failure.get("code")


def attributes(root: ET.Element) -> dict[str, str]:
    node = root.find(f"{CAS}authenticationSuccess/{CAS}attributes")
    return {} if node is None else {child.tag.removeprefix(CAS): child.text or "" for child in node}


def ticket_of(location: str) -> str:
    return query_of(location)["ticket"]


# ------------------------------------------------------------------ login


def test_unregistered_or_non_matching_service_gets_an_error_page(cas_app: Any, idp_services: Any, rp: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    for service in ("https://evil.example.com/cb", SERVICE + "/more", SERVICE + "?next=/x", SERVICE.upper(),
                    rp.redirect_uri, ""):
        resp = web.get("/cas/login", query_string={"service": service, "gateway": "true"})
        assert resp.status_code == 400, service
        assert "Location" not in resp.headers
    assert web.get("/cas/login").status_code == 400


def test_login_gives_a_ticket_that_validates_once_for_its_service(cas_app: Any, idp_services: Any,
                                                                   citizen: Any) -> None:
    client = add_service(idp_services, first_party=True, scopes=("openid", "profile", "email"))
    web = cas_app.test_client()
    back = cas_login(web, SERVICE)
    ticket = ticket_of(back)
    assert ticket.startswith("ST-") and len(ticket) > 40
    root = validate(web, SERVICE, ticket)
    user = root.findtext(f"{CAS}authenticationSuccess/{CAS}user")
    runtime = cas_app.extensions["yiwang"]
    # the pairwise identifier of the service's sector (its host), never the public id
    assert user == runtime.provider.subject(client, citizen.public_id)
    assert user != citizen.public_id
    assert user == pairwise_sub("portal.gov.example.cn", citizen.public_id,
                                idp_services.keyring.secret("pairwise-salt"))
    attrs = attributes(root)
    assert attrs["name"] == "张三" and attrs["email"] == "zs@example.cn"
    assert "phone_number" not in attrs and "id_number" not in attrs
    assert attrs["isFromNewLogin"] == "true"  # the password was typed for this ticket
    # single use, whatever the service
    assert failure_code(validate(web, SERVICE, ticket)) == "INVALID_TICKET"


def test_serviceValidate_without_p3_has_no_attributes_and_json_is_offered(cas_app: Any, idp_services: Any,  # noqa: N802
                                                                          citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    root = validate(web, SERVICE, ticket_of(cas_login(web, SERVICE)), p3=False)
    assert root.find(f"{CAS}authenticationSuccess/{CAS}user") is not None
    assert root.find(f"{CAS}authenticationSuccess/{CAS}attributes") is None
    resp = web.get("/cas/p3/serviceValidate",
                   query_string={"service": SERVICE, "ticket": ticket_of(cas_login(web, SERVICE)), "format": "JSON"})
    body = json.loads(resp.get_data(as_text=True))
    success = body["serviceResponse"]["authenticationSuccess"]
    assert success["user"] and success["attributes"]["name"] == "张三"


def test_validation_failures_have_the_codes_of_the_specification(cas_app: Any, idp_services: Any,
                                                                  citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    other = "https://other.gov.example.cn/cas"
    add_service(idp_services, other, first_party=True, name="另一门户")
    web = cas_app.test_client()
    assert failure_code(validate(web, SERVICE, "")) == "INVALID_REQUEST"
    assert failure_code(validate(web, "", "ST-x")) == "INVALID_REQUEST"
    assert failure_code(validate(web, SERVICE, "ST-not-issued")) == "INVALID_TICKET"
    assert failure_code(validate(web, SERVICE, "PT-proxy")) == "INVALID_TICKET"
    ticket = ticket_of(cas_login(web, SERVICE))
    # presented by another service: refused, and the ticket is gone (CAS 3.0 §2.5.3)
    assert failure_code(validate(web, other, ticket)) == "INVALID_SERVICE"
    assert failure_code(validate(web, SERVICE, ticket)) == "INVALID_TICKET"
    # the description never echoes the ticket
    resp = web.get("/cas/serviceValidate", query_string={"service": SERVICE, "ticket": ticket})
    assert ticket not in resp.get_data(as_text=True)


def test_a_store_failure_is_internal_error(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    import redis

    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    ticket = ticket_of(cas_login(web, SERVICE))
    validator = cas_app.extensions["yiwang_cas"][1]

    def down(value: str | None) -> None:
        raise redis.exceptions.ConnectionError("Redis is away")

    validator.tickets.take = down
    resp = web.get("/cas/p3/serviceValidate", query_string={"service": SERVICE, "ticket": ticket, "format": "JSON"})
    body = json.loads(resp.get_data(as_text=True))
    assert body["serviceResponse"]["authenticationFailure"]["code"] == "INTERNAL_ERROR"
    assert "Redis" not in resp.get_data(as_text=True)


def test_ticket_expires(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    ticket = ticket_of(cas_login(web, SERVICE))
    time.sleep(2.2)  # cas_ticket_seconds=2 in this app
    assert failure_code(validate(web, SERVICE, ticket)) == "INVALID_TICKET"


def test_pgt_url_is_ignored_no_proxy_ticket(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    ticket = ticket_of(cas_login(web, SERVICE))
    root = validate(web, SERVICE, ticket, pgtUrl="https://portal.gov.example.cn/pgt")
    assert root.find(f"{CAS}authenticationSuccess/{CAS}user") is not None
    assert root.find(f"{CAS}authenticationSuccess/{CAS}proxyGrantingTicket") is None
    assert web.get("/cas/proxy", query_string={"pgt": "PGT-x", "targetService": SERVICE}).status_code == 404


def test_sso_session_gives_a_ticket_without_the_password(cas_app: Any, idp_services: Any, citizen: Any,
                                                         rp: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    authorize_code(web, rp)  # signed in at an OpenID portal
    resp = web.get("/cas/login", query_string={"service": SERVICE})
    assert resp.status_code == 302 and resp.headers["Location"].startswith(SERVICE + "?ticket=ST-")
    root = validate(web, SERVICE, ticket_of(resp.headers["Location"]))
    assert attributes(root)["isFromNewLogin"] == "false"  # single sign-on, no password here


def test_gateway_never_shows_a_login(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    resp = web.get("/cas/login", query_string={"service": SERVICE, "gateway": "true"})
    assert resp.status_code == 302 and resp.headers["Location"] == SERVICE  # no ticket, no login page
    cas_login(web, SERVICE)  # now signed in
    resp = web.get("/cas/login", query_string={"service": SERVICE, "gateway": "true"})
    assert resp.status_code == 302 and "ticket=ST-" in resp.headers["Location"]


def test_renew_asks_for_the_password_again(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    sso_ticket = ticket_of(cas_login(web, SERVICE))
    resp = web.get("/cas/login", query_string={"service": SERVICE, "renew": "true", "gateway": "true"})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/login"
    page = web.get(resp.headers["Location"])
    assert is_login_page(page) and "省级政务门户" in page.get_data(as_text=True)
    # the way back (server-side in the login flow) gives no ticket before the password is typed
    flow = cas_app.extensions["yiwang"].flows.get(query_of(resp.headers["Location"])["flow"])
    early = web.get(flow.return_to)
    assert early.status_code == 303 and urlsplit(early.headers["Location"]).path == "/login"
    after = login(web, resp.headers["Location"])
    back = web.get(after.headers["Location"])
    renewed = ticket_of(back.headers["Location"])
    root = validate(web, SERVICE, renewed, renew="true")
    assert attributes(root)["isFromNewLogin"] == "true"
    # a ticket from the SSO session is refused when the service asks for renew
    silent = ticket_of(web.get("/cas/login", query_string={"service": SERVICE}).headers["Location"])
    assert failure_code(validate(web, SERVICE, silent, renew="true")) == "INVALID_TICKET"
    assert failure_code(validate(web, SERVICE, sso_ticket, renew="true")) is None  # its own login was fresh


def test_renew_resume_link_replayed_later_without_a_login_asks_again(cas_app: Any, idp_services: Any,
                                                                     citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    cas_login(web, SERVICE)
    resp = web.get("/cas/login", query_string={"service": SERVICE, "renew": "true"})
    flow_login = resp.headers["Location"]
    back_to = login(web, flow_login).headers["Location"]  # /cas/login/resume?request=…
    # a second renew request: its own resume link, taken before any new password
    second = web.get("/cas/login", query_string={"service": SERVICE, "renew": "true"})
    assert urlsplit(second.headers["Location"]).path == "/login"
    first = web.get(back_to)
    assert "ticket=ST-" in first.headers["Location"]


# --------------------------------------------------------- attribute release


def test_id_number_only_with_registration_and_consent(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, scopes=("openid", "profile"), may_receive_id_number=True)
    web = cas_app.test_client()
    resp = web.get("/cas/login", query_string={"service": SERVICE})
    resp = login(web, resp.headers["Location"])
    resp = web.get(resp.headers["Location"])  # resume → the consent page (not first-party)
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/cas/consent"
    consent = resp.headers["Location"]
    page = web.get(consent).get_data(as_text=True)
    assert 'name="share_id_number"' in page
    # allowed without ticking the ID number
    resp = web.post(consent, data={"csrf_token": csrf_of(page), "decision": "allow"})
    attrs = attributes(validate(web, SERVICE, ticket_of(resp.headers["Location"])))
    assert attrs["name"] == "张三" and "id_number" not in attrs
    # the consent page comes back for what is still missing; ticked this time
    resp = web.get("/cas/login", query_string={"service": SERVICE})
    consent = resp.headers["Location"]
    page = web.get(consent).get_data(as_text=True)
    resp = web.post(consent, data={"csrf_token": csrf_of(page), "decision": "allow", "share_id_number": "yes"})
    attrs = attributes(validate(web, SERVICE, ticket_of(resp.headers["Location"])))
    assert attrs["id_number"] == citizen_id_number(idp_services, citizen)
    # the account page lists the service among the connected apps
    assert "省级政务门户" in web.get("/account").get_data(as_text=True)


def citizen_id_number(services: Any, citizen: Any) -> str:
    from tests.idp.oidc_helpers import ID_NUMBER

    return ID_NUMBER


def test_consent_denied_gives_no_ticket(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, scopes=("openid", "profile"))
    web = cas_app.test_client()
    resp = web.get("/cas/login", query_string={"service": SERVICE})
    resp = web.get(login(web, resp.headers["Location"]).headers["Location"])
    consent = resp.headers["Location"]
    page = web.get(consent).get_data(as_text=True)
    resp = web.post(consent, data={"csrf_token": csrf_of(page), "decision": "deny"})
    assert resp.status_code == 403 and "Location" not in resp.headers
    # and a consent post without the page's token is refused
    assert web.post(consent, data={"decision": "allow"}).status_code == 400


def test_registration_rules(idp_services: Any) -> None:
    clients = ClientService(idp_services.db, allow_loopback_callbacks=False)
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url="http://portal.example.cn/cas"))  # not https
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url=SERVICE, cas_logout_url="https://10.0.0.8/slo"))
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url=SERVICE, cas_logout_url="http://127.0.0.1:9/slo"))
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url=SERVICE, redirect_uris=["https://a.example.cn/cb"]))
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url=SERVICE, scopes=("openid", "id_number")))
    with pytest.raises(InvalidInput):
        clients.add(ClientSpec(name="x", cas_service_url=SERVICE, scopes=("certs:issue",)))
    client, _ = clients.add(ClientSpec(name="x", cas_service_url=SERVICE,
                                       cas_logout_url="https://portal.gov.example.cn/slo"))
    assert client.grant_types == [] and client.redirect_uris == [] and client.secret_hash is None
    assert service_of(client) is not None and service_of(client).logout_url == "https://portal.gov.example.cn/slo"


def test_cli_registers_a_cas_service(yiwang_env: dict[str, str]) -> None:
    from idp.cli import cli

    env = {**yiwang_env, "YIWANG_ISSUER": "http://127.0.0.1:5000"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    out = runner.invoke(cli, ["clients", "add", "--name", "CAS 门户", "--cas-service", SERVICE,
                              "--cas-logout-url", "http://127.0.0.1:8999/slo", "--scope", "profile", "--json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["attributes"]["cas"] == {"service_url": SERVICE, "logout_url": "http://127.0.0.1:8999/slo"}
    assert data["grant_types"] == [] and data["client_secret"] is None
    bad = runner.invoke(cli, ["clients", "add", "--name", "x", "--cas-service", "ftp://x.example.cn/"], env=env)
    assert bad.exit_code != 0


# ------------------------------------------------------------------ logout


def test_a_ticket_of_an_ended_session_is_refused(cas_app: Any, idp_services: Any, citizen: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    ticket = ticket_of(cas_login(web, SERVICE))
    web.get("/cas/logout")
    assert failure_code(validate(web, SERVICE, ticket)) == "INVALID_TICKET"


def test_cas_logout_ends_the_sso_session_for_the_openid_portals(cas_app: Any, idp_services: Any, citizen: Any,
                                                                rp: Any) -> None:
    add_service(idp_services, first_party=True)
    web = cas_app.test_client()
    authorize_code(web, rp)
    cas_login(web, SERVICE)
    resp = web.get("/cas/logout", query_string={"service": SERVICE})
    assert resp.status_code == 303 and resp.headers["Location"] == SERVICE
    # the OpenID portal's next authorize asks for the password again
    again = web.get("/authorize", query_string={"response_type": "code", "client_id": rp.client_id,
                                                "redirect_uri": rp.redirect_uri, "scope": "openid"})
    assert is_login_page(again)
    # an unregistered service after logout is not redirected to
    resp = web.get("/cas/logout", query_string={"service": "https://evil.example.com/"})
    assert resp.status_code == 200 and "Location" not in resp.headers


def test_single_logout_from_the_openid_end_session(cas_app: Any, idp_services: Any, citizen: Any, rp: Any,
                                                   receiver: CasReceiver) -> None:
    from cas import CASClientV3

    add_service(idp_services, first_party=True, cas_logout_url=receiver.url)
    web = cas_app.test_client()
    authorize_code(web, rp)
    ticket = ticket_of(cas_login(web, SERVICE))
    runtime = cas_app.extensions["yiwang"]
    runtime.logout.start_worker(sweep=False)
    # signing out at the OpenID portal's end-session endpoint (confirmed on the idp's page)
    page = web.get("/logout").get_data(as_text=True)
    web.post("/logout", data={"csrf_token": csrf_of(page), "decision": "logout"})
    wait_until(lambda: receiver.requests)
    (request,) = receiver.requests
    assert CASClientV3.verify_logout_request(request, ticket)  # python-cas reads its SessionIndex
    assert "@NOT_USED@" in request
    rows = runtime.logout.service.deliveries()
    assert any(r.status == "delivered" and r.uri == receiver.url for r in rows)


def test_single_logout_of_a_session_that_ended_while_the_database_was_down(yiwang_env: dict[str, str],
                                                                          receiver: CasReceiver) -> None:
    """The CAS tickets travel with the parked session end and are delivered once the database is back."""
    from cas import CASClientV3

    from tests.idp.logout_helpers import make_stack, seed
    from tests.idp.test_logout_delivery import _DownDatabase

    stack = make_stack({**yiwang_env, "YIWANG_IDP_ALLOW_LOOPBACK_CALLBACKS": "true"}, create_schema=True)
    try:
        citizen = seed(stack.database, backchannel={})
        clients = ClientService(stack.database, allow_loopback_callbacks=True)
        service, _ = clients.add(ClientSpec(name="CAS", cas_service_url=SERVICE, cas_logout_url=receiver.url))
        session, _ = stack.sessions.create(str(citizen), 1_800_000_000, "urn:yiwang:acr:pwd", ["pwd"], "browser",
                                           "127.0.0.1", "UA")
        stack.sessions.add_cas_ticket(session.sid, service.client_id, "ST-first")
        stack.sessions.add_cas_ticket(session.sid, service.client_id, "ST-second")
        logout = stack.logout.service
        real, logout.database = logout.database, _DownDatabase()
        ended = stack.sessions.end(session.sid, "logout")
        assert ended is not None and set(ended.cas_tickets) == {(service.client_id, "ST-first"),
                                                                (service.client_id, "ST-second")}
        logout.database = real
        stack.logout.start_worker(sweep=False)
        logout.sweep()
        wait_until(lambda: len(receiver.requests) == 2)
        for ticket in ("ST-first", "ST-second"):
            assert any(CASClientV3.verify_logout_request(r, ticket) for r in receiver.requests)
    finally:
        stack.close()


def test_an_openid_row_whose_sub_looks_like_a_ticket_still_gets_a_logout_token(yiwang_env: dict[str, str]) -> None:
    """A pairwise sub may begin with "ST-": whether a row is CAS is the client's registration, not the sub."""
    from idp.models import LogoutDelivery, utcnow
    from tests.idp.logout_helpers import LocalRP, make_stack, seed

    rp = LocalRP().start()
    stack = make_stack({**yiwang_env, "YIWANG_IDP_ALLOW_LOOPBACK_CALLBACKS": "true"}, create_schema=True)
    try:
        seed(stack.database, backchannel={"portal-a": rp.uri})
        with stack.database.session() as db:
            row = LogoutDelivery(sid="s1", client_id="portal-a", sub="ST-looks-like-a-ticket", uri=rp.uri,
                                 status="pending", attempts=0, reason="logout", created_at=utcnow(),
                                 next_attempt_at=utcnow())
            db.add(row)
            db.flush()
            delivery_id = row.id
        stack.logout.service.attempt(str(delivery_id))
        assert len(rp.tokens) == 1  # a logout_token, not a logoutRequest
    finally:
        stack.close()
        rp.stop()
