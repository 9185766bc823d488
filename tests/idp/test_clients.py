"""Relying-party registration: secrets, redirect URIs, scopes, sectors, deletion."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa

from idp.clients import ClientSpec, validate_redirect_uri
from idp.errors import InvalidInput, NotFound
from idp.models import AuditEvent, Client, Consent, TokenRecord, utcnow
from idp.services import Services
from tests.idp.data_helpers import *  # noqa: F403
from tests.idp.data_helpers import make_id


def _add(services: Services, **kw: object) -> tuple[Client, str | None]:
    spec = ClientSpec(**{"name": "portal", "redirect_uris": ["https://portal.example.cn/cb"], **kw})  # type: ignore[arg-type]
    return services.clients.add(spec)


def test_confidential_client_gets_a_256_bit_secret_stored_as_sha256(services: Services) -> None:
    client, secret = _add(services)
    assert secret is not None and len(secret) >= 43  # token_urlsafe(32): 256 bits
    stored = services.clients.show(client.client_id)
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.check_client_secret(secret)
    assert not stored.check_client_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert not stored.check_client_secret("")
    assert not stored.check_client_secret(None)
    assert stored.token_endpoint_auth_method == "client_secret_basic"  # noqa: S105
    assert stored.check_endpoint_auth_method("client_secret_basic", "token")
    assert not stored.check_endpoint_auth_method("client_secret_post", "token")
    assert not stored.check_endpoint_auth_method("none", "introspection")
    assert stored.grant_types == ["authorization_code", "refresh_token"]
    assert stored.check_response_type("code") and not stored.check_response_type("token")
    assert stored.check_grant_type("refresh_token") and not stored.check_grant_type("password")
    assert stored.get_default_redirect_uri() == "https://portal.example.cn/cb"


def test_rotating_the_secret_replaces_it_at_once(services: Services) -> None:
    client, old = _add(services)
    new = services.clients.rotate_secret(client.client_id)
    assert new != old
    stored = services.clients.show(client.client_id)
    assert stored.check_client_secret(new) and not stored.check_client_secret(old)
    assert stored.secret_rotated_at is not None
    public, secret = _add(services, public=True, redirect_uris=["com.example.app:/cb"])
    assert secret is None and public.secret_hash is None
    assert not public.check_client_secret("")
    with pytest.raises(InvalidInput, match="no secret"):
        services.clients.rotate_secret(public.client_id)
    with pytest.raises(NotFound):
        services.clients.rotate_secret("no-such-client")


def test_secrets_never_reach_the_audit_log(services: Services) -> None:
    client, secret = _add(services)
    new = services.clients.rotate_secret(client.client_id)
    services.clients.delete(client.client_id)
    with services.db.session() as s:
        events = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.kind for e in events] == [
        "admin.client_added",
        "admin.client_secret_rotated",
        "admin.client_deleted",
    ]
    dump = json.dumps([[e.actor, e.subject, e.detail] for e in events])
    assert secret is not None and secret not in dump and new not in dump
    assert hashlib.sha256(new.encode()).hexdigest() not in dump
    assert services.audit.verify().intact


@pytest.mark.parametrize(
    "uri",
    [
        "https://portal.example.cn/cb",
        "https://portal.example.cn:8443/cb?x=1",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://localhost:3000/cb",
        "cn.gov.app:/oauth2redirect",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("/cb", "absolute"),
        ("portal.example.cn/cb", "absolute"),
        ("https://portal.example.cn/cb#frag", "fragment"),
        ("http://portal.example.cn/cb", "loopback"),
        ("http://10.0.0.1/cb", "loopback"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,hi", "scheme"),
        ("myapp:/cb", "reverse domain"),
        ("https:///cb", "no host"),
        ("https://portal.example.cn/ cb", "white space"),
        ("https://portal.example.cn:99999/cb", "not a valid URI"),
    ],
)
def test_unacceptable_redirect_uris(uri: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        validate_redirect_uri(uri)


def test_redirect_uri_matching_is_exact_except_the_loopback_port(services: Services) -> None:
    client, _ = _add(
        services,
        public=True,
        redirect_uris=["https://portal.example.cn/cb?a=1", "http://127.0.0.1/native", "cn.example.portal.app:/cb"],
        sector_identifier="portal.example.cn",
    )
    assert client.check_redirect_uri("https://portal.example.cn/cb?a=1")
    for wrong in (
        "https://portal.example.cn/cb?a=2",
        "https://portal.example.cn/cb?a=1&b=2",
        "https://portal.example.cn/cb",
        "https://portal.example.cn/cb/?a=1",
        "https://PORTAL.example.cn/cb?a=1",
        "https://portal.example.cn.evil.example/cb?a=1",
        "https://portal.example.cn:443/cb?a=1",
        "http://127.0.0.1:5000/other",
        "http://localhost:5000/native",
        "cn.example.portal.app:/cb/../x",
        "",
        None,
    ):
        assert not client.check_redirect_uri(wrong), wrong
    # RFC 8252 §7.3: the loopback port is chosen by the app at run time
    assert client.check_redirect_uri("http://127.0.0.1:51234/native")
    assert client.check_redirect_uri("http://127.0.0.1/native")
    assert client.check_redirect_uri("cn.example.portal.app:/cb")


def test_confidential_clients_may_not_use_private_schemes_or_none(services: Services) -> None:
    with pytest.raises(InvalidInput, match="public"):
        _add(services, redirect_uris=["cn.gov.app:/cb"])
    with pytest.raises(InvalidInput, match="none"):
        _add(services, auth_method="none")
    with pytest.raises(InvalidInput, match="client_credentials"):
        _add(services, public=True, grant_types=["client_credentials"])
    with pytest.raises(InvalidInput, match="redirect-uri"):
        _add(services, redirect_uris=[])
    machine, secret = _add(services, redirect_uris=[], grant_types=["client_credentials"])
    assert secret and machine.response_types == [] and machine.check_grant_type("client_credentials")


def test_registration_refuses_scopes_the_policy_would_never_grant(services: Services) -> None:
    # idp.oauth.scopes.decide would refuse each of these at every token request (issue 11 §1).
    with pytest.raises(InvalidInput, match="not a scope this server knows"):
        _add(services, scopes=["openid", "anything:else"])
    with pytest.raises(InvalidInput, match="agency scope 'certs:lookup' needs a grant"):
        _add(services, scopes=["openid", "certs:lookup"])  # a portal: code + refresh only
    with pytest.raises(InvalidInput, match="citizen scope 'openid' needs a grant"):
        _add(services, redirect_uris=[], grant_types=["client_credentials"], scopes=["openid", "certs:issue"])
    with pytest.raises(InvalidInput, match="agency scope 'certs:issue' needs a grant"):
        _add(services, public=True, redirect_uris=["cn.gov.app:/cb"], scopes=["openid", "certs:issue"])
    agency, _ = _add(services, redirect_uris=[], grant_types=["client_credentials"], scopes=["certs:issue"])
    assert agency.scopes == ["certs:issue"]
    machine, _ = _add(services, redirect_uris=[], grant_types=["client_credentials"])
    assert machine.scopes == []  # no OIDC defaults without a citizen grant
    portal, _ = _add(services, scopes=["openid", "certs:read", "certs:read:BYZS"])
    assert portal.scopes == ["openid", "certs:read", "certs:read:BYZS"]


def test_pairwise_sector_comes_from_the_redirect_host_or_must_be_given(services: Services) -> None:
    one, _ = _add(services)
    assert one.subject_type == "pairwise" and one.sector_identifier == "portal.example.cn"
    with pytest.raises(InvalidInput, match="sector-identifier"):
        _add(services, redirect_uris=["https://a.example.cn/cb", "https://b.example.cn/cb"])
    two, _ = _add(
        services,
        redirect_uris=["https://a.example.cn/cb", "https://b.example.cn/cb"],
        sector_identifier="https://Example.CN/",
    )
    assert two.sector_identifier == "example.cn"
    with pytest.raises(InvalidInput, match="host name"):
        _add(services, sector_identifier="not a host")
    public_sub, _ = _add(services, subject_type="public")
    assert public_sub.subject_type == "public"


def test_id_number_scope_needs_the_registration_flag(services: Services) -> None:
    with pytest.raises(InvalidInput, match="may-receive-id-number"):
        _add(services, scopes=["openid", "id_number"])
    plain, _ = _add(services)
    assert "id_number" not in plain.scopes and not plain.allows_id_number()
    allowed, _ = _add(services, may_receive_id_number=True)
    assert "id_number" in allowed.scopes and allowed.allows_id_number()
    assert allowed.get_allowed_scope("openid id_number bogus openid") == "openid id_number"
    assert plain.get_allowed_scope("openid id_number") == "openid"
    with pytest.raises(InvalidInput, match="scope"):
        _add(services, scopes=["open id"])


def test_private_key_jwt_needs_public_keys_only(services: Services) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    private_jwk = key.as_dict(private=True)
    public_jwk = key.as_dict(private=False)
    with pytest.raises(InvalidInput, match="cannot be read"):
        _add(services, auth_method="private_key_jwt", jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "zz"}]})
    with pytest.raises(InvalidInput, match="--jwks"):
        _add(services, auth_method="private_key_jwt")
    with pytest.raises(InvalidInput, match="public keys only"):
        _add(services, auth_method="private_key_jwt", jwks={"keys": [private_jwk]})
    client, secret = _add(services, auth_method="private_key_jwt", jwks={"keys": [public_jwk]})
    assert secret is None and client.jwks == {"keys": [public_jwk]}
    assert client.check_endpoint_auth_method("private_key_jwt", "token")


def test_logout_uris_are_checked(services: Services) -> None:
    with pytest.raises(InvalidInput, match="back-channel"):
        _add(services, backchannel_logout_uri="http://portal.example.cn/logout")
    with pytest.raises(InvalidInput, match="front-channel"):
        _add(services, frontchannel_logout_uri="https://other.example.cn/logout")
    client, _ = _add(
        services,
        backchannel_logout_uri="https://backend.example.cn/bc-logout",
        frontchannel_logout_uri="https://portal.example.cn/fc-logout",
        post_logout_redirect_uris=["https://portal.example.cn/bye"],
    )
    assert client.check_post_logout_redirect_uri("https://portal.example.cn/bye")
    assert not client.check_post_logout_redirect_uri("https://portal.example.cn/bye?x=1")


def test_delete_removes_the_client_with_its_consents_and_tokens(services: Services) -> None:
    client, _ = _add(services)
    other, _ = _add(services, name="other")
    citizen = services.accounts.add(make_id("11010519491231002"), "张三", "correct horse")
    with services.db.session() as s:
        for c in (client, other):
            s.add(Consent(citizen_id=citizen.id, client_id=c.client_id, scopes=["openid"]))
            s.add(
                TokenRecord(
                    jti=f"jti-{c.client_id}",
                    kind="refresh",
                    client_id=c.client_id,
                    citizen_id=citizen.id,
                    expires_at=utcnow(),
                )
            )
    services.clients.delete(client.client_id)
    assert services.clients.get(client.client_id) is None
    with pytest.raises(NotFound):
        services.clients.delete(client.client_id)
    with services.db.session() as s:
        assert s.scalars(sa.select(Consent.client_id)).all() == [other.client_id]
        assert s.scalars(sa.select(TokenRecord.client_id)).all() == [other.client_id]
    assert [c.client_id for c in services.clients.list()] == [other.client_id]


def test_generated_client_ids_are_letters_and_digits(services: Services) -> None:
    ids = {_add(services, name=f"c{i}")[0].client_id for i in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 24 and i.isalnum() and i.isascii() for i in ids)


def test_fixed_client_ids_are_unique_and_well_formed(services: Services) -> None:
    client, _ = _add(services, client_id="demo-portal")
    assert client.client_id == "demo-portal"
    with pytest.raises(InvalidInput, match="already exists"):
        _add(services, client_id="demo-portal")
    with pytest.raises(InvalidInput, match="client id"):
        _add(services, client_id="bad id")
    assert services.clients.get("x" * 65) is None
