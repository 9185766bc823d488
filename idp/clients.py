"""Relying-party registration: add, list, show, rotate secret, delete (issue 3 §2).

Registration is an administrator's act (the ``idp clients`` CLI); everything
a client may later do is decided here, once, and stored on the
:class:`~idp.models.Client` row that the protocol core reads.

Client secrets are 256-bit random (``secrets.token_urlsafe(32)``), shown
once and stored as SHA-256 hex: a fast hash is right for a high-entropy
secret, and a slow KDF would cap the token endpoint (DESIGN.md).

Redirect URIs (RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1, RFC 8252 §7):
absolute, no fragment, ``https``; ``http`` only on a loopback address; or a
private-use scheme in reverse-domain form (``com.example.app:/cb``) for native
apps. They are compared exactly at the authorization endpoint.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from .audit import AuditLog
from .db import Database
from .errors import InvalidInput, NotFound
from .models import AUTH_METHODS, GRANT_TYPES, Client, hash_client_secret, utcnow
from .netpolicy import OutboundUrlRefused, check_outbound_url
from .oauth.scopes import GRANT_KINDS, kind_of

__all__ = [
    "ClientService",
    "ClientSpec",
    "validate_redirect_uri",
    "validate_logout_uri",
    "resolve_host",
    "validate_host",
    "client_to_dict",
    "DEFAULT_SCOPES",
    "ID_TOKEN_ALGS",
    "DEVICE_CODE_GRANT",
]

logger = logging.getLogger(__name__)

DEFAULT_SCOPES = ("openid", "profile", "phone", "email", "offline_access")
ID_TOKEN_ALGS = ("ES256", "RS256")
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$")
_LOOPBACK_NAMES = ("localhost",)


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


def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_host(host: str) -> str:
    """A DNS host name (lower-cased), for the pairwise sector identifier."""
    h = (host or "").strip().lower().rstrip(".")
    if "://" in h:
        h = urlsplit(h).hostname or ""
    if not _HOSTNAME.match(h) and not _is_ip(h):
        raise InvalidInput(f"{host!r} is not a host name")
    return h


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def validate_redirect_uri(uri: str, *, allow_private_scheme: bool = True) -> str:
    """Check one redirect URI; return it unchanged or raise :class:`InvalidInput`."""
    if not uri or uri != uri.strip() or any(c.isspace() for c in uri):
        raise InvalidInput(f"redirect URI {uri!r} is empty or has white space")
    if len(uri) > 2000:
        raise InvalidInput("a redirect URI may have at most 2000 characters")
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise InvalidInput(f"redirect URI {uri!r} is not a valid URI") from None
    if not parts.scheme:
        raise InvalidInput(f"redirect URI {uri!r} must be absolute (RFC 6749 §3.1.2)")
    if "#" in uri:
        raise InvalidInput(f"redirect URI {uri!r} must not have a fragment (RFC 6749 §3.1.2)")
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not host:
            raise InvalidInput(f"redirect URI {uri!r} has no host")
        return uri
    if scheme == "http":
        if not _is_loopback_host(host):
            raise InvalidInput(
                f"redirect URI {uri!r}: plain http is allowed only on the loopback "
                "address (RFC 8252 §7.3); use https"
            )
        return uri
    if scheme in ("javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"):
        raise InvalidInput(f"redirect URI {uri!r} uses a scheme that cannot be a redirect target")
    if not allow_private_scheme:
        raise InvalidInput(f"{uri!r} must be an https URI")
    if not _PRIVATE_SCHEME.match(scheme):
        raise InvalidInput(
            f"redirect URI {uri!r}: a private-use scheme must be a reverse domain name such as "
            "com.example.app (RFC 8252 §7.1)"
        )
    return uri


Resolver = Callable[[str], list[str]]
"""A host name to its addresses (``[]`` when it does not resolve)."""


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to now; ``[]`` if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def validate_logout_uri(uri: str, what: str, *, allow_loopback: bool = False,
                        resolve: Resolver = resolve_host) -> str:
    """Back- and front-channel logout URIs: URLs the idp (or the citizen's browser for it) calls.

    Issue 19 §7: https to a public host, no fragment. A loopback, private,
    link-local, unspecified, multicast or reserved address is refused, as a
    literal (:func:`idp.netpolicy.check_outbound_url`) and as what the name
    resolves to today; the delivery checks the resolved address again (DNS
    can change). ``allow_loopback`` (the embedded demo's setting) lets
    ``http://127.0.0.1`` through, never a private address. A name that does
    not resolve yet is accepted: the RP may not be deployed yet, and
    delivery refuses it if it then resolves somewhere internal.
    """
    try:
        validate_redirect_uri(uri, allow_private_scheme=False)
        check_outbound_url(uri, allow_loopback=allow_loopback)
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e}") from None
    except OutboundUrlRefused as e:
        raise InvalidInput(
            f"{what} {uri!r}: {e}; the idp calls only https URLs on public hosts (issue 19 §7)"
        ) from None
    host = (urlsplit(uri).hostname or "").rstrip(".")
    if not _is_ip(host):
        from keys.http import FetchRefused, check_address

        for address in resolve(host):
            try:
                check_address(address, allow_loopback=allow_loopback)
            except FetchRefused:
                raise InvalidInput(
                    f"{what} {uri!r}: {host} resolves to {address}, an address the idp may not call"
                ) from None
    return uri


def _hosts(uris: Iterable[str]) -> set[str]:
    return {h for u in uris if (h := (urlsplit(u).hostname or "").lower())}


def client_to_dict(client: Client) -> dict[str, Any]:
    """The registration as JSON-friendly data (no secret, no hash)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "scopes": list(client.scopes),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks_uri": client.jwks_uri,
        "has_jwks": client.jwks is not None,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
        "sector_identifier": client.sector_identifier,
        "first_party": client.first_party,
        "may_receive_id_number": client.may_receive_id_number,
        "created_at": client.created_at.isoformat(timespec="seconds"),
        "secret_rotated_at": (
            client.secret_rotated_at.isoformat(timespec="seconds")
            if client.secret_rotated_at
            else None
        ),
    }


class ClientService:
    """Registers and manages relying parties; every change is audited."""

    def __init__(self, db: Database, *, audit: AuditLog | None = None, allow_loopback_callbacks: bool = False,
                 resolve: Resolver = resolve_host) -> None:
        self.db = db
        self.audit = audit
        self.allow_loopback_callbacks = allow_loopback_callbacks
        """Logout URIs may be on loopback (the embedded demo; ``IdpSettings.loopback_callbacks_allowed``)."""
        self._resolve = resolve

    # ------------------------------------------------------------- validate

    def _build(self, spec: ClientSpec) -> Client:
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
        loopback, resolve = self.allow_loopback_callbacks, self._resolve
        backchannel = (
            validate_logout_uri(spec.backchannel_logout_uri, "back-channel logout URI",
                                allow_loopback=loopback, resolve=resolve)
            if spec.backchannel_logout_uri
            else None
        )
        frontchannel = None
        if spec.frontchannel_logout_uri:
            frontchannel = validate_logout_uri(spec.frontchannel_logout_uri, "front-channel logout URI",
                                               allow_loopback=loopback, resolve=resolve)
            # Front-Channel Logout 1.0 §2: same scheme, host and port as a redirect URI.
            origin = _origin(frontchannel)
            if not any(_origin(u) == origin for u in redirect_uris):
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
                "the id_number scope needs --may-receive-id-number (DESIGN.md, identity rules)"
            )

        method = spec.auth_method or ("none" if spec.public else "client_secret_basic")
        if method not in AUTH_METHODS:
            raise InvalidInput(f"unknown auth method {method!r}; known: {', '.join(AUTH_METHODS)}")
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
            hosts = _hosts(u for u in redirect_uris if urlsplit(u).scheme in ("http", "https"))
            if len(hosts) > 1:
                raise InvalidInput(
                    "the redirect URIs have several hosts; give --sector-identifier HOST "
                    "so the pairwise sub is the same for all of them (OIDC Core §8.1)"
                )
            sector = hosts.pop() if hosts else None

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
        )

    # ------------------------------------------------------------ commands

    def add(self, spec: ClientSpec, *, actor: str = "admin") -> tuple[Client, str | None]:
        """Register a client. Returns it and its secret (``None`` if it has none).

        The secret is not kept: this is the only time it can be shown.
        """
        client = self._build(spec)
        secret = None
        if client.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"):
            secret = secrets.token_urlsafe(32)
            client.secret_hash = hash_client_secret(secret)
        try:
            with self.db.session() as s:
                if s.get(Client, client.client_id) is not None:
                    raise InvalidInput(f"a client with id {client.client_id} already exists")
                s.add(client)
                s.flush()
                self._audit(
                    s,
                    "admin.client_added",
                    actor=actor,
                    subject=client.client_id,
                    client_id=client.client_id,
                    detail={
                        "name": client.name,
                        "grant_types": client.grant_types,
                        "scopes": client.scopes,
                        "public": client.is_public,
                    },
                )
        except sa.exc.IntegrityError:
            raise InvalidInput(f"a client with id {client.client_id} already exists") from None
        logger.info("client added %s", client.client_id)
        return client, secret

    def get(self, client_id: str) -> Client | None:
        """The client, or ``None``; what Authlib's ``query_client`` wants."""
        if not client_id or len(client_id) > 64:
            return None
        with self.db.session() as s:
            return s.get(Client, client_id)

    def show(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise NotFound(f"no client with id {client_id}")
        return client

    def list(self) -> list[Client]:
        with self.db.session() as s:
            return list(s.scalars(sa.select(Client).order_by(Client.created_at, Client.client_id)))

    def rotate_secret(self, client_id: str, *, actor: str = "admin") -> str:
        """A new secret replaces the old one at once; returned once, stored hashed."""
        secret = secrets.token_urlsafe(32)
        with self.db.session() as s:
            client = s.get(Client, client_id, with_for_update=True)
            if client is None:
                raise NotFound(f"no client with id {client_id}")
            if client.secret_hash is None:
                raise InvalidInput(
                    f"client {client_id} authenticates with {client.token_endpoint_auth_method}; "
                    "it has no secret to rotate"
                )
            client.secret_hash = hash_client_secret(secret)
            client.secret_rotated_at = utcnow()
            self._audit(
                s, "admin.client_secret_rotated", actor=actor, subject=client_id, client_id=client_id
            )
        logger.info("client secret rotated %s", client_id)
        return secret

    def delete(self, client_id: str, *, actor: str = "admin") -> None:
        """Remove a client with its consents and token records."""
        with self.db.session() as s:
            client = s.get(Client, client_id)
            if client is None:
                raise NotFound(f"no client with id {client_id}")
            # Explicit deletes: SQLite only cascades with the pragma on, and
            # the ORM must not try to null the foreign keys.
            from .models import Consent, TokenRecord

            s.execute(sa.delete(TokenRecord).where(TokenRecord.client_id == client_id))
            s.execute(sa.delete(Consent).where(Consent.client_id == client_id))
            s.delete(client)
            self._audit(
                s,
                "admin.client_deleted",
                actor=actor,
                subject=client_id,
                client_id=client_id,
                detail={"name": client.name},
            )
        logger.info("client deleted %s", client_id)

    def _audit(self, session: Any, kind: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(kind, session=session, **fields)


_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _new_client_id() -> str:
    """24 letters and digits (~143 bits): no ``-`` that a shell or CLI would take for an option."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _origin(uri: str) -> tuple[str, str, int | None]:
    parts = urlsplit(uri)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or ""), port


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
