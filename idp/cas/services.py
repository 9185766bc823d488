"""CAS services: a client registration of its own type, and matching a ``service`` to it.

A CAS service is a :class:`~idp.models.Client` whose ``attributes["cas"]`` is
``{"service_url": …, "logout_url": … | None}``: registered with
``idp clients add --cas-service URL [--cas-logout-url URL]``
(:func:`idp.clients.registration.build_client` calls :func:`cas_registration`).
It has no grant types, no redirect URIs and no secret: CAS does not
authenticate services, the registered service URL is what a ticket is bound
to. The attributes released are the claims of its registered scopes
(:mod:`.validation`).

The ``service`` parameter must equal the registered URL exactly, as redirect
URIs do (OAuth 2.0 Security BCP §4.1.3): no prefix or pattern match, so a
ticket can never be sent to a URL the operator did not register.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..clients.uris import Resolver, resolve_host, validate_logout_uri, validate_redirect_uri
from ..errors import InvalidInput
from ..models import Client

__all__ = ["CAS_ATTRIBUTE", "CasService", "cas_registration", "service_of", "find_service", "build_cas_client"]

CAS_ATTRIBUTE = "cas"
"""The key of ``Client.attributes`` that makes a client a CAS service."""


@dataclass(frozen=True)
class CasService:
    """The CAS view of a client registration."""

    client_id: str
    service_url: str
    logout_url: str | None


def cas_registration(service_url: str, logout_url: str | None, *, allow_loopback: bool,
                     resolve: Resolver = resolve_host) -> dict[str, Any]:
    """The ``attributes["cas"]`` value for a service, or :class:`InvalidInput`.

    The service URL is where tickets go in the citizen's browser: the redirect
    URI rules, without private-use schemes (https; http only on loopback).
    The logout URL is called by the idp itself: the back-channel logout URI
    rules (https to a public host; loopback only in the embedded demo).
    """
    try:
        url = validate_redirect_uri(service_url, allow_private_scheme=False)
    except InvalidInput as e:
        raise InvalidInput(f"CAS service URL: {e}") from None
    logout = None
    if logout_url:
        logout = validate_logout_uri(logout_url, "CAS logout URL", allow_loopback=allow_loopback, resolve=resolve)
    return {"service_url": url, "logout_url": logout}


def service_of(client: Any) -> CasService | None:
    """The CAS service ``client`` is, or ``None`` (an OAuth client gets no CAS tickets)."""
    if client is None:
        return None
    data = client.attribute(CAS_ATTRIBUTE) if hasattr(client, "attribute") else None
    if not isinstance(data, dict) or not isinstance(data.get("service_url"), str):
        return None
    logout = data.get("logout_url")
    return CasService(client.client_id, data["service_url"], logout if isinstance(logout, str) else None)


def find_service(db: Any, service_url: str | None) -> Client | None:
    """The CAS service registered for exactly ``service_url``, or ``None``."""
    if not service_url or len(service_url) > 2000 or not service_url.isprintable():
        return None
    with db.session() as s:
        # Few clients, read at CAS login only: the two columns of each, compared
        # here on the decoded JSON (the same on SQLite and PostgreSQL).
        for client_id, attributes in s.execute(sa.select(Client.client_id, Client.attributes)).all():
            data = (attributes or {}).get(CAS_ATTRIBUTE)
            if isinstance(data, dict) and data.get("service_url") == service_url:
                found: Client | None = s.get(Client, client_id)
                if found is not None:
                    s.expunge(found)
                return found
    return None


_OAUTH_ONLY = ("redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri", "frontchannel_logout_uri",
               "grant_types", "jwks", "jwks_uri", "auth_method", "web_origins", "refresh_idle_seconds",
               "refresh_absolute_seconds", "tls_subject_dn", "tls_san_dns", "tls_san_uri", "tls_san_email",
               "tls_certificates", "tls_bound_tokens", "profile", "dpop_bound_access_tokens")
"""ClientSpec options of OAuth clients (read with ``getattr``: a CAS service refuses each one given)."""
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def build_cas_client(spec: Any, *, allow_loopback: bool, resolve: Resolver = resolve_host) -> Client:
    """The :class:`Client` row of a CAS service (``ClientSpec`` with ``cas_service_url``), or :class:`InvalidInput`.

    A CAS service is a client type of its own: no grant types (it cannot use
    the OAuth grants), no redirect URIs, no secret (CAS does not authenticate
    services; the ticket is bound to the registered URL). Its scopes say
    which claims are released as attributes; they are citizen scopes, the ID
    number only with ``may_receive_id_number``. The pairwise sector is the
    service URL's host unless one is given.
    """
    import re
    import secrets

    from ..clients.uris import validate_host
    from ..models import utcnow
    from ..oauth.scopes import kind_of

    name = (spec.name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a client needs a name of at most 200 characters")
    if not spec.cas_service_url:
        raise InvalidInput("--cas-logout-url needs --cas-service")
    for option in _OAUTH_ONLY:
        if getattr(spec, option, None):
            raise InvalidInput(f"a CAS service has no OAuth registration ({option.replace('_', '-')} is for "
                               "OpenID Connect clients); register those as another client")
    if spec.public:
        raise InvalidInput("a CAS service is neither public nor confidential: leave out --public")
    attributes = cas_registration(spec.cas_service_url, spec.cas_logout_url, allow_loopback=allow_loopback,
                                  resolve=resolve)
    scopes = list(dict.fromkeys(spec.scopes or ("openid", "profile")))
    if "openid" not in scopes:
        scopes.insert(0, "openid")  # cas:user is the pairwise identifier, as an OIDC sub
    for s in scopes:
        if kind_of(s) != "citizen":
            raise InvalidInput(f"{s!r} is not a citizen scope a CAS service can be released (openid, profile, "
                               "phone, email, id_number)")
    if spec.may_receive_id_number:
        if "id_number" not in scopes:
            scopes.append("id_number")
    elif "id_number" in scopes:
        raise InvalidInput("the id_number scope needs --may-receive-id-number (docs/design.md, identity rules)")
    if spec.subject_type not in ("pairwise", "public"):
        raise InvalidInput("the subject type is pairwise or public")
    from urllib.parse import urlsplit

    sector = validate_host(spec.sector_identifier) if spec.sector_identifier else (
        (urlsplit(attributes["service_url"]).hostname or "").lower() or None)
    client_id = spec.client_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,64}", client_id):
        raise InvalidInput("a client id is 1-64 characters of A-Z a-z 0-9 . _ ~ -")
    return Client(
        client_id=client_id, name=name, is_public=False, redirect_uris=[], post_logout_redirect_uris=[],
        backchannel_logout_uri=None, frontchannel_logout_uri=None, grant_types=[], response_types=[],
        scopes=scopes, token_endpoint_auth_method="none", jwks=None, jwks_uri=None,  # noqa: S106 - no secret
        id_token_signed_response_alg="ES256", subject_type=spec.subject_type, sector_identifier=sector,  # noqa: S106
        first_party=spec.first_party, may_receive_id_number=spec.may_receive_id_number, created_at=utcnow(),
        attributes={CAS_ATTRIBUTE: attributes},
    )
