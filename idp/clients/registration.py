"""Relying-party registration metadata: what a client may register, checked once (issue 3 §2).

Owns :class:`ClientSpec` (the options of ``idp clients add``) and
:func:`build_client`, which turns it into a :class:`~idp.models.Client` row
or refuses it with :class:`~idp.errors.InvalidInput`: grant types, redirect
and logout URIs (:mod:`.uris`), scopes the policy
(:func:`idp.oauth.scopes.kind_of`) could grant to those grants, the
``id_number`` permission, the token endpoint auth method and its keys, the
ID token algorithm and the pairwise sector. Everything a client may later do
is decided here and stored on the row the protocol core reads.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..models import AUTH_METHODS, GRANT_TYPES, Client, utcnow
from ..oauth import fapi
from ..oauth.acr import acr_attributes
from ..oauth.mtls import (
    BOUND_TOKENS,
    CERTIFICATES,
    MTLS_AUTH_METHODS,
    SELF_SIGNED_TLS_CLIENT_AUTH,
    SUBJECT_DN,
    TLS_CLIENT_AUTH,
    der_of_forwarded,
)
from ..oauth.mtls import thumbprint as mtls_thumbprint
from ..oauth.scopes import GRANT_KINDS, kind_of
from ..staff.portal import registration_attributes as staff_portal_attributes
from .uris import (
    Resolver,
    check_private_schemes,
    hosts_of,
    origin_of,
    registered_domains,
    resolve_host,
    validate_host,
    validate_logout_uri,
    validate_redirect_uri,
    validate_web_origin,
)

__all__ = [
    "ClientSpec",
    "build_client",
    "DEFAULT_SCOPES",
    "ID_TOKEN_ALGS",
    "DEVICE_CODE_GRANT",
]

DEFAULT_SCOPES = ("openid", "profile", "phone", "email", "offline_access")
ID_TOKEN_ALGS = ("ES256", "RS256")
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3


@dataclass(frozen=True)
class ClientSpec:
    """What an administrator registers (the options of ``idp clients add``)."""

    name: str
    redirect_uris: Sequence[str] = ()
    post_logout_redirect_uris: Sequence[str] = ()
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    public: bool = False
    """A public client (mobile app, single-page app, kiosk) has no secret and must use PKCE."""
    grant_types: Sequence[str] = ()
    """Default: ``authorization_code`` and ``refresh_token``."""
    scopes: Sequence[str] = ()
    """Default: :data:`DEFAULT_SCOPES` (plus ``id_number`` when allowed)."""
    subject_type: str = "pairwise"
    sector_identifier: str | None = None
    first_party: bool = False
    may_receive_id_number: bool = False
    id_token_alg: str = "ES256"  # noqa: S105 - an algorithm name
    auth_method: str | None = None
    """Default: ``none`` for public clients, else ``client_secret_basic``."""
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    client_id: str | None = None
    """Normally generated; fixed ids are for demos and tests."""
    extra: dict[str, Any] = field(default_factory=dict)
    cas_service_url: str | None = None
    """A CAS service (issue 21 §3), a client type of its own: :func:`idp.cas.services.build_cas_client`."""
    cas_logout_url: str | None = None
    """Where the CAS single logout ``LogoutRequest`` is POSTed (checked as back-channel logout URIs)."""
    web_origins: Sequence[str] = ()
    """Browser apps (issue 21 §1): origins that may call the token, userinfo, revocation and
    PAR endpoints cross-origin (CORS, :mod:`idp.oauth.cors`); attribute ``web_origins``."""
    refresh_idle_seconds: int | None = None
    """A refresh token unused this long is refused (attribute ``refresh_idle_seconds``)."""
    refresh_absolute_seconds: int | None = None
    """No refresh after this long from the family's first issue (``refresh_absolute_seconds``)."""
    tls_subject_dn: str | None = None
    """``tls_client_auth`` (RFC 8705 §2.1.2): the certificate's subject DN (RFC 4514), or one SAN below."""
    tls_san_dns: str | None = None
    tls_san_uri: str | None = None
    tls_san_email: str | None = None
    tls_certificates: Sequence[str] = ()
    """``self_signed_tls_client_auth`` (§2.2): the client's certificates (PEM); or its keys in ``jwks``."""
    tls_bound_tokens: bool = False
    """§3.4 ``tls_client_certificate_bound_access_tokens`` (implied by an mTLS auth method)."""
    profile: str | None = None
    """``fapi2``: the FAPI 2.0 Security Profile's rules for this client (:mod:`idp.oauth.fapi`)."""
    dpop_bound_access_tokens: bool = False
    """RFC 9449 §5.2: only DPoP-bound tokens for this client (attribute ``dpop_bound_access_tokens``)."""
    require_acr: str | None = None
    """Issue 13 §2: the lowest acr this client accepts (``urn:yiwang:acr:passkey``…; :mod:`idp.oauth.acr`)."""
    default_acr_values: Sequence[str] = ()
    """OIDC Registration §2: the acr values asked for when a request names none."""
    ciba: Any = None
    """``idp.ciba.registration.CibaRegistration``: delivery mode, notification endpoint, signing, acting."""
    audience: str | None = None
    """``staff``: a counter or hotline system that signs in staff, never citizens (:mod:`idp.staff.portal`)."""


def build_client(spec: ClientSpec, *, allow_loopback: bool = False,
                 resolve: Resolver = resolve_host) -> Client:
    """The :class:`Client` row ``spec`` registers, or :class:`InvalidInput` naming what is wrong.

    ``allow_loopback``: logout URIs may be on loopback (the embedded demo);
    ``resolve`` looks up what a logout URI's host resolves to.
    """
    if spec.cas_service_url or spec.cas_logout_url:
        from ..cas.services import build_cas_client  # a CAS service has rules of its own

        return build_cas_client(spec, allow_loopback=allow_loopback, resolve=resolve)
    name = (spec.name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a client needs a name of at most 200 characters")

    grant_types = list(dict.fromkeys(spec.grant_types or ("authorization_code", "refresh_token")))
    for g in grant_types:
        if g not in GRANT_TYPES:
            raise InvalidInput(
                f"unknown grant type {g!r}; known: {', '.join(GRANT_TYPES)}"
            )
    if spec.public and "client_credentials" in grant_types:
        raise InvalidInput("a public client cannot use client_credentials (it has no secret)")

    redirect_uris = [validate_redirect_uri(u) for u in spec.redirect_uris]
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidInput("the authorization_code grant needs at least one --redirect-uri")
    if not spec.public and any(
        urlsplit(u).scheme not in ("http", "https") for u in redirect_uris
    ):
        raise InvalidInput(
            "private-use URI schemes are for native apps, which are public clients (--public)"
        )
    post_logout = [validate_redirect_uri(u) for u in spec.post_logout_redirect_uris]
    backchannel = (
        validate_logout_uri(spec.backchannel_logout_uri, "back-channel logout URI",
                            allow_loopback=allow_loopback, resolve=resolve)
        if spec.backchannel_logout_uri
        else None
    )
    frontchannel = None
    if spec.frontchannel_logout_uri:
        frontchannel = validate_logout_uri(spec.frontchannel_logout_uri, "front-channel logout URI",
                                           allow_loopback=allow_loopback, resolve=resolve)
        # Front-Channel Logout 1.0 §2: same scheme, host and port as a redirect URI.
        origin = origin_of(frontchannel)
        if not any(origin_of(u) == origin for u in redirect_uris):
            raise InvalidInput(
                "the front-channel logout URI must have the scheme, host and port of "
                "one of the redirect URIs (Front-Channel Logout 1.0 §2)"
            )

    kinds = {GRANT_KINDS.get(g) for g in grant_types}
    # A machine client (client_credentials only) has no citizen to sign in: no OIDC defaults.
    scopes = list(dict.fromkeys(spec.scopes or (DEFAULT_SCOPES if "citizen" in kinds else ())))
    for s in scopes:
        if not _SCOPE_TOKEN.match(s):
            raise InvalidInput(f"{s!r} is not a valid scope name (RFC 6749 §3.3)")
        # The registration may not promise what the scope policy (idp.oauth.scopes.decide)
        # will never grant: it would only surface later, at a token request, as invalid_scope.
        kind = kind_of(s)
        if kind is None:
            raise InvalidInput(f"{s!r} is not a scope this server knows (docs/rp-integration.md, Scopes)")
        if kind not in kinds:
            carriers = "client_credentials" if kind == "agency" else "authorization_code or the device grant"
            raise InvalidInput(f"the {kind} scope {s!r} needs a grant that carries it: {carriers}")
    if spec.may_receive_id_number:
        if "id_number" not in scopes:
            scopes.append("id_number")
    elif "id_number" in scopes:
        raise InvalidInput(
            "the id_number scope needs --may-receive-id-number (docs/design.md, identity rules)"
        )

    method = spec.auth_method or ("none" if spec.public else "client_secret_basic")
    if method not in (*AUTH_METHODS, *MTLS_AUTH_METHODS):
        raise InvalidInput(f"unknown auth method {method!r}; known: {', '.join((*AUTH_METHODS, *MTLS_AUTH_METHODS))}")
    if spec.public and method != "none":
        raise InvalidInput("a public client authenticates with 'none'")
    if not spec.public and method == "none":
        raise InvalidInput("only a public client (--public) may use the auth method 'none'")
    jwks = spec.jwks
    jwks_uri = spec.jwks_uri
    if jwks is not None:
        _check_jwks(jwks)
    if jwks_uri is not None:
        # private_key_jwt reads only the registered keys (oauth.grants.resolve_client_public_key):
        # a URI would be stored and never fetched, so it is refused rather than silently ignored.
        raise InvalidInput("jwks_uri is not supported yet; register the keys with --jwks")
    if method == "private_key_jwt" and jwks is None:
        raise InvalidInput("private_key_jwt needs the client's public keys (--jwks)")

    if spec.id_token_alg not in ID_TOKEN_ALGS:
        raise InvalidInput(f"the ID token algorithm must be one of {', '.join(ID_TOKEN_ALGS)}")
    if spec.subject_type not in ("pairwise", "public"):
        raise InvalidInput("the subject type is pairwise or public")
    sector = validate_host(spec.sector_identifier) if spec.sector_identifier else None
    if spec.subject_type == "pairwise" and sector is None:
        # OIDC Core §8.1: without a sector identifier the sector is the
        # redirect URIs' host, so they must share one.
        hosts = hosts_of(u for u in redirect_uris if urlsplit(u).scheme in ("http", "https"))
        if len(hosts) > 1:
            raise InvalidInput(
                "the redirect URIs have several hosts; give --sector-identifier HOST "
                "so the pairwise sub is the same for all of them (OIDC Core §8.1)"
            )
        sector = hosts.pop() if hosts else None

    attributes = _browser_app_attributes(spec, redirect_uris, spec.sector_identifier and validate_host(
        spec.sector_identifier), allow_loopback=allow_loopback)
    attributes.update(_mtls_and_profile_attributes(spec, method, jwks, grant_types, redirect_uris,
                                                   allow_loopback=allow_loopback))
    if spec.dpop_bound_access_tokens:  # idp.oauth.dpop.ATTRIBUTE
        attributes["dpop_bound_access_tokens"] = True
    attributes.update(acr_attributes(spec.require_acr, spec.default_acr_values))  # idp.oauth.acr
    from ..ciba.registration import ciba_attributes  # OpenID CIBA Core 1.0 §4

    attributes.update(ciba_attributes(spec.ciba, grant_types=grant_types, public=spec.public, jwks=jwks,
                                      allow_loopback=allow_loopback, resolve=resolve))
    attributes.update(staff_portal_attributes(spec.audience, grant_types))  # idp.staff.portal

    client_id = spec.client_id or _new_client_id()
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,64}", client_id):
        raise InvalidInput("a client id is 1-64 characters of A-Z a-z 0-9 . _ ~ -")
    return Client(
        client_id=client_id,
        name=name,
        is_public=spec.public,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=backchannel,
        frontchannel_logout_uri=frontchannel,
        grant_types=grant_types,
        response_types=["code"] if "authorization_code" in grant_types else [],
        scopes=scopes,
        token_endpoint_auth_method=method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        id_token_signed_response_alg=spec.id_token_alg,
        subject_type=spec.subject_type,
        sector_identifier=sector,
        first_party=spec.first_party,
        may_receive_id_number=spec.may_receive_id_number,
        created_at=utcnow(),
        attributes=attributes,
    )


def _browser_app_attributes(spec: ClientSpec, redirect_uris: list[str], sector: str | None, *,
                            allow_loopback: bool) -> dict[str, Any]:
    """Issue 21: web origins, refresh lifetimes, the private-use scheme's domain (RFC 8252 §7.1)."""
    out: dict[str, Any] = {}
    origins = list(dict.fromkeys(validate_web_origin(o, allow_loopback=allow_loopback) for o in spec.web_origins))
    if origins:
        if "authorization_code" not in (spec.grant_types or ("authorization_code",)):
            raise InvalidInput("--web-origin is for browser apps, which use the authorization_code grant")
        out["web_origins"] = origins
    check_private_schemes(redirect_uris, registered_domains(redirect_uris, origins, sector))
    for key in ("refresh_idle_seconds", "refresh_absolute_seconds"):
        value = getattr(spec, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 60 <= value <= 400 * 24 * 3600:
            raise InvalidInput(f"{key.replace('_', '-')} must be a number of seconds from 60 to 400 days")
        out[key] = value
    idle, absolute = out.get("refresh_idle_seconds"), out.get("refresh_absolute_seconds")
    if idle is not None and absolute is not None and idle > absolute:
        raise InvalidInput("the refresh idle lifetime cannot exceed the absolute lifetime")
    return out


def _mtls_and_profile_attributes(spec: ClientSpec, method: str, jwks: dict[str, Any] | None,
                                 grant_types: list[str], redirect_uris: list[str], *,
                                 allow_loopback: bool) -> dict[str, Any]:
    """Issue 14: mutual TLS (RFC 8705 §2.1.2, §2.2, §3.4) and the FAPI 2.0 profile (``idp.oauth.fapi``)."""
    from cryptography import x509

    out: dict[str, Any] = {}
    subjects = {SUBJECT_DN: spec.tls_subject_dn, "tls_client_auth_san_dns": spec.tls_san_dns,
                "tls_client_auth_san_uri": spec.tls_san_uri, "tls_client_auth_san_email": spec.tls_san_email}
    given = {k: v.strip() for k, v in subjects.items() if v and v.strip()}
    if method == TLS_CLIENT_AUTH:
        if len(given) != 1:  # RFC 8705 §2.1.2: exactly one of them
            raise InvalidInput("tls_client_auth needs exactly one of --tls-subject-dn, --tls-san-dns, "
                               "--tls-san-uri, --tls-san-email")
        if SUBJECT_DN in given:
            try:
                x509.Name.from_rfc4514_string(given[SUBJECT_DN])
            except ValueError:
                raise InvalidInput("--tls-subject-dn is not an RFC 4514 distinguished name") from None
        out.update(given)
    elif given:
        raise InvalidInput("--tls-subject-dn and --tls-san-* are for the auth method tls_client_auth")
    if spec.tls_certificates:
        if method != SELF_SIGNED_TLS_CLIENT_AUTH:
            raise InvalidInput("--tls-certificate is for the auth method self_signed_tls_client_auth")
        prints = []
        for pem in spec.tls_certificates:
            der = der_of_forwarded(pem) if "-----BEGIN CERTIFICATE-----" in pem else None
            if der is None:
                raise InvalidInput("--tls-certificate: not a PEM certificate")
            prints.append(mtls_thumbprint(der))
        out[CERTIFICATES] = prints
    if method == SELF_SIGNED_TLS_CLIENT_AUTH and not spec.tls_certificates and jwks is None:
        raise InvalidInput("self_signed_tls_client_auth needs the client's certificate (--tls-certificate) "
                           "or its public keys (--jwks)")
    if method in MTLS_AUTH_METHODS or spec.tls_bound_tokens:
        out[BOUND_TOKENS] = True
    problem = fapi.registration_problem(spec.profile, public=spec.public, auth_method=method,
                                        grant_types=grant_types, redirect_uris=redirect_uris,
                                        id_token_alg=spec.id_token_alg, allow_loopback=allow_loopback)
    if problem is not None:
        raise InvalidInput(problem)
    if spec.profile:
        out[fapi.PROFILE] = spec.profile
    return out


_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _new_client_id() -> str:
    """24 letters and digits (~143 bits): no ``-`` that a shell or CLI would take for an option."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _check_jwks(jwks: dict[str, Any]) -> None:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise InvalidInput('the JWKS must be an object {"keys": [...]} with at least one key')
    for key in jwks["keys"]:
        if not isinstance(key, dict) or any(p in key for p in ("d", "p", "q", "k")):
            raise InvalidInput("the JWKS must hold public keys only")
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as e:
        raise InvalidInput(f"the JWKS cannot be read: {e}") from None
