"""certstore as a resource server (issue 11): it checks for itself.

* a revoked token, or one whose SSO session ended, is refused within the
  stated bound (introspection, positive answers cached ``CACHE_SECONDS``);
* ``certs:lookup`` in a token opens nothing unless certstore's own
  allow-list names the client, and only for the types listed there;
* an agency acts as its own issuer only, with its own client-credentials token;
* malformed input is a 4xx problem JSON, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from certstore.errors import ServiceUnavailable
from certstore.tokens import IntrospectionCache

from .conftest import DEMO_REQUESTS, PERSON_ID
from .idp_world import *  # noqa: F403 (the world fixture)
from .idp_world import CACHE_SECONDS, World


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _introspections(w: World) -> int:
    return sum(1 for _m, path in w.adapter.calls if path == "/introspect")


# -- finding 7: revocation and session end reach certstore within the bound ------------------


def test_a_revoked_agency_token_is_refused_within_the_bound(world: World) -> None:
    token = world.client_token("demo-psb", "certs:issue")
    assert world.cs.get("/api/v1/certificates", headers=_auth(token)).status_code == 200
    before = _introspections(world)
    world.revoke("demo-psb", token)
    # Within the bound a cached positive answer may still serve (no idp round trip per request) …
    world.clock.now += CACHE_SECONDS - 1
    assert world.cs.get("/api/v1/certificates", headers=_auth(token)).status_code == 200
    assert _introspections(world) == before
    # … and once the bound has passed, certstore asks again and refuses.
    world.clock.now += 2
    resp = world.cs.get("/api/v1/certificates", headers=_auth(token))
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json" and resp.get_json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    # the refusal sticks without asking the idp again
    calls = _introspections(world)
    assert world.cs.get("/api/v1/certificates", headers=_auth(token)).status_code == 401
    assert _introspections(world) == calls


def test_a_token_revoked_before_first_use_is_refused_at_once(world: World) -> None:
    token = world.client_token("demo-amr", "certs:issue")
    world.revoke("demo-amr", token)
    resp = world.cs.get("/api/v1/certificates", headers=_auth(token))
    assert resp.status_code == 401 and resp.get_json()["code"] == "invalid_token"


def test_the_end_of_the_citizens_session_reaches_certstore(world: World) -> None:
    tokens = world.citizen_tokens(world.portal, "openid certs:read")
    access = tokens["access_token"]
    resp = world.cs.get("/api/v1/me/certificates?purpose=rental", headers=_auth(access))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert [c["identifier"] for c in resp.get_json()["certificates"]] == [world.a_certificate]
    # the citizen signs out at the idp (RP-Initiated Logout): the session's tokens are revoked
    world.idp.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    world.clock.now += CACHE_SECONDS + 1
    resp = world.cs.get("/api/v1/me/certificates", headers=_auth(access))
    assert resp.status_code == 401 and resp.get_json()["code"] == "invalid_token"


class _Down:
    def introspect(self, token: str) -> Any:
        raise ServiceUnavailable("the identity provider cannot be asked about the token")


def test_when_the_idp_cannot_be_asked_certstore_refuses_rather_than_trusts(world: World) -> None:
    token = world.client_token("demo-psb", "certs:issue")
    world.cs_services.tokens.introspection = IntrospectionCache(_Down(), positive_ttl=CACHE_SECONDS)
    resp = world.cs.get("/api/v1/certificates", headers=_auth(token))
    assert resp.status_code == 503 and resp.mimetype == "application/problem+json"


def test_the_cache_keeps_verdicts_not_id_numbers(world: World) -> None:
    tokens = world.citizen_tokens(world.portal, "openid certs:read")
    assert world.cs.get("/api/v1/me/certificates", headers=_auth(tokens["access_token"])).status_code == 200
    cache = world.cs_services.tokens.introspection
    assert cache is not None
    assert PERSON_ID not in repr(cache._entries) and tokens["access_token"] not in repr(cache._entries)


# -- finding 1: certstore's own allow-list, every agency call bound to its own issuer ---------


def test_the_lookup_scope_alone_opens_nothing(world: World) -> None:
    body = {"id_number": PERSON_ID, "purpose": "residence check"}
    # B is registered for certs:lookup at the idp, so its token carries the scope …
    b = world.client_token("demo-amr", "certs:lookup")
    resp = world.cs.post("/api/v1/lookup", json=body, headers=_auth(b))
    # … but certstore's allow-list does not name it.
    assert resp.status_code == 403 and resp.get_json()["code"] == "not_allowed"
    assert "certificates" not in resp.get_json()
    a = world.client_token("demo-psb", "certs:lookup")
    resp = world.cs.post("/api/v1/lookup", json=body, headers=_auth(a))
    assert resp.status_code == 200
    assert [c["identifier"] for c in resp.get_json()["certificates"]] == [world.a_certificate]
    # only the types certstore lists for the client
    resp = world.cs.post("/api/v1/lookup", json={**body, "type": "YYZZ"}, headers=_auth(a))
    assert resp.status_code == 403 and resp.get_json()["code"] == "type_not_allowed"


def test_agency_b_cannot_act_on_agency_a_certificates(world: World) -> None:
    b = _auth(world.client_token("demo-amr", "certs:issue"))
    ident = world.a_certificate
    for path in ("", "/pdf", "/qr.png", "/qr.svg"):
        resp = world.cs.get(f"/api/v1/certificates/{ident}{path}", headers=b)
        assert resp.status_code in (403, 404) and ident not in resp.get_data(as_text=True), path
    listed = world.cs.get("/api/v1/certificates", headers=b).get_json()["certificates"]
    assert ident not in {c["identifier"] for c in listed}
    resp = world.cs.post(f"/api/v1/certificates/{ident}/status", json={"action": "revoke", "reason": "x"}, headers=b)
    assert resp.status_code in (403, 404)
    resp = world.cs.post(f"/api/v1/certificates/{ident}/versions", json=DEMO_REQUESTS["JZZM"]["body"], headers=b)
    assert resp.status_code in (403, 404)
    # issuing in A's name, or a type only A issues, is refused
    resp = world.cs.post("/api/v1/certificates", json={**DEMO_REQUESTS["JZZM"]["body"], "issuer": DEMO_REQUESTS["JZZM"]["issuer"]}, headers=b)
    assert resp.status_code == 403
    resp = world.cs.post("/api/v1/certificates", json=DEMO_REQUESTS["JZZM"]["body"], headers=b)
    assert resp.status_code == 403
    assert world.cs_services.certificates.get(ident).status == "01"  # nothing changed


def test_a_citizen_token_of_an_agency_client_does_not_act_as_the_agency(client: Any, mint: Any) -> None:
    # An agency client that also signs citizens in holds tokens about a citizen: never an agency token.
    for claims in ({"sub": "pairwise-citizen"}, {"sid": "s-1"}, {"act": {"sub": "clerk-7"}}):
        token = mint("demo-psb", scope="certs:issue", **claims)
        resp = client.get("/api/v1/certificates", headers=_auth(token))
        assert resp.status_code == 403 and resp.get_json()["code"] == "not_an_agency_token", claims


# -- finding 5: malformed input is a 4xx problem JSON --------------------------------------------


def _allow_lookup(client: Any) -> None:
    services = client.application.extensions["certstore"]
    services.settings = services.settings.with_(lookup_clients={"demo-psb": None})


_DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/verify", '{"text": ' + _DEEP + "}", "body"),
        ("post", "/api/v1/verify", _DEEP, "body"),
        ("post", "/api/v1/verify", '{"text": 5}', "text"),
        ("post", "/api/v1/verify", '{"text": "x", "more": 1}', "more"),
        ("post", "/api/v1/verify", b'{"text": "\xff"}', "body"),
        ("post", "/api/v1/lookup", '{"id_number": "' + PERSON_ID + '", "purpose": "p", "type": ["JZZM"]}', "type"),
        ("post", "/api/v1/lookup", '{"id_number": "' + PERSON_ID + '", "purpose": "p", "type": {"a": 1}}', "type"),
        ("post", "/api/v1/lookup", '{"id_number": 11010519491231002, "purpose": "p"}', "id_number"),
        ("post", "/api/v1/lookup", '{"id_number": "' + PERSON_ID + '", "purpose": ["p"]}', "purpose"),
        ("post", "/api/v1/lookup", '{"id_number": "' + PERSON_ID + '", "purpose": ' + _DEEP + "}", "body"),
        ("post", "/api/v1/certificates", '{"type": ' + _DEEP + "}", "body"),
        ("post", "/api/v1/certificates", '{"type": ["JZZM"], "holder_code": "x", "holder_name": "y"}', "type"),
        ("get", "/api/v1/certificates?offset=" + str(10**30), None, "offset"),
        ("get", "/api/v1/certificates?offset=-1", None, "offset"),
        ("get", "/api/v1/certificates?limit=" + "9" * 40, None, "limit"),
        ("get", "/api/v1/certificates?limit=1e3", None, "limit"),
        ("get", "/api/v1/certificates?offset=%C2%B2", None, "offset"),
        # U+0000 reaches no text column (PostgreSQL refuses it with an error, not a 4xx).
        ("get", "/api/v1/certificates?type=a%00b", None, "type"),
        ("post", "/api/v1/verify", '{"text": "a\\u0000b"}', "body"),
        ("post", "/api/v1/certificates", '{"type": "JZZM", "holder_code": "x", "holder_name": "a\\u0000"}', "body"),
    ],
)
def test_malformed_input_is_a_4xx_problem(
    client: Any, mint: Any, method: str, path: str, body: str | bytes | None, field: str
) -> None:
    _allow_lookup(client)
    scope = "certs:lookup" if "lookup" in path else "certs:issue"
    headers = {**_auth(mint("demo-psb", scope=scope)), "Content-Type": "application/json"}
    resp = getattr(client, method)(path, data=body, headers=headers)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["field"] == field
    assert PERSON_ID not in resp.get_data(as_text=True)


def test_status_changes_take_typed_members(client: Any, mint: Any, services: Any) -> None:
    from certstore.service import IssueRequest

    req = DEMO_REQUESTS["JZZM"]
    ident = services.certificates.issue(IssueRequest.from_json(req["body"]), agency_uscc=req["issuer"]).certificate.identifier
    headers = _auth(mint("demo-psb"))
    for body, field in (({"action": ["revoke"], "reason": "x"}, "action"), ({"action": "revoke", "reason": {"a": 1}}, "reason"),
                        ({"action": "revoke", "reason": "x", "by": "me"}, "by")):
        resp = client.post(f"/api/v1/certificates/{ident}/status", json=body, headers=headers)
        assert resp.status_code == 422 and resp.get_json()["field"] == field, resp.get_json()
    assert services.certificates.get(ident).status == "01"


def test_json_bodies_are_bounded_in_size(client: Any) -> None:
    big = json.dumps({"text": "x" * (300 * 1024)})
    resp = client.post("/api/v1/verify", data=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.mimetype == "application/problem+json"
